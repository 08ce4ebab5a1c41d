"""What the benchmark measures, in one place: named grids, cells, threads, the cost model.

A cell is one (backend, m, n, threads, dtype, layout). Cells run smallest problem first, so that
before each cell the cost model of its backend has been fitted on every smaller cell of the run:

    t(m, n) = overhead_s + per_example_s * m + per_element_s * m * n

(a fixed call overhead; work per example such as the sigmoid or, for a partly vectorized loop, one
interpreter iteration; work per entry of X such as a multiply-add and the bytes read). How a run
uses it (the budget, the passes and their order): `loopvec.runner`.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numba
import numpy as np
from threadpoolctl import threadpool_limits

from loopvec.backends import BACKENDS
from loopvec.datasets import SIZES as DATASET_SIZES
from loopvec.validation import DTYPES

#: Cells predicted to take longer than this per call are skipped (`--budget SECONDS`).
DEFAULT_BUDGET_S = 1.0
#: Blocks per cell and pass: the interleaved visits of a group's backends.
DEFAULT_BLOCKS = 3
#: Training cells whose runs over all passes are predicted to take longer than this are skipped
#: (`--train-budget SECONDS`; see `loopvec.runner.rules.training_cell_s`).
DEFAULT_TRAIN_BUDGET_S = 30.0
#: The learning rate of the training benchmark: stable on both of its datasets (standardized
#: features), and the course's choice in its model().
TRAIN_LEARNING_RATE = 0.5


@dataclass(frozen=True)
class Training:
    """A grid's training benchmark: `iterations` steps of gradient descent per backend on the
    breast-cancer data and on make_problem(synthetic_m, synthetic_n, seed=0), and on the
    synthetic problem at more sizes (`loop_sizes`, (m, iterations): fewer steps where a step is
    long) for the cost of the outer Python loop against m. Each backend runs in its Python loop
    and, where it has one, in its compiled loop."""

    iterations: int = 1000
    synthetic_m: int = 10_000
    synthetic_n: int = 100
    loop_sizes: tuple[tuple[int, int], ...] = (
        (10, 1000),
        (100, 1000),
        (1_000, 1000),
        (100_000, 100),
        (1_000_000, 10),
    )

    def problems(self) -> list[tuple[str, int, int, int]]:
        """(dataset, m, n, iterations) of every training problem; "synthetic" is make_problem."""
        return [
            *((name, m, n, self.iterations) for name, (m, n) in DATASET_SIZES.items()),
            ("synthetic", self.synthetic_m, self.synthetic_n, self.iterations),
            *(("synthetic", m, self.synthetic_n, steps) for m, steps in self.loop_sizes),
        ]


@dataclass(frozen=True)
class Grid:
    """A named set of problem sizes; threads default to 1 and all cores."""

    m_values: tuple[int, ...]
    n_values: tuple[int, ...]
    summary: str
    #: Time per cell over all passes (pytest-benchmark's --benchmark-max-time overrides it).
    max_time_s: float = 1.0
    training: Training = Training()
    passes: int = 5  #: separate processes over the grid (--passes overrides it)


def _decades(low: int, high: int) -> tuple[int, ...]:
    return tuple(10**k for k in range(round(math.log10(low)), round(math.log10(high)) + 1))


GRIDS: dict[str, Grid] = {
    "smoke": Grid(
        (1, 100),
        (1, 10),
        "every backend on tiny sizes, seconds: for CI",
        0.05,
        Training(10, 100, 10, loop_sizes=((1000, 10),)),  # Dask's steps take 50 ms here
        passes=2,
    ),
    "quick": Grid(
        (10, 1_000, 100_000),
        (10, 100),
        "a first look, about 2 minutes",
        0.1,
        Training(100, 1000, 100, loop_sizes=((100_000, 10),)),
        passes=3,
    ),
    "default": Grid(
        _decades(1, 1_000_000), (1, 10, 100, 1000), "m from 1 to 1e6, n from 1 to 1000", 0.5
    ),
    "full": Grid(
        _decades(1, 10_000_000), (1, 10, 100, 1000, 10_000), "up to the memory of the machine"
    ),
}


@dataclass(frozen=True)
class Cell:
    """One benchmark measurement: a backend on one problem size with one thread count."""

    backend: str
    m: int
    n: int
    threads: int
    dtype: str = "float64"
    layout: str = "C"

    @property
    def elements(self) -> int:
        """m * n, the number of entries of X."""
        return self.m * self.n

    @property
    def x_bytes(self) -> int:
        return self.elements * np.dtype(self.dtype).itemsize

    def params(self) -> dict[str, int | str]:
        """The cell's parameters as plain values (benchmark extra_info, cell files)."""
        return {**dataclasses.asdict(self), "x_bytes": self.x_bytes}

    @property
    def cell_id(self) -> str:
        """A file-name-safe identity, stable across runs (the resume key)."""
        return f"{self.backend}-m{self.m}-n{self.n}-t{self.threads}-{self.dtype}-{self.layout}"


def default_threads() -> tuple[int, ...]:
    """1 and all cores (just 1 on a one-core machine)."""
    return tuple(sorted({1, os.cpu_count() or 1}))


#: Memory orders of X the grid can time: the course layout (a row per feature) and its transpose.
LAYOUTS = ("C", "F")


def make_cells(
    m_values: Iterable[int],
    n_values: Iterable[int],
    backends: Sequence[str],
    threads: Iterable[int],
    dtypes: Iterable[str] = DTYPES,
    layouts: Iterable[str] = LAYOUTS,
) -> list[Cell]:
    """Every cell of the grid, smallest problem first; unthreaded backends only at 1 thread, those
    with a pool fixed at start-up (JAX) only at the most threads, and each backend only in the
    dtypes and layouts it is registered for.

    Within a size, cells of one dtype and layout come together: they share one problem.
    """
    sizes = sorted({(m, n) for m in m_values for n in n_values}, key=lambda s: (s[0] * s[1], s))
    thread_counts = sorted(set(threads))
    return [
        Cell(backend, m, n, t, dtype, layout)
        for m, n in sizes
        for dtype in [d for d in DTYPES if d in set(dtypes)]
        for layout in [o for o in LAYOUTS if o in set(layouts)]
        for backend in backends
        for t in thread_counts
        if _runs_at(backend, t, thread_counts)
        and dtype in BACKENDS[backend].dtypes
        and layout in BACKENDS[backend].layouts
    ]


def no_cell_reason(backend: str, threads: Iterable[int]) -> str | None:
    """Why `backend` has no cell at these thread counts (`_runs_at`), or None if it has one."""
    thread_counts = sorted(set(threads))
    if any(_runs_at(backend, t, thread_counts) for t in thread_counts):
        return None
    return "it runs at 1 thread only (it has no threads of its own), and --threads is " + ",".join(
        map(str, thread_counts)
    )


def _runs_at(backend: str, threads: int, thread_counts: Sequence[int]) -> bool:
    """Unthreaded backends run at 1 thread only, fixed pools (JAX) at the most threads only."""
    threading = BACKENDS[backend].threading
    if threading == "none":
        return threads == 1
    return threads == max(thread_counts) if threading == "fixed" else True


@dataclass(frozen=True)
class TrainingCell:
    """One training benchmark: a backend's whole run of gradient descent on one dataset.

    dataset is a name of loopvec.datasets.DATASETS, or "synthetic" (make_problem(m, n, seed=0)).
    """

    backend: str
    dataset: str
    m: int
    n: int
    iterations: int
    threads: int
    learning_rate: float = TRAIN_LEARNING_RATE
    record_every: int = 100  #: the cost is recorded (and checked) every this many steps
    loop: str = "python"  #: the training loop: "python", or "compiled" (`loopvec.train`)

    def params(self) -> dict[str, int | str | float]:
        """The cell's parameters as plain values; kind tells it from a gradient cell."""
        return {"kind": "training", **dataclasses.asdict(self)}

    @property
    def cell_id(self) -> str:
        loop = "" if self.loop == "python" else f"-{self.loop}"
        return f"train-{self.dataset}-m{self.m}-n{self.n}-{self.backend}-t{self.threads}{loop}"


def make_training_cells(
    problems: Iterable[tuple[str, int, int, int]],
    backends: Sequence[str],
    threads: Iterable[int],
) -> list[TrainingCell]:
    """Every training cell: each problem (dataset, m, n, iterations), backend, loop it has
    (the Python loop, and the compiled loop where it has one) and thread count it runs at."""
    thread_counts = sorted(set(threads))
    return [
        TrainingCell(backend, name, m, n, iterations, t, loop=loop)
        for name, m, n, iterations in problems
        for backend in backends
        for loop in ("python", "compiled")[: 2 if BACKENDS[backend].compiled_loop else 1]
        for t in thread_counts
        if _runs_at(backend, t, thread_counts)
    ]


@dataclass(frozen=True)
class CostModel:
    """t = overhead_s + per_example_s * m + per_element_s * m * n, fitted to one backend."""

    overhead_s: float
    per_example_s: float
    per_element_s: float

    def predict_s(self, m: float, n: float) -> float:
        return self.overhead_s + self.per_example_s * m + self.per_element_s * m * n

    def describe(self) -> str:
        """'1.2 us + 3.4 ns x m + 0.56 ns x m x n', zero terms left out."""
        terms = [
            f"{value * scale:.3g} {unit}"
            for value, scale, unit in (
                (self.overhead_s, 1e6, "us"),
                (self.per_example_s, 1e9, "ns x m"),
                (self.per_element_s, 1e9, "ns x m x n"),
            )
            if value > 0
        ]
        return " + ".join(terms) or "0 s"


def fit_cost_model(
    m_values: Sequence[int], n_values: Sequence[int], median_s: Sequence[float]
) -> CostModel | None:
    """Least squares in relative error (each cell counts alike, 1 us or 1 s), all terms >= 0.

    Needs two distinct sizes. Non-negativity is exact: with three terms, every subset of them is
    fitted and the best fit with no negative term wins (what an NNLS solver would find); among
    equally good fits the one with fewer terms. A cost per example needs two example counts: cells
    of one m (m = 1 at n = 1 and 10, say) cannot tell it from the overhead, and a 20 ms overhead
    taken for a cost per example would predict 2 s at m = 100.
    """
    m = np.asarray(m_values, dtype=np.float64)
    times = np.asarray(median_s, dtype=np.float64)
    columns = np.column_stack([np.ones_like(m), m, m * np.asarray(n_values, dtype=np.float64)])
    if len({(a, b) for a, b in columns[:, 1:]}) < 2:
        return None
    # Minimise sum(((x . row_i) - t_i) / t_i)^2: each row divided by t_i, against 1.
    design, target = columns / times[:, None], np.ones_like(times)
    best: tuple[float, np.ndarray] | None = None
    subsets: tuple[tuple[int, ...], ...] = ((0,), (1,), (2,), (0, 1), (0, 2), (1, 2), (0, 1, 2))
    if len(set(m)) < 2:
        subsets = tuple(s for s in subsets if 1 not in s)
    for subset in subsets:
        coefficients = np.zeros(3)
        coefficients[list(subset)] = np.linalg.lstsq(design[:, subset], target, rcond=None)[0]
        residual = float(np.sum((design @ coefficients - target) ** 2))
        if np.all(coefficients >= 0) and (best is None or residual < best[0] - 1e-12):
            best = (residual, coefficients)
    assert best is not None  # a single column always fits with a positive coefficient
    overhead, per_example, per_element = (float(c) for c in best[1])
    return CostModel(overhead, per_example, per_element)


@contextmanager
def thread_limit(threads: int) -> Iterator[None]:
    """Run the body with BLAS/OpenMP pools (threadpoolctl), numba's and torch's at `threads`.

    Every pool is set, not just the backend's own, so that threads = 1 means one thread for
    everything a backend calls (a partly vectorized loop's dot products included).
    """
    previous = numba.get_num_threads()
    torch = sys.modules.get("torch")  # only if a torch backend is in use: never import it here
    torch_previous = torch.get_num_threads() if torch else 0
    with threadpool_limits(limits=threads):
        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))  # type: ignore[attr-defined]
        if torch:
            torch.set_num_threads(threads)
        try:
            yield
        finally:
            numba.set_num_threads(previous)
            if torch:
                torch.set_num_threads(torch_previous)
