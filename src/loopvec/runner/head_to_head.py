"""`loopvec check --time`: a user's function against the loops, numpy and the fastest backend here,
measured as the grid measures (docs/method.md).

Each pass is a separate process (`python -m loopvec.runner.head_to_head SPEC OUT`) that times the
contenders of one size side by side in interleaved blocks, in the grid's order (`plan.pass_order`:
sizes as given in pass 1, shuffled after) and with its rounds (`plan.round_plan`). Before a
contender is timed at a size it is called once and checked against the reference (a wrong answer
is never timed); a call over the budget is not timed at that size or larger ones, and says so.
Ratios are the grid's paired ratios over the passes, with Student's t intervals
(`stats.ratio_estimate`), and a ratio whose interval allows a tie is called one.

The user's function reaches the passes with cloudpickle: by value where it lives in no importable
module (a notebook, `__main__`, a file loaded by path), by reference otherwise. Which loopvec
backend is "the fastest here" is decided by a short screen in this process (its times are not
reported): the passes then time it with the others.
"""

from __future__ import annotations

import functools
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from loopvec.agreement import Reference
from loopvec.backends import BACKENDS, available_backends, get_adapters, get_kernel
from loopvec.diagnosis import as_column, as_number
from loopvec.formatting import format_estimate, format_seconds
from loopvec.grid import Cell, thread_limit
from loopvec.problem import Problem, make_problem, tiny_problem
from loopvec.results import write_json_atomic
from loopvec.runner.plan import NO_WARMUP_FROM_S, RoundPlan, rest_before_s, round_plan
from loopvec.runner.plan import pass_order as grid_pass_order
from loopvec.runner.timing import time_one_call, wait_until_quiet
from loopvec.stats import (
    DEFAULT_TIE_BAND,
    Estimate,
    ratio_estimate,
    seed_of,
    time_estimate,
    verdict,
)
from loopvec.target import Target, split_result

#: The user's function, among the contenders.
YOURS = "yours"
#: What every function is timed against; the fastest backend here joins them.
BASELINES = ("python_loops", "numpy_vectorized")
#: Families the fastest backend is screened from (loops are never the fastest; Dask's
#: cluster costs seconds to start and serves other sizes).
_SCREENED = ("vectorized", "jit", "framework")
DEFAULT_SIZES = (1_000, 10_000, 100_000)
DEFAULT_N = 100
DEFAULT_PASSES = 5
DEFAULT_BLOCKS = 3
#: Time per contender, size and pass (the blocks share it), as the grid's `pass_time_s`.
DEFAULT_PASS_TIME_S = 0.1
#: A contender whose checked call takes longer is not timed at that size nor at larger ones.
DEFAULT_BUDGET_S = 5.0
#: Calls per backend in the screen for the fastest (after a warm-up call).
_SCREEN_CALLS = 9


class TimingError(RuntimeError):
    """The timing could not be done: the function cannot be pickled, or a pass failed."""


@dataclass(frozen=True)
class Spec:
    """What each pass is handed (as JSON beside the pickled function)."""

    label: str
    signature: str
    sizes: tuple[int, ...]
    n: int
    threads: int
    blocks: int
    pass_time_s: float
    budget_s: float
    fastest: dict[str, str]  #: str(m) -> the backend screened fastest at (m, n)
    sys_path: list[str]  #: where the function's modules are found (its file's folder, say)

    def contenders(self, m: int) -> list[str]:
        return list(dict.fromkeys([YOURS, *BASELINES, self.fastest[str(m)]]))


@dataclass(frozen=True)
class SizeResult:
    """One size: each contender's time and the user's speedup over each (time(other) /
    time(yours)), with 95 % intervals; `skipped` says why a contender has none."""

    m: int
    n: int
    times: dict[str, Estimate]
    speedups: dict[str, Estimate]
    skipped: dict[str, str]

    def sentence(self) -> str:
        """'m = 100,000, n = 100: 310x [290, 330] faster than the loops, 0.92x [0.88, 0.97]
        numpy_vectorized's speed, ...'."""
        if YOURS not in self.times:
            return f"m = {self.m:,}, n = {self.n}: yours not timed ({self.skipped[YOURS]})"
        parts = []
        for name, speedup in self.speedups.items():
            them = "the loops" if name == "python_loops" else name
            if verdict(speedup) == "same":
                parts.append(f"a tie with {them} ({format_estimate(speedup)})")
            elif speedup.value > 1:
                parts.append(f"{format_estimate(speedup)} faster than {them}")
            else:
                whose = "the loops'" if name == "python_loops" else f"{name}'s"
                parts.append(f"{format_estimate(speedup)} {whose} speed")
        parts += [f"{name} not timed ({why})" for name, why in self.skipped.items()]
        mine = self.times[YOURS]
        yours = f"{format_seconds(mine.value)} ±{mine.half_width:.0%}"
        return f"m = {self.m:,}, n = {self.n}: yours {yours}; " + ", ".join(parts)


@dataclass(frozen=True)
class HeadToHead:
    """The timing of a checked function: one `SizeResult` per size, and where it was measured."""

    label: str
    fingerprint: str
    machine: str
    threads: int
    passes: int
    blocks: int
    sizes: list[SizeResult]
    wall_s: float
    screened: list[str] = field(default_factory=list)
    interrupted: bool = False

    def __str__(self) -> str:
        stopped = " (interrupted: the passes that finished)" if self.interrupted else ""
        lines = [
            f"{self.label} (source {self.fingerprint}) timed on {self.machine}, {self.threads} "
            f"thread{'s' * (self.threads > 1)}, {self.passes} passes (separate processes) x "
            f"{self.blocks} interleaved blocks, 95 % intervals, ties within "
            f"{DEFAULT_TIE_BAND * 100:g} %{stopped}; wall time {format_seconds(self.wall_s)}",
            f"  the fastest backend at each size was screened from {', '.join(self.screened)}",
        ]
        lines += [f"  {size.sentence()}" for size in self.sizes]
        return "\n".join(lines)

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def _checked_call(
    name: str,
    kernel: Callable[..., Any],
    args: tuple[Any, ...],
    to_numpy: Callable[[Any], Any],
    reference: Reference,
) -> float:
    """Call once and check against the reference (never time a wrong answer): seconds taken."""
    got, call_s = time_one_call(kernel, args)
    reference.check(name, to_numpy(got))
    return call_s


def _yours_to_numpy(signature: str, n: int) -> Callable[[Any], tuple[Any, Any]]:
    def to_numpy(result: Any) -> tuple[Any, Any]:
        dw, db, _ = split_result(result, signature)
        return as_column(dw, n), as_number(db)

    return to_numpy


@dataclass
class _Pass:
    """One pass's state: what it timed, skipped and planned, and the block it timed last."""

    spec: Spec
    function: Callable[..., Any]
    samples: dict[str, dict[str, list[list[float]]]] = field(default_factory=dict)
    skipped: dict[str, dict[str, str]] = field(default_factory=dict)
    plans: dict[tuple[str, int], tuple[Callable[..., Any], tuple[Any, ...], RoundPlan]] = field(
        default_factory=dict
    )
    over_budget: dict[str, int] = field(default_factory=dict)  #: name -> the m it went over at
    problem: tuple[int, Problem, Reference] | None = None  #: one size's problem at a time
    before: tuple[str, int] | None = None

    def skip(self, name: str, m: int, why: str) -> None:
        self.skipped.setdefault(name, {})[str(m)] = why

    def start(self, name: str, m: int) -> None:
        """Block 0 of a contender at size m: check it, warm it up, plan its rounds (or skip)."""
        spec = self.spec
        if name in self.over_budget and m > self.over_budget[name]:
            self.skip(
                name, m, f"over the {spec.budget_s:g} s budget at m = {self.over_budget[name]:,}"
            )
            return
        if self.problem is None or self.problem[0] != m:
            problem = make_problem(m, spec.n, seed=seed_of("check", m, spec.n))
            self.problem = (m, problem, Reference.of(problem))
        _, problem, reference = self.problem
        tiny = tiny_problem()
        if name == YOURS:
            kernel, to_numpy = self.function, _yours_to_numpy(spec.signature, spec.n)
            args = (problem.w.copy(), problem.b, problem.X.copy(), problem.Y.copy())
            tiny_args: tuple[Any, ...] = (tiny.w, tiny.b, tiny.X, tiny.Y)
        else:
            kernel = get_kernel(name)
            to_native, to_numpy = get_adapters(name)
            args = to_native(problem.w, problem.b, problem.X, problem.Y)
            tiny_args = to_native(tiny.w, tiny.b, tiny.X, tiny.Y)
        with thread_limit(spec.threads):
            try:
                time_one_call(kernel, tiny_args)  # compile, or load from the cache: untimed
                got, call_s = time_one_call(kernel, args)
                reference.check(name, to_numpy(got))  # a wrong answer is never timed
            except Exception as error:  # the user's, at a size the checks did not try
                if name != YOURS:
                    raise  # a built-in backend that fails is loopvec's bug: stop
                self.skip(name, m, f"{type(error).__name__} here, never timed: {error}")
                return
            if call_s > spec.budget_s:
                self.over_budget[name] = m
                took = format_seconds(call_s)
                self.skip(name, m, f"one call took {took}, over the {spec.budget_s:g} s budget")
                return
            if call_s < NO_WARMUP_FROM_S:
                _, call_s = time_one_call(kernel, args)  # warm-up: caches, pages, branches
        self.plans[name, m] = (kernel, args, round_plan(call_s, spec.pass_time_s, spec.blocks))

    def time_block(self, name: str, m: int, block: int) -> None:
        """Block `block` of a started contender: its rounds, as pytest-benchmark's pedantic
        times them (iterations calls per round, warm-up rounds dropped)."""
        kernel, args, plan = self.plans[name, m]
        if block >= plan.blocks:
            return
        if wait_s := rest_before_s(self.before, name):
            wait_until_quiet(wait_s)
        self.before = (name, self.spec.threads)
        rounds = []
        with thread_limit(self.spec.threads):
            for round_number in range(plan.warmup_rounds + plan.rounds):
                start = time.perf_counter()
                for _ in range(plan.iterations):
                    kernel(*args)
                if round_number >= plan.warmup_rounds:
                    rounds.append((time.perf_counter() - start) / plan.iterations)
        self.samples.setdefault(name, {}).setdefault(str(m), []).append(rounds)
        if block == plan.blocks - 1:
            del self.plans[name, m]


def run_pass(spec: Spec, function: Callable[..., Any], number: int, seed: int) -> dict[str, Any]:
    """Pass `number`: every contender at every size, blocks interleaved as the grid's; returns
    {"samples": {name: {m: [[seconds per call by round] by block]}}, "skipped": {...}}."""
    cells = [
        Cell(name, m, spec.n, spec.threads, "float64", "C")
        for m in spec.sizes
        for name in spec.contenders(m)
    ]
    state = _Pass(spec, function)
    for cell, block in grid_pass_order(cells, number, spec.blocks, seed):
        if block == 0:
            state.start(cell.backend, cell.m)
        if (cell.backend, cell.m) in state.plans:
            state.time_block(cell.backend, cell.m, block)
    return {"samples": state.samples, "skipped": state.skipped}


def screen_fastest(m: int, n: int, threads: int) -> tuple[str, list[str]]:
    """The backend with the shortest median of a few checked calls at (m, n), among the
    available non-loop, non-Dask backends; and the names screened. Not a measurement: the passes
    time the one chosen."""
    names = [b for b in available_backends() if BACKENDS[b].own and BACKENDS[b].family in _SCREENED]
    problem = make_problem(m, n, seed=seed_of("screen", m, n))
    reference = Reference.of(problem)
    calls: dict[str, Callable[[], Any]] = {}
    with thread_limit(threads):
        for name in names:
            kernel = get_kernel(name)
            to_native, to_numpy = get_adapters(name)
            args = to_native(problem.w, problem.b, problem.X, problem.Y)
            time_one_call(kernel, args)  # compile, or load from the cache
            got, _ = time_one_call(kernel, args)
            reference.check(name, to_numpy(got))
            calls[name] = functools.partial(kernel, *args)
        # Round-robin, so that a drift of the machine cannot favour one backend.
        seconds: dict[str, list[float]] = {name: [] for name in names}
        for _ in range(_SCREEN_CALLS):
            for name, call in calls.items():
                seconds[name].append(time_one_call(call)[1])
    medians = {name: float(np.median(s)) for name, s in seconds.items()}
    return min(medians, key=medians.__getitem__), names


def _pickled(target: Target) -> bytes:
    """The function for the passes, by cloudpickle: by value where its module is importable
    nowhere else (`__main__`, a notebook, a file loaded by path), by reference otherwise."""
    import cloudpickle  # noqa: PLC0415 (only --time needs it)

    try:
        return bytes(cloudpickle.dumps(target.function))
    except Exception as error:  # a closure over a lock, an open file, a C object ...
        raise TimingError(
            f"{target.label} cannot be sent to the timing processes: {type(error).__name__}: "
            f"{error}"
        ) from None


def time_against(
    target: Target,
    signature: str = "gradient",
    *,
    sizes: Sequence[int] = DEFAULT_SIZES,
    n: int = DEFAULT_N,
    threads: int = 1,
    passes: int = DEFAULT_PASSES,
    blocks: int = DEFAULT_BLOCKS,
    pass_time_s: float = DEFAULT_PASS_TIME_S,
    budget_s: float = DEFAULT_BUDGET_S,
    say: Callable[[str], None] = lambda text: print(text, file=sys.stderr, flush=True),
) -> HeadToHead:
    """Time the (checked) function against the baselines and the fastest backend at each size,
    each pass in a process of its own."""
    from loopvec.machine import machine_record  # noqa: PLC0415

    start = time.perf_counter()
    pickled = _pickled(target)  # before anything is measured: a function that cannot travel
    machine = machine_record(measure_bandwidth=False)
    where = f"{machine.get('cpu')} ({machine.get('cpu_target')})"
    say(f"loopvec check: screening the fastest backend at {len(sizes)} sizes")
    fastest: dict[str, str] = {}
    screened: list[str] = []
    for m in sizes:
        fastest[str(m)], screened = screen_fastest(m, n, threads)
    spec = Spec(
        label=target.label,
        signature=signature,
        sizes=tuple(sizes),
        n=n,
        threads=threads,
        blocks=blocks,
        pass_time_s=pass_time_s,
        budget_s=budget_s,
        fastest=fastest,
        sys_path=list(sys.path),
    )
    seed = seed_of("head_to_head", target.fingerprint)
    outcomes, interrupted = [], False
    with tempfile.TemporaryDirectory(prefix="loopvec-check-") as folder:
        spec_path, function_path = Path(folder) / "spec.json", Path(folder) / "function.pkl"
        spec_path.write_text(json.dumps(asdict(spec)))
        function_path.write_bytes(pickled)
        for number in range(1, passes + 1):
            so_far = format_seconds(time.perf_counter() - start)
            say(f"loopvec check: pass {number} of {passes} ({so_far} so far)")
            out = Path(folder) / f"pass-{number}.json"
            command = [
                sys.executable,
                "-m",
                __name__,
                str(spec_path),
                str(function_path),
                str(out),
                str(number),
                str(seed),
            ]
            child = subprocess.Popen(command)
            try:
                code = child.wait()
            except KeyboardInterrupt:
                child.terminate()
                child.wait()
                interrupted = True
                break
            if code != 0:
                raise TimingError(
                    f"pass {number} of the timing failed (exit status {code}): see above"
                )
            outcomes.append(json.loads(out.read_text()))
    if not outcomes:
        raise KeyboardInterrupt
    return HeadToHead(
        label=target.label,
        fingerprint=target.fingerprint,
        machine=where,
        threads=threads,
        passes=len(outcomes),
        blocks=blocks,
        sizes=[_size_result(m, n, spec, outcomes) for m in sizes],
        wall_s=time.perf_counter() - start,
        screened=screened,
        interrupted=interrupted,
    )


def _size_result(m: int, n: int, spec: Spec, outcomes: list[dict[str, Any]]) -> SizeResult:
    times, speedups, skipped = {}, {}, {}
    samples = {}
    for name in spec.contenders(m):
        passes = [o["samples"].get(name, {}).get(str(m)) for o in outcomes]
        reasons = [o["skipped"].get(name, {}).get(str(m)) for o in outcomes]
        if any(p is None for p in passes):
            skipped[name] = next((r for r in reasons if r), "not timed in every pass")
            continue
        samples[name] = passes
        times[name] = time_estimate(passes, seed_of(name, m, n))
    if YOURS in samples:
        for name in spec.contenders(m)[1:]:
            if name in samples:
                speedups[name] = ratio_estimate(
                    samples[name], samples[YOURS], paired=True, seed=seed_of(name, m, n)
                )
    return SizeResult(m, n, times, speedups, skipped)


def main(argv: Sequence[str]) -> int:
    """A pass: SPEC FUNCTION OUT NUMBER SEED."""
    import cloudpickle  # noqa: PLC0415

    spec_path, function_path, out, number, seed = argv
    values = json.loads(Path(spec_path).read_text())
    spec = Spec(**{**values, "sizes": tuple(values["sizes"])})
    sys.path[:0] = [p for p in spec.sys_path if p not in sys.path]
    function = cloudpickle.loads(Path(function_path).read_bytes())
    write_json_atomic(Path(out), run_pass(spec, function, int(number), int(seed)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
