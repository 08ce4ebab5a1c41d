"""Compare two runs cell by cell: the ratio of medians, and whether it is a change at all.

A difference counts as a change only when each run's median lies outside the other run's
interquartile range [q1, q3]: noise that both runs show is not a regression.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from loopvec.results import AnyRecord, TrainingRecord


@dataclass(frozen=True)
class Comparison:
    """One cell timed in both runs: ratio = median_b / median_a (above 1: B is slower)."""

    a: AnyRecord
    b: AnyRecord

    @property
    def cell(self) -> str:
        """What was compared, in words."""
        r = self.a
        if isinstance(r, TrainingRecord):
            return f"train {r.dataset} {r.backend} m={r.m} n={r.n} t={r.threads} i={r.iterations}"
        return f"{r.backend} m={r.m} n={r.n} t={r.threads} {r.dtype}"

    @property
    def ratio(self) -> float:
        return (self.b.median_s or 0.0) / (self.a.median_s or 1.0)

    @property
    def code_changed(self) -> bool:
        """Whether B timed other code than A (its backend's code fingerprint differs)."""
        return self.a.code_fingerprint != self.b.code_fingerprint

    @property
    def changed(self) -> bool:
        a, b = self.a, self.b
        if None in (a.q1_s, a.q3_s, b.q1_s, b.q3_s, a.median_s, b.median_s):
            return False  # no spread recorded: never call it a change
        outside_a = not (a.q1_s <= b.median_s <= a.q3_s)  # type: ignore[operator]
        outside_b = not (b.q1_s <= a.median_s <= b.q3_s)  # type: ignore[operator]
        return outside_a and outside_b


def compare_runs(a: Sequence[AnyRecord], b: Sequence[AnyRecord]) -> list[Comparison]:
    """The cells (gradient or training) timed in both runs, whatever their hosts, in A's order."""
    timed_b = {(type(r), r.cell): r for r in b if r.timed}
    return [
        Comparison(r, timed_b[(type(r), r.cell)])
        for r in a
        if r.timed and (type(r), r.cell) in timed_b
    ]


def regressions(comparisons: list[Comparison], percent: float) -> list[Comparison]:
    """Cells that changed and got slower by more than `percent` %."""
    return [c for c in comparisons if c.changed and c.ratio > 1 + percent / 100]
