"""`loopvec check --time`: a user's function against the loops, numpy and the fastest backend here,
measured by the benchmark grid itself (`loopvec.bench`: passes as processes, interleaved blocks,
95 % intervals; docs/method.md), into a run folder under results/check/.

The function joins the grid as a backend (`--backend yours=FILE.pkl:yours`, sent with
cloudpickle), checked again at each size before it is timed; the bench's budget skips a
contender whose calls are too slow, saying so. Which loopvec backend is "the fastest here" is
decided first by a short screen in this process (its times are not reported): the grid then
times it with the others, and each size's sentence compares with that size's fastest.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from loopvec.agreement import Reference
from loopvec.backends import BACKENDS, available_backends, get_adapters, get_kernel
from loopvec.formatting import format_estimate, format_seconds
from loopvec.grid import thread_limit
from loopvec.problem import make_problem
from loopvec.runner.timing import time_one_call
from loopvec.stats import DEFAULT_TIE_BAND, Estimate, seed_of, verdict
from loopvec.target import Target, pickled_target, split_result

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
#: A contender whose calls are predicted slower is not timed at that size (the bench's --budget).
DEFAULT_BUDGET_S = 5.0
#: Calls per backend in the screen for the fastest (after a warm-up call).
_SCREEN_CALLS = 9
#: Where the runs go, beside the grid's.
RESULTS = Path("results") / "check"


class TimingError(RuntimeError):
    """The timing could not be done: the function cannot be pickled, or the bench failed."""


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
    sizes: list[SizeResult]
    wall_s: float
    folder: str
    screened: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        lines = [
            f"{self.label} (source {self.fingerprint}) timed on {self.machine}, {self.threads} "
            f"thread{'s' * (self.threads > 1)}, {self.passes} passes (separate processes), "
            f"interleaved blocks, 95 % intervals, ties within {DEFAULT_TIE_BAND * 100:g} %; "
            f"wall time {format_seconds(self.wall_s)}; run folder {self.folder}",
            f"  the fastest backend at each size was screened from {', '.join(self.screened)}",
        ]
        lines += [f"  {size.sentence()}" for size in self.sizes]
        return "\n".join(lines)


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


def _as_gradient(function: Callable[..., Any], signature: str) -> Callable[..., Any]:
    """The function as the grid calls a backend, gradient(w, b, X, Y) -> (dw, db): itself, or
    for the propagate form its grads read out (its cost is computed, and timed, as written)."""
    if signature == "gradient":
        return function

    @functools.wraps(function)
    def gradient(w: Any, b: Any, X: Any, Y: Any) -> tuple[Any, Any]:
        dw, db, _ = split_result(function(w, b, X, Y), signature)
        return dw, db

    return gradient


def time_against(
    target: Target,
    signature: str = "gradient",
    *,
    sizes: Sequence[int] = DEFAULT_SIZES,
    n: int = DEFAULT_N,
    threads: int = 1,
    passes: int = DEFAULT_PASSES,
    budget_s: float = DEFAULT_BUDGET_S,
    results_dir: Path = RESULTS,
    options: Sequence[str] = (),
    say: Callable[[str], None] = print,
) -> HeadToHead:
    """Time the (checked) function against the baselines and the fastest backend at each size,
    by the benchmark grid (`loopvec.bench`)."""
    from loopvec.benchmark import BenchError, bench  # noqa: PLC0415 (the bench loads late)

    start = time.perf_counter()
    try:  # before anything is measured: a function that cannot travel
        yours = pickled_target(_as_gradient(target.function, signature), YOURS, results_dir)
    except Exception as error:  # a closure over a lock, an open file, a C object ...
        raise TimingError(
            f"{target.label} cannot be sent to the timing processes: {type(error).__name__}: "
            f"{error}"
        ) from None
    say(f"loopvec check: screening the fastest backend at {len(sizes)} sizes")
    fastest = {m: screen_fastest(m, n, threads) for m in sizes}
    contenders = list(dict.fromkeys([*BASELINES, *(name for name, _ in fastest.values())]))
    try:
        results = bench(
            [f"{YOURS}={yours}", *contenders],
            m=sizes,
            n=[n],
            threads=[threads],
            passes=passes,
            training=False,
            results_dir=results_dir,
            options=[f"--budget={budget_s}", *options],
            say=say,
        )
    except BenchError as error:
        raise TimingError(str(error)) from None
    return HeadToHead(
        label=target.label,
        fingerprint=target.fingerprint,
        machine=f"{results.machine.get('cpu')} ({results.machine.get('cpu_target')})",
        threads=threads,
        passes=max((len(r.passes) for r in results.records), default=0),
        sizes=[_size_result(results, m, n, threads, [*BASELINES, fastest[m][0]]) for m in sizes],
        wall_s=time.perf_counter() - start,
        folder=str(results.folder),
        screened=next(iter(fastest.values()))[1] if fastest else [],
    )


def _size_result(results: Any, m: int, n: int, threads: int, others: list[str]) -> SizeResult:
    """Yours and each of `others` at (m, n): times, your speedups, why one was not timed."""
    cells = {r.backend: r for r in results.records if (r.m, r.n, r.threads) == (m, n, threads)}
    times, speedups, skipped = {}, {}, {}
    for name in [YOURS, *dict.fromkeys(others)]:
        record = cells.get(name)
        if record is None or not record.timed or record.estimate is None:
            skipped[name] = record.reason if record is not None and record.reason else "not timed"
            continue
        times[name] = record.estimate
        if name != YOURS and YOURS in times:
            speedup = results.speedup(name, YOURS, m=m, n=n, threads=threads)
            if speedup is not None:
                speedups[name] = speedup
    return SizeResult(m, n, times, speedups, skipped)
