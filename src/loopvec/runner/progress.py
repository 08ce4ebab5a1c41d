"""The progress line of a pass: one line per cell, with what became of it and the time left.

    [pass 2/3] [14/40] numba_fused-m1000-n10-t1-float64-C timed: median 3.1 us over 2 pass(es) |
    timed 9, resumed 3, skipped 2, failed 0, left 26, about 0.4 min left

A cell's outcome is what the pass decided for it (`decided`), never read back from a message.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

#: What can become of a cell in a pass.
OUTCOMES = ("timed", "resumed", "skipped", "failed")


@dataclass
class Progress:
    """The cells of a pass in its order, and the outcome of each as it is decided and reported."""

    cells: list[Any] = field(default_factory=list)  # Cell | TrainingCell, in the pass's order
    counts: Counter[str] = field(default_factory=Counter)
    started_s: float = field(default_factory=time.perf_counter)
    _decided: dict[str, tuple[str, str]] = field(default_factory=dict)
    _reported: set[str] = field(default_factory=set)

    def decided(self, cell_id: str, outcome: str, detail: str) -> None:
        """What became of `cell_id` in this pass (its first decision counts), with why."""
        assert outcome in OUTCOMES, outcome
        if cell_id not in self._reported:
            self._decided.setdefault(cell_id, (outcome, detail))

    def take(self, cell_id: str) -> tuple[str, str] | None:
        """The outcome of `cell_id` once it is decided, counted; None before, or after it was
        taken."""
        outcome = self._decided.pop(cell_id, None)
        if outcome is not None:
            self._reported.add(cell_id)
            self.counts[outcome[0]] += 1
        return outcome

    def failed(self, cell_id: str) -> tuple[str, str] | None:
        """The outcome of `cell_id`, whose test failed: what was decided, or "failed" where
        nothing was (it crashed before); None once it was reported (a later block's error)."""
        if cell_id in self._reported:
            return None
        outcome = self.take(cell_id)
        if outcome is None:
            self._reported.add(cell_id)
            self.counts["failed"] += 1
            outcome = ("failed", "")
        return outcome

    @property
    def finished(self) -> int:
        return sum(self.counts.values())

    @property
    def remaining(self) -> list[Any]:
        return self.cells[self.finished :]

    def mean_cell_s(self) -> float:
        return (time.perf_counter() - self.started_s) / max(self.finished, 1)

    def line(
        self, pass_label: str, cell_id: str, outcome: tuple[str, str], time_left_s: float
    ) -> str:
        """The line of `cell_id` (its `outcome` and why), with the counts so far."""
        left = len(self.cells) - self.finished
        eta = f"about {time_left_s / 60:.1f} min left" if left else "done"
        counts = ", ".join(f"{name} {self.counts[name]}" for name in OUTCOMES)
        return (
            f"[{pass_label}] [{self.finished}/{len(self.cells)}] {cell_id} {outcome[0]}: "
            f"{outcome[1]} | {counts}, left {left}, {eta}"
        )
