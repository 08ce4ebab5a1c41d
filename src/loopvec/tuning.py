"""Kernels tuned to the machine they run on: a few choices measured once, the choice kept.

The blocked kernels' speed on a CPU is decided by a few choices (`_blocked.KernelPlan`): the
block size in each memory order, the number of features below which a Fortran-order block is
copied into a C-order buffer in cache rather than walked by columns, how the columns are walked
(8 side by side or one at a time by LLVM's loops, or 8 side by side in SIMD registers of 8
features, in blocks, in the dw pass only, or in one pass of 8 streams; one walk for X in the
last-level cache and one for larger X), and the number of features below which C order's two
passes are pipelined (`_blocked._pipelined_rows`); Fortran order with at most
`SHORT_COLUMN_MAX_N` features has one way (two SIMD vectors a column), only its block size is
the plan's. The best ones depend on the caches, the prefetchers and the SIMD width: 256 KiB
column blocks, chosen on the reference machine (Zen 5, AVX-512), left Fortran order 1.78x slower
than C at (1e6, 100) on a Zen 3 (AVX2). As FFTW's planner does, loopvec measures the candidates
once on each machine, outside any timing, and keeps the choice in

    <numba cache root>/plans/<machine fingerprint>-<kernel code fingerprint>.json

beside the compiled code, so another machine or another version of the kernels gets a plan of
its own. `current()` is this process's plan: read from that file, measured on first use (9 to
13 s on an Ice Lake Xeon, said on stderr), or today's constants (`DEFAULT_PLAN`) where it cannot be
measured (a cache folder that cannot be written, too little memory), saying so, or where
LOOPVEC_KERNEL_PLAN=default asks for them. `loopvec tune` measures again.

How: one X of TUNE_X_BYTES, or twice the last-level cache where that is larger (far beyond the
caches, as X is at (1e6, 100): `measuring_x_bytes`), viewed at n = 32, 100 and 1000 in both
orders, and at each width an X of SMALL_M examples (in cache, as the grid's smallest cells are);
numba_parallel on all threads; every candidate timed in RACE_ROUNDS rounds, those still near the
best in ROUNDS, candidates in a new random order each round so that a drifting machine shifts
them all alike; the plan with the least mean log of its median time over the best on each
problem, where near ties go to the least behind on its worst problem, then to the plan this
machine ran with before (`plan_before`), today's constants or the largest block; and the plan
before stays unless the new one beats it as a whole (`choose`).
"""

from __future__ import annotations

import itertools
import json
import math
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from loopvec.backends._blocked import DEFAULT_PLAN, KernelPlan
from loopvec.backends._jit import cache_root
from loopvec.backends._plan import hold
from loopvec.results import utc_now, write_json_atomic
from loopvec.sources import digest, json_digest, source_digests, source_path
from loopvec.stats import DEFAULT_TIE_BAND

#: "default": run with today's constants, measure nothing (unset: the machine's plan).
PLAN_ENV = "LOOPVEC_KERNEL_PLAN"
FORMAT = 2  # 2: timings and gains of the problems in cache too
#: X of the measuring problem: far beyond the caches, about 0.1 s a candidate at 25 GB/s.
TUNE_X_BYTES = 256 * 2**20
#: ... or this many times the last-level cache, where that is larger (300 MiB on an Emerald
#: Rapids Xeon): an X the cache holds would be timed as in cache, and the plan's walk from memory
#: left to a tie rule.
CACHE_FACTOR = 2
#: Widths measured: the plan serves narrow and wide X. The narrowest is above
#: `_blocked.SHORT_COLUMN_MAX_N`: below it Fortran order reads its short columns one way only.
TUNE_FEATURES = (32, 100, 1000)
#: Examples of the problem in cache at each width: the grid's smallest m, whose cells the plan
#: serves too. There the walks differ by their instructions, not by the memory: on a 2-core
#: Emerald Rapids Xeon at (1000, 100), one thread, Fortran order took 1.155x [1.132, 1.171]
#: C order's time walked by LLVM's loops, 0.975x [0.921, 1.013] walked in Lanes.
SMALL_M = 1000
#: Bytes of X a sample reads at least: a problem in cache is called this over its size times.
SAMPLE_BYTES = 32 * 2**20
#: Rounds of every candidate: with 5, five measurements on a drifting 2-core Xeon gave four
#: different plans; with 9 (10 s there), two, whose C blocks were within 3 % of each other.
ROUNDS = 9
#: Rounds every candidate is timed before a race (as irace's): those then slower than RACE_MARGIN
#: times the best of their order drop out, their median of these rounds kept, and the others
#: are timed ROUNDS. A candidate 1.3x behind is far outside the tie band of `choose`; on an Ice
#: Lake Xeon most were (Fortran order's block walks 1.5x to 2x its one-pass walk from memory).
RACE_ROUNDS = 3
RACE_MARGIN = 1.3
#: The candidates: block sizes in C order, in Fortran order (with each strategy).
C_BLOCK_BYTES = (256 * 2**10, 512 * 2**10, 2 * 2**20, 8 * 2**20, 32 * 2**20)
F_BLOCK_BYTES = (32 * 2**10, 64 * 2**10, 128 * 2**10, 256 * 2**10, 1 * 2**20)
#: A machine with less memory available than this many X's keeps today's constants.
MEMORY_FACTOR = 4
#: How long a process waits for another one measuring the same plan.
LOCK_WAIT_S = 300.0


def _say(message: str) -> None:
    print(f"loopvec: {message}", file=sys.stderr, flush=True)


def _size(n_bytes: int) -> str:
    return f"{n_bytes // 2**20} MiB" if n_bytes >= 2**20 else f"{n_bytes // 2**10} KiB"


#: How each of F_WALKS reads the columns, in `describe`'s words.
_WALK_WORDS = {
    "F columns": " 8 side by side",
    "F single columns": " one at a time",
    "F lanes": " in 8-feature SIMD registers",
    "F single lanes": " one at a time for z, 8 side by side in 8-feature SIMD registers for dw",
    "F streams": " in one pass of 8 streams side by side, in 8-feature SIMD registers",
}


def describe(plan: KernelPlan) -> str:
    """'C order 512 KiB blocks, pipelined below n = 320; Fortran order 128 KiB blocks,
    transposed below n = 32, else columns one at a time, X of up to 32 MiB walked in 8-feature
    SIMD registers'."""
    below = plan.f_transpose_below_n
    how = (
        "columns walked" if below <= 0
        else "transposed" if below >= ALWAYS else f"transposed below n = {below}, else columns"
    )  # fmt: skip
    if below < ALWAYS:
        how += _WALK_WORDS[_f_walk(plan)]
        if plan.f_wide_from_n:
            how += f", from n = {plan.f_wide_from_n}{_WALK_WORDS[_f_walk(plan, wide=True)]}"
        if plan.f_cache_bytes:
            cache_walk = _WALK_WORDS[_f_walk(plan, in_cache=True)]
            how += f", X of up to {_size(plan.f_cache_bytes)} walked{cache_walk}"
    below = plan.c_pipeline_below_n
    c_how = (
        "" if below <= 0 else ", pipelined" if below >= ALWAYS else f", pipelined below n = {below}"
    )
    c_size, f_size = _size(plan.c_block_bytes), _size(plan.f_block_bytes)
    return f"C order {c_size} blocks{c_how}; Fortran order {f_size} blocks, {how}"


def as_json(plan: KernelPlan) -> dict[str, Any]:
    return plan._asdict()


def from_json(value: dict[str, Any]) -> KernelPlan:
    """The plan of `as_json`; ValueError if it is not one. A field added since a plan was
    written takes its default (what the kernels did before it: C order was never pipelined,
    Fortran order's columns walked 8 at a time, one walk for X of every size and width)."""
    given = {**KernelPlan._field_defaults, **value}
    try:
        plan = KernelPlan(**{field: int(given[field]) for field in KernelPlan._fields})
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"not a kernel plan: {value!r}") from error
    if plan.c_block_bytes <= 0 or plan.f_block_bytes <= 0:
        raise ValueError(f"not a kernel plan (block sizes must be positive): {value!r}")
    walks = {plan.f_columns_per_walk, plan.f_cache_columns_per_walk, plan.f_wide_columns_per_walk}
    if walks - {1, DEFAULT_PLAN.f_columns_per_walk}:
        raise ValueError(f"not a kernel plan (columns per walk must be 1 or 8): {value!r}")
    if {plan.f_lanes, plan.f_cache_lanes, plan.f_wide_lanes} - {0, 1, 2}:
        raise ValueError(f"not a kernel plan (lanes must be 0, 1 or 2): {value!r}")
    for field in ("f_cache_bytes", "f_wide_from_n"):
        if getattr(plan, field) < 0:
            raise ValueError(f"not a kernel plan ({field} must be at least 0): {value!r}")
    return plan


@dataclass(frozen=True)
class PlanState:
    """The plan of this process, and where it came from."""

    plan: KernelPlan
    source: str  #: "measured" (now), "kept" (read from its file) or "default"
    note: str  #: the file it is kept in; for "default", why
    measurement: dict[str, Any] | None = None  #: the plan file's content

    def as_json(self) -> dict[str, Any]:
        """What `loopvec info` shows and every cell of a kernel that uses it records."""
        record = {"plan": as_json(self.plan), "source": self.source, "note": self.note}
        if self.measurement is not None:
            keep = ("measured_at", "measure_s", "threads", "x_bytes", "gains")
            record |= {key: self.measurement[key] for key in keep}
        return record

    def line(self) -> str:
        if self.source == "default":
            return f"kernel plan: today's constants ({describe(self.plan)}): {self.note}"
        assert self.measurement is not None
        gains = ", ".join(
            f"Fortran {g['F']:.2f}x, C {g['C']:.2f}x at {problem}"
            for problem, g in self.measurement["gains"].items()
        )
        before = self.measurement.get("plan_before")  # absent from plans of older code
        since = (
            "" if before is None
            else ", as before" if before == self.measurement["plan"]
            else f", before: {describe(from_json(before))}"
        )  # fmt: skip
        return (
            f"kernel plan: {describe(self.plan)} (measured {self.measurement['measured_at']} in "
            f"{self.measurement['measure_s']:.1f} s{since}; against today's constants: {gains}); "
            f"kept in {self.note}"
        )


@cache
def _machine() -> dict[str, Any]:
    """This machine's record, once a process: the plan's file name and its content both name it."""
    from loopvec.machine import machine_record  # noqa: PLC0415  # numba, psutil, cpuinfo

    return machine_record(measure_bandwidth=False)


def code_fingerprint() -> str:
    """What a plan was measured for: the kernels' sources and this module's (how it measures)."""
    sources = source_digests("loopvec.backends.numba_parallel")
    sources[__name__] = digest(source_path(__name__).read_bytes())
    return json_digest(sources)


def plan_path(root: Path | None = None) -> Path:
    """Where this machine's plan for this code is kept."""
    folder = (root or cache_root()) / "plans"
    return folder / f"{_machine()['fingerprint']}-{code_fingerprint()}.json"


def _read(path: Path) -> PlanState | None:
    """The plan kept at `path`; None if there is none (or it cannot be used, saying why)."""
    try:
        measurement = json.loads(path.read_text(encoding="utf-8"))
        if measurement.get("format") != FORMAT:
            raise ValueError(f"format {measurement.get('format')}, not {FORMAT}")
        return PlanState(from_json(measurement["plan"]), "kept", str(path), measurement)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        _say(f"the kernel plan in {path} cannot be used ({error}): measuring it again")
        return None


def _default(why: str) -> PlanState:
    state = PlanState(DEFAULT_PLAN, "default", why)
    _say(state.line())
    return state


_current: list[PlanState] = []


def current() -> PlanState:
    """This process's plan (see the module docstring), looked up once."""
    if not _current:
        state = _look_up()  # `tune` holds what it measures
        _current[:] = [state]
        hold(state.plan)
    return _current[0]


def _look_up() -> PlanState:
    setting = os.environ.get(PLAN_ENV, "")
    if setting not in ("", "default"):
        raise ValueError(f"{PLAN_ENV} must be 'default' or unset, not {setting!r}")
    if setting == "default":  # asked for: nothing to say
        return PlanState(DEFAULT_PLAN, "default", f"{PLAN_ENV}=default")
    path = plan_path()
    return _read(path) or tune(path, first_use=True)


def measuring_x_bytes(cache_bytes: int) -> int:
    """Bytes of the X a plan is measured on, on a machine with `cache_bytes` of last-level cache."""
    return max(TUNE_X_BYTES, CACHE_FACTOR * cache_bytes)


def tune(path: Path | None = None, *, first_use: bool = False, **measuring: Any) -> PlanState:
    """Measure this machine's plan, keep it at `path` and run with it from now on; today's
    constants, saying why, where it cannot be measured or kept. `measuring` goes to `measure`
    (smaller sizes for the tests); near ties keep `plan_before(path)`."""
    from loopvec.machine import last_level_cache_bytes  # noqa: PLC0415

    path = path or plan_path()
    measuring.setdefault("x_bytes", measuring_x_bytes(last_level_cache_bytes()))
    x_bytes = measuring["x_bytes"]
    available = _available_bytes()
    if available < MEMORY_FACTOR * x_bytes:
        state = _default(
            f"{available / 2**20:.0f} MiB of memory available, less than the "
            f"{MEMORY_FACTOR * x_bytes / 2**20:.0f} MiB that measuring it takes"
        )
    else:
        try:
            with _measuring_alone(path):
                kept = _read(path) if first_use else None  # another process may have measured
                if kept is not None:
                    state = kept
                else:
                    if first_use:
                        _say(
                            "measuring this machine's kernel plan (first use: 10 to 20 s, a "
                            "minute or two more where the kernels compile first, outside any "
                            "timing; `loopvec tune` measures it again)"
                        )
                    measurement = measure(before=plan_before(path), **measuring)
                    write_json_atomic(path, measurement)
                    plan = from_json(measurement["plan"])
                    state = PlanState(plan, "measured", str(path), measurement)
                    _say(state.line())
        except OSError as error:  # a read-only or full cache folder: nowhere to keep a plan
            state = _default(f"it cannot be kept in {path.parent} ({error})")
    _current[:] = [state]
    hold(state.plan)
    return state


def plan_before(path: Path) -> KernelPlan | None:
    """The plan this machine ran with before: the one kept at `path` (`loopvec tune` measures
    again), else the one measured last for this machine beside it, by other code (a new version
    of the kernels); None where none can be read. Near ties keep it: a plan that moved with the
    noise would retime every planned cell at each new version and each `loopvec tune`."""
    kept = []
    for file in {path, *path.parent.glob("*.json")}:  # each file read once, `path` among them
        try:
            measurement = json.loads(file.read_text(encoding="utf-8"))
            if measurement["machine_fingerprint"] == _machine()["fingerprint"]:
                plan = from_json(measurement["plan"])
                kept.append((file == path, str(measurement["measured_at"]), plan))
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            continue  # none there, damaged or not a plan: no plan before in it
    return max(kept)[2] if kept else None  # the one at `path`, else the newest


def _available_bytes() -> int:
    import psutil  # noqa: PLC0415

    return int(psutil.virtual_memory().available)


@contextmanager
def _measuring_alone(path: Path) -> Iterator[None]:
    """One process measures at a time (two at once would disturb each other's timings)."""
    from filelock import FileLock  # noqa: PLC0415

    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path.with_suffix(".lock")), timeout=LOCK_WAIT_S):
        yield


#: The ways a block is read: C order's rows, its two passes apart or pipelined; Fortran order's
#: columns, 8 side by side or one at a time by LLVM's loops, or 8 side by side in Lanes (in both
#: passes, or in the dw pass after a z pass one at a time), or in one pass of 8 streams in
#: Lanes, or its block transposed. Each Fortran walk's (columns per walk, lanes): `KernelPlan`'s
#: f_columns_per_walk and f_lanes.
_WALK_FIELDS = {
    "F columns": (DEFAULT_PLAN.f_columns_per_walk, 0),
    "F single columns": (1, 0),
    "F lanes": (DEFAULT_PLAN.f_columns_per_walk, 1),
    "F single lanes": (1, 1),
    "F streams": (DEFAULT_PLAN.f_columns_per_walk, 2),
}
F_WALKS = tuple(_WALK_FIELDS)
#: A way that has no blocks (`_blocked._stream_walk`): timed once a problem, its time that of
#: every block size.
UNBLOCKED = "F streams"
WAYS = ("C rows", "C pipelined", *F_WALKS, "F transpose")
#: A threshold above any n: every C-order block pipelined, or every Fortran-order one transposed.
ALWAYS = 2**62


Candidate = tuple[str, int, KernelPlan]  #: (way, block bytes, the plan that reads X that way)


def candidates() -> list[Candidate]:
    """(way, block bytes, the plan that reads X that way) for every candidate measured."""
    return [(way, size, plan_of(way, size)) for way in WAYS for size in _block_bytes(way)]


def _timed(way: str, block_bytes: int) -> bool:
    """Whether `measure` times this candidate: each block size of a way with blocks."""
    return way != UNBLOCKED or block_bytes == F_BLOCK_BYTES[0]


def _block_bytes(way: str) -> tuple[int, ...]:
    return C_BLOCK_BYTES if way.startswith("C") else F_BLOCK_BYTES


def plan_of(way: str, block_bytes: int) -> KernelPlan:
    if way.startswith("C"):
        below = ALWAYS if way == "C pipelined" else 0
        return DEFAULT_PLAN._replace(c_block_bytes=block_bytes, c_pipeline_below_n=below)
    below = ALWAYS if way == "F transpose" else 0
    return _f_walk_plan(way)._replace(f_block_bytes=block_bytes, f_transpose_below_n=below)


def _f_walk_plan(walk: str) -> KernelPlan:
    """Today's constants with Fortran order's columns walked `walk` (one of F_WALKS; the walk
    of today's constants for "F transpose")."""
    per_walk, lanes = _walk_fields(walk)
    return DEFAULT_PLAN._replace(f_columns_per_walk=per_walk, f_lanes=lanes)


def _walk_fields(walk: str) -> tuple[int, int]:
    """(columns per walk, lanes) of the walk named `walk`; today's for "F transpose"."""
    return _WALK_FIELDS.get(walk, (DEFAULT_PLAN.f_columns_per_walk, DEFAULT_PLAN.f_lanes))


def still_racing(
    runs: Sequence[Candidate], samples: Sequence[Sequence[float]], timed: list[int]
) -> list[int]:
    """Of the candidates `timed` (indices into `runs` and `samples`), those whose median time is
    within RACE_MARGIN of the best of their order's: the others drop out of the race."""
    median_s = {k: float(np.median(samples[k])) for k in timed}
    best_s: dict[str, float] = {}
    for k in timed:
        order = runs[k][0][0]
        best_s[order] = min(median_s[k], best_s.get(order, math.inf))
    return [k for k in timed if median_s[k] <= RACE_MARGIN * best_s[runs[k][0][0]]]


def measure(
    x_bytes: int,
    features: tuple[int, ...] = TUNE_FEATURES,
    rounds: int = ROUNDS,
    clock: Callable[[], float] = time.perf_counter,
    before: KernelPlan | None = None,
) -> dict[str, Any]:
    """Time every candidate (module docstring) on an X of `x_bytes` (`measuring_x_bytes`, as
    `tune` gives it) and choose, near ties keeping the plan `before`: the plan file's content."""
    import numba  # noqa: PLC0415

    from loopvec.backends.numba_parallel import _MIN_WORK_PER_THREAD, threaded_gradient  # noqa: PLC0415
    from loopvec.machine import last_level_cache_bytes  # noqa: PLC0415

    started = clock()
    threads = numba.get_num_threads()
    rng = np.random.default_rng(0)
    values = rng.standard_normal(x_bytes // 8)
    runs = candidates()
    timings: list[dict[str, Any]] = []
    for n, m in [(width, m) for width in features for m in (values.size // width, SMALL_M)]:
        X = {"C": values[: n * m].reshape(n, m), "F": values[: n * m].reshape(m, n).T}
        w = rng.standard_normal((n, 1)) / math.sqrt(n)
        Y = (rng.random((1, m)) < 0.5).astype(np.float64)
        calls = max(1, SAMPLE_BYTES // (n * m * 8))
        small = {"C": np.ascontiguousarray(X["C"][:, :64]), "F": np.asfortranarray(X["F"][:, :64])}
        for way, _, plan in runs:  # compile (or load) each order's code, outside the timing
            threaded_gradient(w, 0.0, small[way[0]], Y[:, :64], threads, 1, plan)
        samples: list[list[float]] = [[] for _ in runs]
        timed = [k for k, (way, size, _) in enumerate(runs) if _timed(way, size)]
        unblocked_k = next(k for k in timed if runs[k][0] == UNBLOCKED)
        for round_number in range(rounds):
            if round_number == RACE_ROUNDS:
                timed = still_racing(runs, samples, timed)
            for k in rng.permutation(timed):
                way, _, plan = runs[k]
                start = clock()
                for _ in range(calls):
                    threaded_gradient(w, 0.0, X[way[0]], Y, threads, _MIN_WORK_PER_THREAD, plan)
                samples[k].append((clock() - start) / calls)
        unblocked = samples[unblocked_k]
        for (way, size, _), measured in zip(runs, samples, strict=True):
            times = unblocked if way == UNBLOCKED else measured
            median_s = float(np.median(times))
            timings.append(
                {"n": n, "m": m, "way": way, "block_bytes": size, "median_s": median_s,
                 "bytes_per_s": n * m * 8 / median_s, "rounds": len(times)}
            )  # fmt: skip
    chosen = choose(timings, last_level_cache_bytes(), before)
    machine = _machine()
    return {
        "format": FORMAT,
        "plan": as_json(chosen),
        "plan_before": None if before is None else as_json(before),
        "gains": gains(timings, chosen),
        "timings": timings,
        "threads": threads,
        "x_bytes": x_bytes,
        "rounds": rounds,
        "measure_s": clock() - started,
        "measured_at": utc_now(),
        "machine_fingerprint": machine["fingerprint"],
        "cpu": machine["cpu"],
        "cpu_target": machine["cpu_target"],
        "code_fingerprint": code_fingerprint(),
    }


def _times(timings: list[dict[str, Any]]) -> dict[tuple[int, int, str, int], float]:
    """{(n, m, way, block bytes): median seconds}."""
    return {(t["n"], t["m"], t["way"], t["block_bytes"]): t["median_s"] for t in timings}


def _problems(timings: list[dict[str, Any]]) -> list[tuple[int, int]]:
    """The (n, m) measured, by width, in cache first."""
    return sorted({(t["n"], t["m"]) for t in timings})


def _c_way(n: int, pipeline_below_n: int) -> str:
    return "C pipelined" if n < pipeline_below_n else "C rows"


def _f_way(n: int, transpose_below_n: int, walk: str) -> str:
    return "F transpose" if n < transpose_below_n else walk


def _f_walk(plan: KernelPlan, in_cache: bool = False, wide: bool = False) -> str:
    """The name of the walk of `plan` for X from memory (of f_wide_from_n features or more:
    `wide`), or in cache."""
    per_walk, lanes = (
        (plan.f_cache_columns_per_walk, plan.f_cache_lanes) if in_cache
        else (plan.f_wide_columns_per_walk, plan.f_wide_lanes) if wide
        else (plan.f_columns_per_walk, plan.f_lanes)
    )  # fmt: skip
    if lanes == 2:  # the one pass, whatever its columns per walk
        return UNBLOCKED
    return next(walk for walk, fields in _WALK_FIELDS.items() if fields == (per_walk, lanes))


def _in_cache(n: int, m: int, cache_bytes: int) -> bool:
    """Whether the kernels count an X of (n, m) float64 as in cache (`_blocked.accumulate`)."""
    return n * m * 8 <= cache_bytes


def _f_way_of(n: int, m: int, plan: KernelPlan) -> str:
    in_cache = _in_cache(n, m, plan.f_cache_bytes)
    wide = not in_cache and 0 < plan.f_wide_from_n <= n
    return _f_way(n, plan.f_transpose_below_n, _f_walk(plan, in_cache, wide))


def choose(
    timings: list[dict[str, Any]], cache_bytes: int = 0, before: KernelPlan | None = None
) -> KernelPlan:
    """The plan chosen part by part (`_choose_parts`), unless there is a plan `before` that it
    does not beat as a whole: its mean log(time of `before` / its time) over every problem
    measured, in both orders, within the tie band. Part by part, near ties of each choice kept
    the plan before, and the choices moved it anyway: on the 2-core Zen 3, 2026-12-08, six
    `loopvec tune` in a row moved it 5 times in 5 (C blocks 2 or 8 MiB, Fortran 64, 128 or 256
    KiB, the walks in cache and from memory), and replayed on the same six measurements, the plan
    as a whole moved once. (A plan before whose candidates were not measured is beaten.)"""
    plan = _choose_parts(timings, cache_bytes, before)
    if before is None or plan == before:
        return plan
    time_of = _times(timings)
    try:
        before_over_plan = [
            _time_with(time_of, n, m, order, before) / _time_with(time_of, n, m, order, plan)
            for n, m in _problems(timings)
            for order in "CF"
        ]
    except KeyError:
        return plan
    mean_log = sum(map(math.log, before_over_plan)) / len(before_over_plan)
    return plan if mean_log > math.log1p(DEFAULT_TIE_BAND) else before


def _choose_parts(
    timings: list[dict[str, Any]], cache_bytes: int = 0, before: KernelPlan | None = None
) -> KernelPlan:
    """The plan with the least mean log(median / best median on that problem) over the problems
    measured (each width from memory and in cache), for each order its block size and the width
    below which it pipelines (C) or transposes (Fortran): never, always, or between two widths
    measured, at their geometric mean; and in Fortran order how it walks the columns elsewhere,
    one walk for X of up to `cache_bytes` (the last-level cache's size; 0: unknown, one walk for
    every X) and one for larger X, or two, for X narrower and wider than a width between two
    measured. Near ties go to the candidate least behind on its worst problem, then to the plan
    `before` (`plan_before`), today's constants, the largest block, one walk for every X
    (`_pick`)."""
    time_of = _times(timings)
    problems = _problems(timings)
    widths = sorted({n for n, _ in problems})
    best: dict[tuple[int, int, str], float] = {}  # (n, m, "C" or "F") -> the fastest time
    for (n, m, way, _), median_s in time_of.items():
        best[n, m, way[0]] = min(median_s, best.get((n, m, way[0]), math.inf))

    def logs(way_of: Callable[[int, int], str], size: int, order: str) -> list[float]:
        return [
            math.log(time_of[n, m, way_of(n, m), size] / best[n, m, order]) for n, m in problems
        ]

    def f_way(n: int, m: int, f: tuple[int, int, str, str]) -> str:
        return _f_way(n, f[1], f[3] if _in_cache(n, m, cache_bytes) else f[2])

    between = [round(math.sqrt(a * b)) for a, b in itertools.pairwise(widths)]
    kept = (DEFAULT_PLAN,) if before is None else (before, DEFAULT_PLAN)
    c_block, c_below = _pick(
        [(size, below) for below in (0, *between, ALWAYS) for size in C_BLOCK_BYTES],
        lambda c: logs(lambda n, _: _c_way(n, c[1]), c[0], "C"),
        [(plan.c_block_bytes, plan.c_pipeline_below_n) for plan in kept],
        prefer=lambda c: (c[0],),
    )
    f_block, f_below, f_walk, f_cache_walk = _pick(
        [
            (size, below, walk, cache_walk)
            for walk in F_WALKS
            for cache_walk in (F_WALKS if cache_bytes else (walk,))
            for below in (0, *between, ALWAYS)
            for size in F_BLOCK_BYTES
        ],
        lambda f: logs(lambda n, m: f_way(n, m, f), f[0], "F"),
        [_f_option(plan) for plan in kept],
        prefer=lambda f: (f[0], f[2] == f[3]),
    )
    plan = _f_walk_plan(f_walk)._replace(
        c_block_bytes=c_block, f_block_bytes=f_block, f_transpose_below_n=f_below,
        c_pipeline_below_n=c_below,
    )  # fmt: skip

    # Then, on the problems from memory alone, from which width (if any) wide X is walked
    # another way: over every problem, one width's gain is averaged away (on a Zen 3, 8 columns
    # side by side 11 % faster at n = 1000 than the walk chosen tied it on the mean of six).
    from_memory = [(n, m) for n, m in problems if not _in_cache(n, m, cache_bytes)]

    def wide_logs(wide: tuple[int, str]) -> list[float]:
        at, walk = wide

        def way(n: int) -> str:
            return _f_way(n, f_below, walk if 0 < at <= n else f_walk)

        return [math.log(time_of[n, m, way(n), f_block] / best[n, m, "F"]) for n, m in from_memory]

    wide_from, wide_walk = (
        _pick(
            [(0, f_walk)] + [(at, walk) for at in between for walk in F_WALKS if walk != f_walk],
            wide_logs,
            [(p.f_wide_from_n, _f_walk(p, wide=True)) for p in kept if p.f_wide_from_n]
            + [(0, f_walk)],
            prefer=lambda wide: (wide[0] == 0, wide[0]),
        )
        if from_memory
        else (0, f_walk)
    )
    if wide_from:
        per_walk, lanes = _walk_fields(wide_walk)
        plan = plan._replace(
            f_wide_from_n=wide_from, f_wide_columns_per_walk=per_walk, f_wide_lanes=lanes
        )
    if f_cache_walk == f_walk:
        return plan
    per_walk, lanes = _walk_fields(f_cache_walk)
    return plan._replace(
        f_cache_bytes=cache_bytes, f_cache_columns_per_walk=per_walk, f_cache_lanes=lanes
    )


def _f_option(plan: KernelPlan) -> tuple[int, int, str, str]:
    """`plan`'s Fortran-order choice as `choose` lists it: (block bytes, transposed below n, the
    walk from memory, the walk in cache)."""
    return (
        plan.f_block_bytes, plan.f_transpose_below_n, _f_walk(plan),
        _f_walk(plan, in_cache=plan.f_cache_bytes > 0),
    )  # fmt: skip


T = TypeVar("T")


def _pick(
    options: Sequence[T],
    logs_of: Callable[[T], list[float]],
    kept: Sequence[T],
    prefer: Callable[[T], tuple[int, ...]],
) -> T:
    """The choice among `options`, from each one's log(time / best time) on every problem: those
    within the tie band of the least mean are equals (the measurement cannot tell them apart);
    of equals, those within the tie band of the least worst problem; of these the first of
    `kept` (the plan before, today's constants) that is one, else the one `prefer` ranks first
    (the largest block: the fewest blocks, the longest streams). The worst problem settles what
    the mean cannot: on an Ice Lake Xeon, in 4 of 14 measurements (one for AVX2), C order's 8 or
    32 MiB blocks tied 256 and 512 KiB on the mean but took 1.43x the best time from memory at
    n = 100. A choice that followed the noise would move, and retime every planned cell, at each
    `loopvec tune`."""
    band = math.log1p(DEFAULT_TIE_BAND)
    logs = {option: logs_of(option) for option in options}
    mean = {option: sum(logs[option]) / len(logs[option]) for option in options}
    least_mean = min(mean.values())
    equals = [option for option in options if mean[option] <= least_mean + band]
    worst = {option: max(logs[option]) for option in equals}
    least_worst = min(worst.values())
    safest = [option for option in equals if worst[option] <= least_worst + band]
    keep = [option for option in kept if option in safest]
    return keep[0] if keep else max(safest, key=prefer)


def gains(timings: list[dict[str, Any]], chosen: KernelPlan) -> dict[str, dict[str, float]]:
    """{"(m, n)": {order: time with today's constants / time with the chosen plan}}, as measured,
    by width, in cache first."""
    time_of = _times(timings)
    return {
        f"({m}, {n})": {
            order: _time_with(time_of, n, m, order, DEFAULT_PLAN)
            / _time_with(time_of, n, m, order, chosen)
            for order in "CF"
        }
        for n, m in _problems(timings)
    }


def _time_with(
    time_of: dict[tuple[int, int, str, int], float], n: int, m: int, order: str, plan: KernelPlan
) -> float:
    """The median time of the candidate that `plan` runs on the problem (n, m) in `order`."""
    if order == "C":
        return time_of[n, m, _c_way(n, plan.c_pipeline_below_n), plan.c_block_bytes]
    return time_of[n, m, _f_way_of(n, m, plan), plan.f_block_bytes]
