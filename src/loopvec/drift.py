"""Did the machine itself change speed? The canaries of two runs, compared. Pure: no I/O.

Every pass times three fixed workloads at its start and its end (`loopvec.runner.canary`). Each
such moment gives one time per workload (the median of its rounds). Between two runs, a workload
*moved* when B/A of its moments' times (Welch's t over the moments of each run, as cells are
compared) lies wholly beyond the tie band; within a run, when its passes (each the mean of its
start and end, on log scale) spread wider than the band plus what the canary's own round-to-round
noise explains. (A cell's interval holds the spread between its passes; a level the whole run
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
            parts.append(f"moved within {side} ({spread - 1:.1%} apart)")
        return "; ".join(parts)


def canary_drift(
    a: Sequence[CanaryMoment], b: Sequence[CanaryMoment], band: float
) -> dict[str, Drift]:
    """Per workload, how the machine's speed moved between runs A and B and within each."""
    drifts = {}
    for workload in WORKLOADS:
        mine = [c for c in a if workload in c.seconds]
        theirs = [c for c in b if workload in c.seconds]
        logs_a = [math.log(c.median_s(workload)) for c in mine]
        logs_b = [math.log(c.median_s(workload)) for c in theirs]
        between = difference_between_runs(logs_a, logs_b) if logs_a and logs_b else None
        within_a, limit_a = _within(mine, workload, band)
        within_b, limit_b = _within(theirs, workload, band)
        drifts[workload] = Drift(workload, between, within_a, within_b, limit_a, limit_b, band)
    return drifts


def _within(moments: Sequence[CanaryMoment], workload: str, band: float) -> tuple[float, float]:
    """(slowest / fastest pass, the most that noise explains) of one run's canary: a pass is
    the mean log time of its moments (start, end); each pass's level may stray NOISE_ALLOWANCE
    standard errors, so two may lie twice that apart, beyond the band."""
    by_pass: dict[tuple[int, int], list[CanaryMoment]] = {}
    for moment in moments:
        by_pass.setdefault((moment.pass_number, moment.pid), []).append(moment)
    levels = [
        float(np.mean([math.log(m.median_s(workload)) for m in ms])) for ms in by_pass.values()
    ]
    errors = [
        math.sqrt(sum(m.standard_error(workload) ** 2 for m in ms)) / len(ms)
        for ms in by_pass.values()
    ]
    spread = math.exp(max(levels) - min(levels)) if levels else 1.0
    noise = 2 * NOISE_ALLOWANCE * float(np.median(errors)) if errors else 0.0
    return spread, math.exp(math.log1p(band) + noise)


def workloads_of(family: str | None, m: int, n: int, dtype: str = "float64") -> tuple[str, ...]:
    """The canary workloads a cell's time follows (see the module's docstring)."""
    if family == "loops":
        return ("interpreter",)
    if m * n * _BYTES_PER_ELEMENT.get(dtype, 8) >= MEMORY_BOUND_BYTES:
        return ("compute", "memory")
    return ("interpreter", "compute")


def affected(workloads: Sequence[str], drifts: Mapping[str, Drift]) -> list[Drift]:
    """The drifts among `workloads` where the machine moved: a change there is not the code's."""
    return [drifts[w] for w in workloads if w in drifts and drifts[w].moved]


def _percent(ratio: float) -> str:
    return f"{(ratio - 1) * 100:+.1f} %" if math.isfinite(ratio) else "?"
