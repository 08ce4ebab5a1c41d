"""Did the machine itself change speed? The canaries of two runs, compared. Pure: no I/O.

Every pass times three fixed workloads at its start and its end (`loopvec.runner.canary`). Each
such moment gives one time per workload (the median of its rounds), and each pass one level (the
mean log time of its moments). Between two runs, a workload *moved* when B/A of its passes'
levels (Welch's t, as cells are compared) lies wholly beyond the tie band; within a run, when its
passes' levels lie further apart than the band plus what the canary's own round-to-round noise
explains. (A cell's interval holds the spread between its passes; a level the whole run
kept, it cannot see: the between-run test is the one that guards a comparison.) A cell whose
time follows a workload that moved is not called changed: its verdict is "machine drifted"
(`affected`).

Which workloads a cell's time follows (`workloads_of`): a loop in Python follows the interpreter;
a cell whose X is beyond the caches (`MEMORY_BOUND_BYTES`) follows compute and memory; a smaller
one, its calls and dispatch included, follows the interpreter and compute.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from loopvec.stats import Estimate, difference_between_runs, robust_cv, verdict

WORKLOADS = ("interpreter", "compute", "memory")
#: X at least this large is read from memory in every call (beyond L2 and a core's L3 share).
MEMORY_BOUND_BYTES = 8 * 2**20
#: How many standard errors of a moment's median its noise may move it, within a run.
NOISE_ALLOWANCE = 3.0
_BYTES_PER_ELEMENT = {"float64": 8, "float32": 4}


@dataclass(frozen=True)
class CanaryMoment:
    """One canary of one pass process: `moment` start or end; rounds' seconds by workload."""

    run: str
    pass_number: int
    pid: int
    moment: str
    seconds: Mapping[str, Sequence[float]]

    def median_s(self, workload: str) -> float:
        return float(np.median(self.seconds[workload]))

    def standard_error(self, workload: str) -> float:
        """Of log(median), from the rounds' robust CV (the median's SE: 1.2533 sigma / sqrt n)."""
        rounds = np.asarray(self.seconds[workload], dtype=np.float64)
        return 1.2533 * robust_cv(rounds) / math.sqrt(rounds.size) if rounds.size >= 4 else 0.0


@dataclass(frozen=True)
class Drift:
    """How one workload's time moved: B/A between the runs, and each run's spread within."""

    workload: str
    between: Estimate | None  # None: a side has no canary
    within_a: float  # slowest / fastest pass of run A (1.0: one pass, or none)
    within_b: float
    limit_a: float  # the spread run A's canary noise explains (a ratio >= 1 + band)
    limit_b: float
    band: float

    @property
    def moved_between(self) -> bool:
        return self.between is not None and verdict(self.between, self.band) != "same"

    @property
    def moved_within(self) -> list[str]:
        """The runs ("A", "B") within which the machine's speed moved."""
        spreads = (("A", self.within_a, self.limit_a), ("B", self.within_b, self.limit_b))
        return [side for side, spread, limit in spreads if spread > limit]

    @property
    def moved(self) -> bool:
        return self.moved_between or bool(self.moved_within)

    @property
    def reach(self) -> float:
        """How far the machine's movement could move a time, on log scale: the far end of the
        interval of B/A where it moved between the runs, the spread of a run where it moved
        within; 0 where it did not move."""
        reach = 0.0
        if self.moved_between and self.between is not None and self.between.low > 0:
            reach = max(abs(math.log(self.between.low)), abs(math.log(self.between.high)))
        for side in self.moved_within:
            reach = max(reach, math.log(self.within_a if side == "A" else self.within_b))
        return reach

    def describe(self) -> str:
        """'memory +6.1 % [4.0, 8.3] between the runs; moved within B (5.2 % apart)'."""
        parts = []
        if self.between is not None:
            b = self.between
            parts.append(
                f"{self.workload} {_percent(b.value)} [{_percent(b.low)}, {_percent(b.high)}] B/A"
            )
        else:
            parts.append(f"{self.workload} (no canary on a side)")
        for side in self.moved_within:
            spread = self.within_a if side == "A" else self.within_b
            parts.append(f"moved within {side} ({(spread - 1) * 100:.1f} % apart)")
        return "; ".join(parts)


def canary_drift(
    a: Sequence[CanaryMoment], b: Sequence[CanaryMoment], band: float
) -> dict[str, Drift]:
    """Per workload, how the machine's speed moved between runs A and B and within each."""
    drifts = {}
    for workload in WORKLOADS:
        levels_a, limit_a = _levels(a, workload, band)
        levels_b, limit_b = _levels(b, workload, band)
        between = difference_between_runs(levels_a, levels_b) if levels_a and levels_b else None
        drifts[workload] = Drift(
            workload, between, _spread(levels_a), _spread(levels_b), limit_a, limit_b, band
        )
    return drifts


def _levels(
    moments: Sequence[CanaryMoment], workload: str, band: float
) -> tuple[list[float], float]:
    """One run's canary per pass process (the mean log time of its moments, start and end: the
    passes are the units, as for a cell), and the spread of those levels that the canary's own
    noise explains: each level may stray NOISE_ALLOWANCE standard errors, so two may lie twice
    that apart, beyond the band."""
    by_pass: dict[tuple[int, int], list[CanaryMoment]] = {}
    for moment in (m for m in moments if workload in m.seconds):
        by_pass.setdefault((moment.pass_number, moment.pid), []).append(moment)
    levels = [
        float(np.mean([math.log(m.median_s(workload)) for m in ms])) for ms in by_pass.values()
    ]
    errors = [
        math.sqrt(sum(m.standard_error(workload) ** 2 for m in ms)) / len(ms)
        for ms in by_pass.values()
    ]
    noise = 2 * NOISE_ALLOWANCE * float(np.median(errors)) if errors else 0.0
    return levels, math.exp(math.log1p(band) + noise)


def _spread(levels: Sequence[float]) -> float:
    return math.exp(max(levels) - min(levels)) if levels else 1.0


def workloads_of(family: str | None, m: int, n: int, dtype: str = "float64") -> tuple[str, ...]:
    """The canary workloads a cell's time follows (see the module's docstring)."""
    if family == "loops":
        return ("interpreter",)
    if m * n * _BYTES_PER_ELEMENT.get(dtype, 8) >= MEMORY_BOUND_BYTES:
        return ("compute", "memory")
    return ("interpreter", "compute")


def affected(workloads: Sequence[str], drifts: Mapping[str, Drift]) -> list[Drift]:
    """The drifts among `workloads` where the machine moved."""
    return [drifts[w] for w in workloads if w in drifts and drifts[w].moved]


def explains(change: Estimate, moved: Sequence[Drift]) -> bool:
    """Whether the machine's movement (`moved`, the cell's workloads that moved) could account
    for a cell's B/A: its interval reaches into the movement's `reach` on either side. A
    change wholly beyond it is the code's, whatever the machine did."""
    reach = max((d.reach for d in moved), default=0.0)
    if reach == 0.0 or change.low <= 0:
        return reach > 0.0
    return not (math.log(change.low) > reach or math.log(change.high) < -reach)


def _percent(ratio: float) -> str:
    return f"{(ratio - 1) * 100:+.1f} %" if math.isfinite(ratio) else "?"
