"""Time whole training runs: each backend does the grid's iterations of gradient descent (1000 in
the default grid, learning rate 0.5, from w = 0, b = 0) on the breast-cancer data and on a
synthetic problem (m = 10,000, n = 100), once in every pass.

Per cell and pass: skip if this pass of it is already timed, if the dataset cannot be loaded, or
if its runs over all passes are predicted (iterations x one warm gradient call, times the runs a
cell takes: `loopvec.runner.rules.training_cell_s`) to exceed --train-budget; move the
data into the backend (untimed). In the cell's first pass, train once untimed, which compiles,
warms up and is checked against numpy_vectorized's run (w, b and costs to
agreement.RTOL_TRAINING; a wrong backend is never timed), measuring the peak memory of a step and
of the run (`loopvec.memory`); later passes time the same code. Then
pytest-benchmark times whole runs (the loop alone: kernel, update, and the recorded cost) and the
pass is added to the cell's file."""

from __future__ import annotations

from typing import Any

import pytest

from loopvec.agreement import check_training
from loopvec.backends import get_adapters, get_kernel
from loopvec.grid import TrainingCell, thread_limit
from loopvec.memory import call_peak
from loopvec.problem import Problem
from loopvec.runner.plan import training_rounds
from loopvec.runner.rules import training_reason
from loopvec.runner.session import Pass
from loopvec.runner.timing import time_one_call
from loopvec.training import Descent, TrainResult, accuracy


def test_training(benchmark, training_cell: TrainingCell, run: Pass) -> None:  # type: ignore[no-untyped-def]
    cell = training_cell
    if why := run.not_timed(cell):
        pytest.skip(why)
    try:
        problem, reference = run.training_problem(cell)
    except ImportError as error:
        pytest.skip(run.skip(cell, f"dataset {cell.dataset} not available: {error}"))
    except Exception as error:  # the reference run itself failed: nothing can be checked
        run.write_cell(cell, "failed", reason=f"reference run: {type(error).__name__}: {error}")
        raise
    steps: dict[str, Any] = {
        "learning_rate": cell.learning_rate,
        "iterations": cell.iterations,
        "record_every": cell.record_every,
        "loop": cell.loop,
    }
    run.settle(cell)
    with thread_limit(cell.threads):
        try:
            descent = Descent(cell.backend, problem.w, problem.b, problem.X, problem.Y)
            to_native, _ = get_adapters(cell.backend)
            kernel = get_kernel(cell.backend)
            args = to_native(problem.w, problem.b, problem.X, problem.Y)
            _, first_call_s = time_one_call(kernel, args)  # compiles, or loads the numba cache
            _, call_s = time_one_call(kernel, args)
            # One step of the loop, in every pass (a process): it compiles what the loop adds to
            # the kernel (JAX's jitted step or fori_loop, numba's loop, torch.compile), untimed.
            _, loop_compile_s = time_one_call(lambda: descent.run(**{**steps, "iterations": 1}))
        except Exception as error:  # crashed: recorded, never timed, fails the run
            if why := run.failed(cell, error):
                pytest.skip(why)  # a plug-in's: the run goes on without it
            raise
        run.compile_s.setdefault(_signature(cell), first_call_s)
        settings = run.settings
        reason = training_reason(cell, call_s, settings.passes, settings.train_budget_s)
        if why := run.check_budget(cell, reason, predicted_s=cell.iterations * call_s):
            pytest.skip(why)
        if run.earlier_passes(cell):  # checked in its first pass, on the same machine and code
            learned = {k: run.done[cell.cell_id][k] for k in ("accuracy", "final_cost")}
            run_s = cell.iterations * call_s
            peaks: dict[str, Any] = {}  # measured in its first pass
        else:
            learned, run_s, peaks = _checked_run(cell, run, descent, steps, (problem, reference))
        benchmark.group = f"training {cell.dataset} m={cell.m} n={cell.n} threads={cell.threads}"
        # the raw JSON is whole too
        benchmark.extra_info.update(
            cell.params(), **learned, **run.provenance(cell), pass_number=run.number
        )
        benchmark.pedantic(
            descent.run, kwargs=steps, rounds=training_rounds(run_s, run.settings.pass_time_s)
        )
    run.benchmarks.append(benchmark.stats)
    entry = run.pass_entry(
        cell,
        compile_s=run.compile_s[_signature(cell)],
        first_call_s=first_call_s,
        first_step_s=loop_compile_s,  # the loop's own compilation, with one step
        blocks=[list(benchmark.stats.stats.data)],
        **peaks,
    )
    run.write_pass(cell, entry, predicted_s=cell.iterations * call_s, **learned)


def _checked_run(
    cell: TrainingCell,
    run: Pass,
    descent: Descent,
    steps: dict[str, Any],
    against: tuple[Problem, TrainResult],
) -> tuple[dict[str, Any], float, dict[str, Any]]:
    """A cell's first pass: one whole run, untimed, checked against the reference's, and the peak
    memory of a step and of that run measured; (what it learned, its seconds, its peaks). A wrong
    or crashing backend is recorded as failed: the run stops, or for a plug-in's the cell is
    skipped."""
    problem, reference = against
    try:
        track = run.settings.measure_memory
        _, peaks = call_peak(
            cell.backend, lambda: descent.run(**{**steps, "iterations": 1}), "step_", track=track
        )
        # Its time only plans the rounds, and the tracker slows no more than what it sees.
        (checked, run_s), run_peak = call_peak(
            cell.backend,
            lambda: time_one_call(lambda: descent.run(**steps)),
            "run_",
            repeat=False,
            track=track,
        )
        check_training(cell.backend, checked, reference)
    except Exception as error:  # wrong, or crashed: recorded, never timed, fails the run
        if why := run.failed(cell, error):
            pytest.skip(why)  # a plug-in's: the run goes on without it
        raise
    learned = {
        "accuracy": accuracy(checked.w, checked.b, problem.X, problem.Y),
        "final_cost": checked.final_cost,
    }
    return learned, run_s, {**peaks, **run_peak}


def _signature(cell: TrainingCell) -> tuple[str, str, str]:
    """The key of the kernel's first call in this process: a training run's is float64, C."""
    return (cell.backend, "float64", "C")
