"""Time whole training runs: each backend does the grid's iterations of gradient descent (1000 in
the default grid, learning rate 0.5, from w = 0, b = 0) on the breast-cancer data and on a
synthetic problem (m = 10,000, n = 100).

Per cell: skip if already timed, if the dataset cannot be loaded, or if the run is predicted
(iterations x one warm gradient call) to exceed --train-budget; move the data into the backend
(untimed); train once untimed, which compiles, warms up and is checked against numpy_vectorized's
run (w and b to rtol 1e-9; a wrong backend is never timed); then pytest-benchmark times whole runs
(the loop alone: kernel, update, and the cost every 100 iterations) and the cell file is written.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pytest
from timing import time_one_call, timing_fields

from loopvec.backends import get_adapters, get_kernel
from loopvec.grid import TrainingCell, thread_limit, training_rounds
from loopvec.training import Descent, TrainResult, accuracy

if TYPE_CHECKING:
    from conftest import BenchRun

#: How close every backend's learned w and b must be to numpy_vectorized's.
TRAIN_RTOL = 1e-9


def check_against(reference: TrainResult, got: TrainResult) -> None:
    """AssertionError unless `got` learned reference's w, b and costs to TRAIN_RTOL."""
    np.testing.assert_allclose(got.w, reference.w, rtol=TRAIN_RTOL, err_msg="w")
    np.testing.assert_allclose(got.b, reference.b, rtol=TRAIN_RTOL, err_msg="b")
    np.testing.assert_allclose(got.costs, reference.costs, rtol=TRAIN_RTOL, err_msg="costs")


def test_training(benchmark, training_cell: TrainingCell, run: BenchRun) -> None:  # type: ignore[no-untyped-def]
    cell = training_cell
    if cell.cell_id in run.done:
        pytest.skip(f"{cell.cell_id}: already timed in {run.folder} (--fresh to redo)")
    try:
        problem, reference = run.training_problem(cell)
    except ImportError as error:
        run.skip(cell, f"dataset {cell.dataset} not available: {error}")
    settings = {"learning_rate": cell.learning_rate, "iterations": cell.iterations}
    descent = Descent(cell.backend, problem.w, problem.b, problem.X, problem.Y)
    to_native, _ = get_adapters(cell.backend)
    kernel, args = get_kernel(cell.backend), to_native(problem.w, problem.b, problem.X, problem.Y)
    signature = (cell.backend, "float64", "C")
    with thread_limit(cell.threads):
        _, first_call_s = time_one_call(kernel, args)  # compiles, or loads the numba cache
        run.compile_s.setdefault(signature, first_call_s)
        _, call_s = time_one_call(kernel, args)
        predicted_s = cell.iterations * call_s
        if predicted_s > run.train_budget_s:
            run.skip(
                cell,
                f"predicted {predicted_s:.3g} s per training run ({cell.iterations} x "
                f"{call_s:.3g} s per gradient) > train budget {run.train_budget_s:g} s",
                predicted_s=predicted_s,
            )
        try:
            checked, run_s = time_one_call(lambda: descent.run(**settings))
            check_against(reference, checked)
        except Exception as error:  # wrong, or crashed: recorded, never timed, fails the run
            run.write_cell(cell, "failed", reason=f"{type(error).__name__}: {error}")
            raise
        benchmark.group = f"training {cell.dataset} m={cell.m} n={cell.n} threads={cell.threads}"
        benchmark.extra_info.update(cell.params(), compile_s=run.compile_s[signature])
        benchmark.pedantic(
            descent.run, kwargs=settings, rounds=training_rounds(run_s, run.max_time_s)
        )

    run.write_cell(
        cell,
        "timed",
        **timing_fields(benchmark),
        compile_s=run.compile_s[signature],
        predicted_s=predicted_s,
        checked_run_s=run_s,
        accuracy=accuracy(checked.w, checked.b, problem.X, problem.Y),
        final_cost=checked.final_cost,
    )
