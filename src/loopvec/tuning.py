"""Kernels tuned to the machine they run on: a few choices measured once, the choice kept.

The blocked kernels' speed on a CPU is decided by a few choices (`_blocked.KernelPlan`): the
block size in each memory order, the number of features below which a Fortran-order block is
copied into a C-order buffer in cache rather than walked by columns, how many columns are walked
side by side (8 or one), and the number of features below which C order's two passes are
pipelined (`_blocked._pipelined_rows`); Fortran order with at most `SHORT_COLUMN_MAX_N` features
has one way (two SIMD vectors a column), only its block size is the plan's. The best ones depend
on the caches, the prefetchers and the SIMD width: 256 KiB column blocks, chosen on the
reference machine (Zen 5, AVX-512), left Fortran order 1.78x slower than C at (1e6, 100) on a
Zen 3 (AVX2). As FFTW's planner does, loopvec measures the candidates once on each machine,
outside any timing, and keeps the choice in

    <numba cache root>/plans/<machine fingerprint>-<kernel code fingerprint>.json

beside the compiled code, so another machine or another version of the kernels gets a plan of
its own. `current()` is this process's plan: read from that file, measured on first use (a few
seconds, said on stderr), or today's constants (`DEFAULT_PLAN`) where it cannot be measured (a
cache folder that cannot be written, too little memory), saying so, or where
LOOPVEC_KERNEL_PLAN=default asks for them. `loopvec tune` measures again.

How: one X of TUNE_X_BYTES (far beyond the caches, as X is at (1e6, 100)) viewed at n = 32, 100
and 1000 in both orders; numba_parallel on all threads (the memory-bound case the plan is for);
every candidate timed in ROUNDS rounds, candidates in a new random order each round so that a
drifting machine shifts them all alike; the plan with the least mean log of its median time over
the best at each n, where near ties go to today's constants or the largest block (`choose`).
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
FORMAT = 1
#: X of the measuring problem: far beyond the caches, about 0.1 s a candidate at 25 GB/s.
TUNE_X_BYTES = 256 * 2**20
#: Widths measured: the plan serves narrow and wide X. The narrowest is above
#: `_blocked.SHORT_COLUMN_MAX_N`: below it Fortran order reads its short columns one way only.
TUNE_FEATURES = (32, 100, 1000)
#: Rounds of every candidate: with 5, five measurements on a drifting 2-core Xeon gave four
#: different plans; with 9 (10 s there), two, whose C blocks were within 3 % of each other.
ROUNDS = 9
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


def describe(plan: KernelPlan) -> str:
    """'C order 512 KiB blocks, pipelined below n = 320; Fortran order 128 KiB blocks,
    transposed below n = 32, else columns'."""
    below = plan.f_transpose_below_n
    how = (
        "columns walked" if below <= 0
        else "transposed" if below >= ALWAYS else f"transposed below n = {below}, else columns"
    )  # fmt: skip
    if below < ALWAYS and plan.f_columns_per_walk == 1:
        how += " one at a time"
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
    Fortran order's columns walked 8 at a time)."""
    given = {**KernelPlan._field_defaults, **value}
    try:
        plan = KernelPlan(**{field: int(given[field]) for field in KernelPlan._fields})
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"not a kernel plan: {value!r}") from error
    if plan.c_block_bytes <= 0 or plan.f_block_bytes <= 0:
        raise ValueError(f"not a kernel plan (block sizes must be positive): {value!r}")
    if plan.f_columns_per_walk not in (1, DEFAULT_PLAN.f_columns_per_walk):
        raise ValueError(f"not a kernel plan (columns per walk must be 1 or 8): {value!r}")
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
            f"Fortran {f_gain:.2f}x, C {c_gain:.2f}x at n = {n}"
            for n, (c_gain, f_gain) in sorted(
                (int(n), (g["C"], g["F"])) for n, g in self.measurement["gains"].items()
            )
        )
        return (
            f"kernel plan: {describe(self.plan)} (measured {self.measurement['measured_at']} in "
            f"{self.measurement['measure_s']:.1f} s; against today's constants: {gains}); "
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


def tune(path: Path | None = None, *, first_use: bool = False, **measuring: Any) -> PlanState:
    """Measure this machine's plan, keep it at `path` and run with it from now on; today's
    constants, saying why, where it cannot be measured or kept. `measuring` goes to `measure`
    (smaller sizes for the tests)."""
    path = path or plan_path()
    x_bytes = measuring.get("x_bytes", TUNE_X_BYTES)
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
                            "measuring this machine's kernel plan (first use; a few seconds, "
                            "outside any timing; `loopvec tune` measures it again)"
                        )
                    measurement = measure(**measuring)
                    write_json_atomic(path, measurement)
                    plan = from_json(measurement["plan"])
                    state = PlanState(plan, "measured", str(path), measurement)
                    _say(state.line())
        except OSError as error:  # a read-only or full cache folder: nowhere to keep a plan
            state = _default(f"it cannot be kept in {path.parent} ({error})")
    _current[:] = [state]
    hold(state.plan)
    return state


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
#: columns, 8 side by side or one at a time, or its block transposed.
WAYS = ("C rows", "C pipelined", "F columns", "F single columns", "F transpose")
#: A threshold above any n: every C-order block pipelined, or every Fortran-order one transposed.
ALWAYS = 2**62


def candidates() -> list[tuple[str, int, KernelPlan]]:
    """(way, block bytes, the plan that reads X that way) for every candidate measured."""
    return [(way, size, plan_of(way, size)) for way in WAYS for size in _block_bytes(way)]


def _block_bytes(way: str) -> tuple[int, ...]:
    return C_BLOCK_BYTES if way.startswith("C") else F_BLOCK_BYTES


def plan_of(way: str, block_bytes: int) -> KernelPlan:
    if way.startswith("C"):
        below = ALWAYS if way == "C pipelined" else 0
        return DEFAULT_PLAN._replace(c_block_bytes=block_bytes, c_pipeline_below_n=below)
    below = ALWAYS if way == "F transpose" else 0
    per_walk = 1 if way == "F single columns" else DEFAULT_PLAN.f_columns_per_walk
    return DEFAULT_PLAN._replace(
        f_block_bytes=block_bytes, f_transpose_below_n=below, f_columns_per_walk=per_walk
    )


def measure(
    x_bytes: int = TUNE_X_BYTES,
    features: tuple[int, ...] = TUNE_FEATURES,
    rounds: int = ROUNDS,
    clock: Callable[[], float] = time.perf_counter,
) -> dict[str, Any]:
    """Time every candidate (module docstring) and choose: the plan file's content."""
    import numba  # noqa: PLC0415

    from loopvec.backends.numba_parallel import _MIN_WORK_PER_THREAD, threaded_gradient  # noqa: PLC0415

    started = clock()
    threads = numba.get_num_threads()
    rng = np.random.default_rng(0)
    values = rng.standard_normal(x_bytes // 8)
    runs = candidates()
    timings: list[dict[str, Any]] = []
    for n in features:
        m = values.size // n
        X = {"C": values[: n * m].reshape(n, m), "F": values[: n * m].reshape(m, n).T}
        w = rng.standard_normal((n, 1)) / math.sqrt(n)
        Y = (rng.random((1, m)) < 0.5).astype(np.float64)
        small = {"C": np.ascontiguousarray(X["C"][:, :64]), "F": np.asfortranarray(X["F"][:, :64])}
        for way, _, plan in runs:  # compile (or load) each order's code, outside the timing
            threaded_gradient(w, 0.0, small[way[0]], Y[:, :64], threads, 1, plan)
        samples: list[list[float]] = [[] for _ in runs]
        for _ in range(rounds):
            for k in rng.permutation(len(runs)):
                way, _, plan = runs[k]
                start = clock()
                threaded_gradient(w, 0.0, X[way[0]], Y, threads, _MIN_WORK_PER_THREAD, plan)
                samples[k].append(clock() - start)
        for (way, size, _), times in zip(runs, samples, strict=True):
            median_s = float(np.median(times))
            timings.append(
                {"n": n, "way": way, "block_bytes": size, "median_s": median_s,
                 "bytes_per_s": n * m * 8 / median_s}
            )  # fmt: skip
    chosen = choose(timings)
    machine = _machine()
    return {
        "format": FORMAT,
        "plan": as_json(chosen),
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


def _times(timings: list[dict[str, Any]]) -> dict[tuple[int, str, int], float]:
    return {(t["n"], t["way"], t["block_bytes"]): t["median_s"] for t in timings}


def _c_way(n: int, pipeline_below_n: int) -> str:
    return "C pipelined" if n < pipeline_below_n else "C rows"


def _f_way(n: int, transpose_below_n: int, columns_per_walk: int) -> str:
    if n < transpose_below_n:
        return "F transpose"
    return "F single columns" if columns_per_walk == 1 else "F columns"


def _f_way_of(n: int, plan: KernelPlan) -> str:
    return _f_way(n, plan.f_transpose_below_n, plan.f_columns_per_walk)


def choose(timings: list[dict[str, Any]]) -> KernelPlan:
    """The plan with the least mean log(median / best median at that n) over the widths, for
    each order its block size and the width below which it pipelines (C) or transposes (Fortran):
    never, always, or between two widths measured, at their geometric mean; and in Fortran order
    how many columns it walks side by side elsewhere. Either order keeps today's constants, or
    the largest block, among candidates within the tie band of the best (`_pick`)."""
    time_of = _times(timings)
    widths = sorted({n for n, _, _ in time_of})
    best: dict[tuple[int, str], float] = {}  # (n, "C" or "F") -> the fastest candidate's time
    for (n, way, _), median_s in time_of.items():
        best[n, way[0]] = min(median_s, best.get((n, way[0]), math.inf))

    def score(way_of: Callable[[int], str], size: int, order: str) -> float:
        logs = [math.log(time_of[n, way_of(n), size] / best[n, order]) for n in widths]
        return sum(logs) / len(widths)

    between = [round(math.sqrt(a * b)) for a, b in itertools.pairwise(widths)]
    c_block, c_below = _pick(
        [(size, below) for below in (0, *between, ALWAYS) for size in C_BLOCK_BYTES],
        lambda c: score(lambda n: _c_way(n, c[1]), c[0], "C"),
        (DEFAULT_PLAN.c_block_bytes, DEFAULT_PLAN.c_pipeline_below_n),
        block_bytes=lambda c: c[0],
    )
    f_block, f_below, f_per_walk = _pick(
        [
            (size, below, per_walk)
            for per_walk in (DEFAULT_PLAN.f_columns_per_walk, 1)
            for below in (0, *between, ALWAYS)
            for size in F_BLOCK_BYTES
        ],
        lambda f: score(lambda n: _f_way(n, f[1], f[2]), f[0], "F"),
        (
            DEFAULT_PLAN.f_block_bytes,
            DEFAULT_PLAN.f_transpose_below_n,
            DEFAULT_PLAN.f_columns_per_walk,
        ),
        block_bytes=lambda f: f[0],
    )
    return KernelPlan(c_block, f_block, f_below, c_below, f_per_walk)


T = TypeVar("T")


def _pick(
    options: Sequence[T], score: Callable[[T], float], default: T, block_bytes: Callable[[T], int]
) -> T:
    """The choice among `options`: those within the tie band of the least score are equals (the
    measurement cannot tell them apart), and of equals today's `default` if it is one, else the
    one of largest block (the fewest blocks, the longest streams). A choice that followed the
    noise would move, and retime every planned cell, at each `loopvec tune`."""
    scores = {option: score(option) for option in options}
    least = min(scores.values())
    equals = [option for option, s in scores.items() if s <= least + math.log1p(DEFAULT_TIE_BAND)]
    return default if default in equals else max(equals, key=block_bytes)


def gains(timings: list[dict[str, Any]], chosen: KernelPlan) -> dict[str, dict[str, float]]:
    """{n: {order: time with today's constants / time with the chosen plan}}, as measured."""
    time_of = _times(timings)
    default = DEFAULT_PLAN
    return {
        str(n): {
            "C": time_of[n, _c_way(n, default.c_pipeline_below_n), default.c_block_bytes]
            / time_of[n, _c_way(n, chosen.c_pipeline_below_n), chosen.c_block_bytes],
            "F": time_of[n, _f_way_of(n, default), default.f_block_bytes]
            / time_of[n, _f_way_of(n, chosen), chosen.f_block_bytes],
        }
        for n in sorted({n for n, _, _ in time_of})
    }
