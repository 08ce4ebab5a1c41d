"""Compare two runs cell by cell: the ratio of medians, and whether it is a change at all.

A difference counts as a change only when each run's median lies outside the other run's
interquartile range [q1, q3]: noise that both runs show is not a regression.
"""

from __future__ import annotations

from dataclasses import dataclass

from loopvec.results import Record


@dataclass(frozen=True)
class Comparison:
    """One cell timed in both runs: ratio = median_b / median_a (above 1: B is slower)."""

    a: Record
    b: Record

    @property
    def ratio(self) -> float:
        return (self.b.median_s or 0.0) / (self.a.median_s or 1.0)

    @property
    def changed(self) -> bool:
        a, b = self.a, self.b
        if None in (a.q1_s, a.q3_s, b.q1_s, b.q3_s, a.median_s, b.median_s):
            return False  # no spread recorded: never call it a change
        outside_a = not (a.q1_s <= b.median_s <= a.q3_s)  # type: ignore[operator]
        outside_b = not (b.q1_s <= a.median_s <= b.q3_s)  # type: ignore[operator]
        return outside_a and outside_b


def compare_runs(a: list[Record], b: list[Record]) -> list[Comparison]:
    """The cells timed in both runs (whatever their hosts), in run A's order."""
    timed_b = {r.cell: r for r in b if r.timed}
    return [Comparison(r, timed_b[r.cell]) for r in a if r.timed and r.cell in timed_b]


def regressions(comparisons: list[Comparison], percent: float) -> list[Comparison]:
    """Cells that changed and got slower by more than `percent` %."""
    return [c for c in comparisons if c.changed and c.ratio > 1 + percent / 100]
