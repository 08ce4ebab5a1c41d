"""Records in, the numbers that the figures, REPORT.md and report.html share: ratios and winners,
cost models and crossovers, thread speedups, layout ratios, the outer loop's cost. Pure functions:
no drawing, no text, no file I/O.

Comparisons are made at one thread count: a backend that cannot use threads has only threads = 1
cells, and at a higher thread count it is compared with those (it runs the same either way). Times
are the estimates of `loopvec.stats` (the geometric mean of the passes' medians). The speedup of a
backend over a baseline = baseline time / backend time, with its 95 % interval, and only between
cells of the same run (`ratio`): a report may merge runs, never their ratios. A speedup whose
interval does not clear the tie band is a tie (`stats.verdict`).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

from loopvec.backends import BACKENDS
from loopvec.grid import CostModel, fit_cost_model
from loopvec.results import AnyRecord, Record, TrainingRecord, shared_passes
from loopvec.stats import (
    DEFAULT_TIE_BAND,
    Estimate,
    difference_estimate,
    ratio_estimate,
    seed_of,
    verdict,
)

#: The memory order of X the course uses (a row per feature): every figure but `layout_effect`
#: compares backends in it.
COURSE_LAYOUT = "C"


#: One thread count's view of a run: (backend, m, n) -> record (see `at_threads`).
Cells = dict[tuple[str, int, int], Record]


def backends_in(records: Sequence[AnyRecord]) -> list[str]:
    """Backends in first-seen order (records come in registry order within a size)."""
    return list(dict.fromkeys(r.backend for r in records))


def in_course_layout(records: Sequence[Record]) -> list[Record]:
    return [r for r in records if r.layout == COURSE_LAYOUT]


def at_threads(
    records: Sequence[Record], threads: int, dtype: str = "float64", layout: str = COURSE_LAYOUT
) -> Cells:
    """(backend, m, n) -> the record in `dtype` and `layout` at `threads`, or at 1 thread for
    single-threaded backends. Figures compare float64 (the course's arithmetic) in the course's
    layout unless they say otherwise."""
    threaded = {r.backend for r in records if r.threads > 1}
    return {
        (r.backend, r.m, r.n): r
        for r in records
        if r.dtype == dtype
        and r.layout == layout
        and (r.threads == threads or (r.threads == 1 and r.backend not in threaded))
    }


def max_threads(records: Sequence[Record]) -> int:
    return max((r.threads for r in records), default=1)


def middle_n(n_values: Sequence[int]) -> int:
    """The n of single-n views: 100 (the issues' reference size) if present, else the largest."""
    return 100 if 100 in n_values else max(n_values)


def run_date(records: Sequence[AnyRecord]) -> str:
    """The day the run finished (its last cell), as YYYY-MM-DD; '' for records without one."""
    return max((r.finished_at for r in records), default="")[:10]


def ratio(slow: AnyRecord | None, fast: AnyRecord | None) -> Estimate | None:
    """time(slow) / time(fast) (how many times faster `fast` is) with its 95 % interval, or None
    unless both were timed in the same run: a ratio across runs (another session, perhaps other
    code) is not a measured speedup. Cells of one problem and thread count were timed side by
    side, block by block, and are paired so (`stats.ratio_estimate`)."""
    if slow is None or fast is None or not (slow.timed and fast.timed) or slow.run != fast.run:
        return None
    if slow.backend == fast.backend and slow.code_fingerprint != fast.code_fingerprint:
        return None  # thread scaling or float32 against float64 of two versions of a kernel
    return _ratio(slow, fast)


@cache
def _ratio(slow: AnyRecord, fast: AnyRecord) -> Estimate | None:
    a, b, paired = shared_passes(slow, fast)
    if not a:
        return None
    return ratio_estimate(a, b, paired=paired, seed=seed_of(slow.run, slow.cell, fast.cell))


def predicted_ratio(skipped: AnyRecord | None, fast: AnyRecord | None) -> float | None:
    """A skipped cell's predicted time / a timed cell's time, within one run, or None."""
    if skipped is None or fast is None or not fast.timed or skipped.run != fast.run:
        return None
    return skipped.predicted_s / (fast.median_s or 1.0) if skipped.predicted_s else None


def ranked(cells: Cells, m: int, n: int) -> list[Record]:
    """The timed records at (m, n), fastest first; none where they come from several runs
    (which is fastest would be a comparison across runs)."""
    timed = [r for (_, mm, nn), r in cells.items() if (mm, nn) == (m, n) and r.timed]
    if len({r.run for r in timed}) > 1:
        return []
    return sorted(timed, key=lambda r: r.median_s or 0.0)


@dataclass(frozen=True)
class Winner:
    """The fastest backend of a cell, or the backends it ties with."""

    tied: tuple[Record, ...]  #: the fastest first, then every backend not decisively slower
    margin: Estimate | None  #: runner-up time / fastest time; None with one backend alone

    @property
    def best(self) -> Record:
        return self.tied[0]

    @property
    def decisive(self) -> bool:
        return len(self.tied) == 1

    @property
    def label(self) -> str:
        """'numba_fused', or 'numba_fused ≈ numpy_vectorized' for a tie."""
        return " ≈ ".join(r.backend for r in self.tied)


def winner(cells: Cells, m: int, n: int, tie_band: float = DEFAULT_TIE_BAND) -> Winner | None:
    """Who is fastest at (m, n): a backend whose lead over every other clears the tie band with
    its whole interval, else the set of backends that tie for first; None if nothing was timed
    there in one run."""
    order = ranked(cells, m, n)
    if not order:
        return None
    best, others = order[0], order[1:]
    margins = [ratio(other, best) for other in others]
    tied = [
        o for o, e in zip(others, margins, strict=True) if e and verdict(e, tie_band) != "slower"
    ]
    return Winner((best, *tied), margins[0] if margins else None)


def fastest(cells: Cells, m: int, n: int) -> Record | None:
    """The timed record with the smallest time at (m, n), or None (see `ranked`); whether it
    wins or ties, `winner` says."""
    return next(iter(ranked(cells, m, n)), None)


def is_framework(backend: str) -> bool:
    """One of the frameworks loopvec compares itself with (a plug-in never is)."""
    spec = BACKENDS.get(backend)
    return spec is not None and spec.own and spec.family == "framework"


def ours_and_theirs(cells: Cells, m: int, n: int) -> tuple[Record | None, Record | None]:
    """The fastest of loopvec's own backends and the fastest framework backend at (m, n); a
    plug-in is neither (it is not loopvec's, and not the frameworks' as their users use them)."""
    own = {k: r for k, r in cells.items() if r.origin == "loopvec"}
    ours = fastest({k: r for k, r in own.items() if not is_framework(k[0])}, m, n)
    theirs = fastest({k: r for k, r in own.items() if is_framework(k[0])}, m, n)
    return ours, theirs


def not_ours(records: Sequence[AnyRecord]) -> dict[str, str]:
    """{backend: origin} of the records' backends that are not loopvec's own (plug-ins)."""
    return {r.backend: r.origin for r in records if r.origin != "loopvec"}


def fit_models(
    records: Sequence[Record], threads: int, dtype: str = "float64"
) -> dict[str, CostModel]:
    """Each backend's cost model at `threads`, fitted to its timed cells (as the grid does)."""
    cells = at_threads(records, threads, dtype)
    models = {}
    for backend in backends_in(records):
        timed = [r for (b, _, _), r in cells.items() if b == backend and r.timed]
        model = fit_cost_model(
            [r.m for r in timed], [r.n for r in timed], [r.median_s or 0.0 for r in timed]
        )
        if model is not None:
            models[backend] = model
    return models


def crossover_m(cells: Cells, fast: str, slow: str, n: int) -> tuple[str, float | None]:
    """From which m on `fast` beats `slow` at n: ("from", m), ("always", None), ("never", None).

    The m is interpolated geometrically where log(time ratio) crosses zero, after the last m at
    which `fast` still lost; ("unknown", None) where they share fewer than one timed m.
    """
    speedups = sorted(
        (m, ratio(cells.get((slow, m, n)), record))
        for (b, m, nn), record in cells.items()
        if b == fast and nn == n
    )
    log_ratio = [(m, math.log(r.value)) for m, r in speedups if r is not None]  # > 0: fast wins
    if not log_ratio:
        return ("unknown", None)
    losing = [k for k, (_, r) in enumerate(log_ratio) if r <= 0]
    if not losing:
        return ("always", None)
    last = losing[-1]
    if last == len(log_ratio) - 1:
        return ("never", None)
    (m0, r0), (m1, r1) = log_ratio[last], log_ratio[last + 1]
    fraction = -r0 / (r1 - r0)
    return ("from", math.exp(math.log(m0) + fraction * (math.log(m1) - math.log(m0))))


def thread_speedups(records: Sequence[Record]) -> dict[str, tuple[Estimate, int, int]]:
    """backend -> (time at 1 thread / time at the most threads, m, n) at the largest float64
    size timed both ways; threaded backends only."""
    most = max_threads(records)
    by_cell = {
        (r.backend, r.m, r.n, r.threads): r for r in records if r.timed and r.dtype == "float64"
    }
    speedups = {}
    for backend in backends_in(records):
        both = [
            (m * n, m, n)
            for (b, m, n, t) in by_cell
            if b == backend and t == 1 and most > 1 and (b, m, n, most) in by_cell
        ]
        if both:
            _, m, n = max(both)
            speedup = ratio(by_cell[(backend, m, n, 1)], by_cell[(backend, m, n, most)])
            if speedup is not None:
                speedups[backend] = (speedup, m, n)
    return speedups


def layout_ratios(records: Sequence[Record], threads: int) -> dict[tuple[str, int, int], Estimate]:
    """(backend, m, n) -> time in Fortran order / time in C order, float64 at `threads` (below 1:
    Fortran order is faster), for every size timed in both layouts in one run."""
    fortran, course = at_threads(records, threads, layout="F"), at_threads(records, threads)
    return {
        key: estimate
        for key, record in fortran.items()
        if (estimate := ratio(record, course.get(key))) is not None
    }


#: (dataset, m, n, iterations) of a training record, and that view of a run's training cells.
TrainingProblem = tuple[str, int, int, int]
TrainingCells = dict[tuple[TrainingProblem, str], TrainingRecord]


def training_view(records: Sequence[TrainingRecord], loop: str = "python") -> TrainingCells:
    """(problem, backend) -> its record in `loop` at the most threads (or 1 for single-threaded
    ones)."""
    most = max((r.threads for r in records), default=1)
    threaded = {r.backend for r in records if r.threads > 1}
    return {
        (r.problem, r.backend): r
        for r in records
        if r.loop == loop and (r.threads == most or (r.threads == 1 and r.backend not in threaded))
    }


@dataclass(frozen=True)
class LoopCost:
    """One problem and backend trained in both loops, in one run: the time of a step in each,
    the Python loop's cost per step (its time minus the compiled loop's) and their ratio."""

    python: TrainingRecord
    compiled: TrainingRecord
    python_step_s: Estimate
    compiled_step_s: Estimate
    overhead_s: Estimate  #: per step; the interval may reach below 0 where it is lost in noise
    speedup: Estimate  #: Python loop's time / compiled loop's

    @property
    def problem(self) -> TrainingProblem:
        return self.python.problem


def loop_costs(records: Sequence[TrainingRecord]) -> list[LoopCost]:
    """Every (problem, backend) timed in both loops in one run, at the most threads it ran at."""
    compiled = training_view(records, "compiled")
    costs = []
    for key, python in training_view(records).items():
        other = compiled.get(key)
        speedup = ratio(python, other)
        if other is None or speedup is None or python.median_s is None:
            continue
        a, b, _ = shared_passes(python, other)
        steps = python.iterations
        costs.append(
            LoopCost(
                python=python,
                compiled=other,
                python_step_s=_time_of(python).scaled(1 / steps),
                compiled_step_s=_time_of(other).scaled(1 / steps),
                overhead_s=difference_estimate(a, b).scaled(1 / steps),
                speedup=speedup,
            )
        )
    return costs


def _time_of(record: AnyRecord) -> Estimate:
    return Estimate(record.median_s or 0.0, record.low_s or 0.0, record.high_s or 0.0)


def loop_crossover_m(costs: Sequence[LoopCost]) -> float | None:
    """The m below which the Python loop takes more than half of a step: where the compiled
    step's time reaches the loop's cost per step (measured at the smallest m, where it is
    resolved best), interpolated on log-log scale between the sizes measured; `costs` are one
    backend's on problems of one n. None if it is not crossed within the sizes measured (the
    caller says which side), or the loop's cost is not above zero."""
    points = sorted((c.python.m, c.compiled_step_s.value) for c in costs)
    overhead_s = min(costs, key=lambda c: c.python.m).overhead_s.value if costs else 0.0
    if overhead_s <= 0:
        return None
    for (m0, t0), (m1, t1) in itertools.pairwise(points):
        if t0 < overhead_s <= t1:
            share = math.log(overhead_s / t0) / math.log(t1 / t0)
            return float(math.exp(math.log(m0) + share * math.log(m1 / m0)))
    return None


def outer_loop_series(records: Sequence[TrainingRecord]) -> dict[str, list[LoopCost]]:
    """backend -> its LoopCosts on the synthetic problems of the most common n, by m: the
    sizes of the outer-loop figure."""
    costs = [c for c in loop_costs(records) if c.python.dataset == "synthetic"]
    if not costs:
        return {}
    n = max((c.python.n for c in costs), key=[c.python.n for c in costs].count)
    series: dict[str, list[LoopCost]] = {}
    for cost in sorted(costs, key=lambda c: c.python.m):
        if cost.python.n == n:
            series.setdefault(cost.python.backend, []).append(cost)
    return series
