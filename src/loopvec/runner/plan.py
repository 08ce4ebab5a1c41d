"""How a pass spends its time: the rounds of a cell, the order of the cells, the rests between.

A run is several passes, each a separate process over the whole grid (`pass_order`). Within a pass
the backends of one problem and thread count (a group) are timed side by side: block 0 of each, in
a shuffled order, then block 1, and so on, so that slow drift of the machine hits them alike. A
block is one pytest-benchmark measurement of a few rounds (`round_plan`). A block that follows
another backend's block on several threads waits until the thread pools of the one before fall
asleep (`SETTLE_S`), or they take the cores of the one timed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from loopvec.grid import Cell, CostModel, TrainingCell
from loopvec.runner.rules import cost_model_reason

#: A round (iterations x one call) lasts at least this long: far above the timer's resolution.
MIN_ROUND_S = 20e-6
#: Rounds per block at most: plenty for a median, and cell files stay small.
MAX_ROUNDS = 25
#: Calls at least this slow get no warm-up round before each block: caches cannot matter.
NO_WARMUP_FROM_S = 0.01
#: The longest rest before a block that follows another backend's block on several threads,
#: untimed: thread pools spin after a call before they sleep, on the cores the next block uses
#: (the bench rests until they are quiet). Measured here at 2 threads: OpenBLAS's spin for 100 ms
#: after a numpy gradient, OpenMP's (numba_parallel) for 10 ms; a 20 ms numba_parallel call at
#: (1e6, 100) took 31 to 57 ms 60 ms after a numpy gradient, 21 ms 300 ms after; a 0.4 ms call
#: took 59 ms right after.
SETTLE_S = 1.0


@dataclass(frozen=True)
class RoundPlan:
    """How a cell is timed in one pass: `blocks` blocks (of the pass's), each pytest-benchmark's
    pedantic(rounds, iterations, warmup_rounds); a round's time / iterations = seconds per call."""

    iterations: int
    rounds: int
    warmup_rounds: int
    blocks: int

    def wall_s(self, call_s: float) -> float:
        calls = (self.rounds + self.warmup_rounds) * self.iterations * self.blocks
        return calls * call_s


def round_plan(call_s: float, pass_s: float, blocks: int) -> RoundPlan:
    """Rounds of at least MIN_ROUND_S (many calls each for a fast kernel), as many as fit in a
    block (pass_s / blocks), from 1 to MAX_ROUNDS; a warm-up round first unless a call takes
    NO_WARMUP_FROM_S. A call longer than a block is timed once in as many blocks as fit in
    pass_s, at least one: the passes, not the rounds, give a slow cell its spread."""
    call_s = max(call_s, 1e-9)
    iterations = max(1, math.ceil(MIN_ROUND_S / call_s - 1e-9))
    round_s = iterations * call_s
    rounds = min(MAX_ROUNDS, max(1, math.floor(pass_s / blocks / round_s)))
    timed_blocks = min(blocks, max(1, math.floor(pass_s / round_s)))
    return RoundPlan(iterations, rounds, 0 if call_s >= NO_WARMUP_FROM_S else 1, timed_blocks)


def training_rounds(run_s: float, pass_time_s: float) -> int:
    """Whole training runs to time in one pass: as many as fit in pass_time_s, at least one (the
    passes give the spread), at most MAX_ROUNDS."""
    return min(MAX_ROUNDS, max(1, math.floor(pass_time_s / run_s)))


def rest_before_s(before: tuple[str, int] | None, backend: str) -> float:
    """The longest rest before a block of `backend` after a block of (backend, threads)
    `before`: SETTLE_S if that was another backend on several threads, else none."""
    if before is None or before[1] <= 1 or before[0] == backend:
        return 0.0
    return SETTLE_S


def pass_order(
    cells: Sequence[Cell], pass_number: int, blocks: int, seed: int
) -> list[tuple[Cell, int]]:
    """(cell, block) in the order pass `pass_number` times them.

    Groups (the backends of one problem at one thread count) are timed side by side: block 0 of
    each backend in a shuffled order, then block 1, .... Pass 1 takes the sizes in the order
    given (smallest first: the budget's cost model learns from the smaller cells, and a cell too
    slow for the budget is never started); later passes take the sizes, and the dtypes and
    thread counts within a size, in a seeded random order. The dtypes of a size stay together:
    they share the generated problem. Every shuffle is seeded by (seed, pass_number).
    """
    rng = np.random.default_rng([seed, pass_number])

    def shuffled(items: list[Any]) -> list[Any]:
        return [items[k] for k in rng.permutation(len(items))] if pass_number > 1 else items

    order = []
    for size in shuffled(list(dict.fromkeys((c.m, c.n, c.layout) for c in cells))):
        mine = [c for c in cells if (c.m, c.n, c.layout) == size]
        for dtype, threads in shuffled(list(dict.fromkeys((c.dtype, c.threads) for c in mine))):
            group = [c for c in mine if (c.dtype, c.threads) == (dtype, threads)]
            for block in range(blocks):
                order += [(group[k], block) for k in rng.permutation(len(group))]
    return order


def training_order(cells: Sequence[TrainingCell], pass_number: int, seed: int) -> list[int]:
    """Indices of `cells` in the order pass `pass_number` times them: as given in pass 1, in a
    seeded random order after."""
    if pass_number == 1:
        return list(range(len(cells)))
    return [int(k) for k in np.random.default_rng([seed, pass_number]).permutation(len(cells))]


def cell_pass_s(
    model: CostModel | None, cell: Cell, budget_s: float, pass_s: float, blocks: int
) -> float | None:
    """Rough wall time of `cell` in one pass (check, warm-up, blocks), for the progress estimate.

    None where there is no model yet; 0 for a cell the budget will skip.
    """
    if model is None:
        return None
    if cost_model_reason(model, cell, budget_s):
        return 0.0  # the budget will skip it
    call_s = model.predict_s(cell.m, cell.n)
    return 2 * call_s + round_plan(call_s, pass_s, blocks).wall_s(call_s)
