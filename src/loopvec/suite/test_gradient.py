"""Time every available backend over the grid: backend x m x n x threads x dtype x layout.

Each cell runs as blocks, interleaved with the other backends of its problem and thread count. In
its first block of a pass: skip if this pass of it is already in the run's folder, if it is over
the time budget or out of memory; build the problem outside the timing; the first time a process
meets the kernel in this dtype and layout, call it on a tiny problem (JIT compile or cache load:
recorded as compile_s); call it once on the cell's problem and check it against the reference (with
no cost model yet, that call also predicts the cell against the budget); warm up; plan the rounds;
in the cell's first pass, measure the memory that moving the inputs into the backend's arrays, and
one call, take (`loopvec.memory`, untimed). In every block: pytest-benchmark times the raw kernel
(no validation) for the planned rounds. After the last block the pass is added to the cell's file.
"""

from __future__ import annotations

import functools

import pytest
from threadpoolctl import threadpool_info

from loopvec.agreement import RTOL
from loopvec.backends import BACKENDS, get_adapters, get_kernel
from loopvec.grid import Cell, thread_limit
from loopvec.memory import call_peak
from loopvec.problem import tiny_problem
from loopvec.runner.plan import NO_WARMUP_FROM_S, round_plan
from loopvec.runner.rules import (
    cost_model_reason,
    first_call_cost_s,
    first_call_reason,
    memory_reason,
)
from loopvec.runner.session import Pass, Timing
from loopvec.runner.timing import time_one_call


def blas_threads() -> int | None:
    """Threads of the BLAS pool right now (inside the cell's thread limit)."""
    pools = [p["num_threads"] for p in threadpool_info() if p.get("user_api") == "blas"]
    return pools[0] if pools else None


def start(cell: Cell, run: Pass) -> None:
    """The first block of `cell` in this pass: skip it, or check it and plan its rounds.

    With no cost model for its backend yet (its first sizes), the cell's checked first call
    predicts it: over the budget, it is skipped after that one call."""
    spec = BACKENDS[cell.backend]
    model = run.model(cell)
    predicted_s = model.predict_s(cell.m, cell.n) if model else None
    budget_s = run.settings.budget_s
    reason = cost_model_reason(model, cell, budget_s)
    if why := run.check_budget(cell, reason, predicted_s=predicted_s):
        pytest.skip(why)
    if reason := memory_reason(cell, run.available_bytes(cell), run.predicted_bytes(cell)):
        pytest.skip(run.skip_this_pass(cell, reason, predicted_s=predicted_s))

    problem, reference = run.problem(cell)
    kernel = get_kernel(cell.backend)
    to_native, to_numpy = get_adapters(cell.backend)
    # into the framework, untimed; in the pass that measures the cell's memory (its first), what
    # that copies (a framework's arrays, Python lists) is measured
    measure = not any("peak_method" in p for p in run.earlier_passes(cell))
    track = run.settings.measure_memory
    to_arrays = functools.partial(to_native, problem.w, problem.b, problem.X, problem.Y)
    args, inputs_peak = (
        call_peak(cell.backend, to_arrays, "inputs_", repeat=False, track=track)
        if measure
        else (to_arrays(), {})
    )
    signature = (cell.backend, cell.dtype, cell.layout)
    run.settle(cell)  # the warm-up call below plans the rounds
    with thread_limit(cell.threads):
        if signature not in run.compile_s:  # the kernel's first call in this process
            tiny = tiny_problem(cell.dtype, cell.layout)  # the cell's first call: the call alone
            _, run.compile_s[signature] = time_one_call(
                kernel, to_native(tiny.w, tiny.b, tiny.X, tiny.Y)
            )
        try:
            got, first_call_s = time_one_call(kernel, args)
            reference.check(cell.backend, to_numpy(got), rtol=RTOL[cell.dtype])
        except Exception as error:  # wrong, or crashed: recorded, never timed, fails the run
            if why := run.failed(cell, error):
                pytest.skip(why)  # a plug-in's: the run goes on without it
            raise
        if predicted_s is None:  # no cost model yet: the first call predicts the cell
            compiled = spec.compiles_per_shape
            call_s = first_call_cost_s(first_call_s, run.compile_s[signature], compiled)
            reason = first_call_reason(call_s, budget_s)
            if why := run.check_budget(cell, reason, predicted_s=call_s):
                pytest.skip(why)
        known_s = run.median_s(run.done[cell.cell_id]) if run.earlier_passes(cell) else None
        if known_s is not None and known_s >= NO_WARMUP_FROM_S:
            call_s = known_s  # slow, and its time known: the checked call warmed what matters
        else:
            _, call_s = time_one_call(kernel, args)  # warm-up: caches, pages, branch history
        if measure and track:  # calls of their own, untimed
            _, peak = call_peak(cell.backend, lambda: kernel(*args), track=track)
            inputs_peak.update(peak)
    plan = round_plan(call_s, run.settings.pass_time_s, run.settings.blocks)
    entry = run.pass_entry(
        cell,
        compile_s=run.compile_s[signature],
        first_call_s=first_call_s,
        iterations=plan.iterations,
        warmup_rounds=plan.warmup_rounds,
        **inputs_peak,
    )
    # A backend that copies the problem (a framework's arrays, Python lists) does so again for
    # each block: the copies of a whole group held at once could exhaust the memory.
    keep = spec.extra_bytes_per_element == 0
    run.timing[cell.cell_id] = Timing(kernel, args if keep else None, plan, entry)
    run.predicted[cell.cell_id] = predicted_s


def test_gradient(benchmark, cell: Cell, block: int, run: Pass) -> None:  # type: ignore[no-untyped-def]
    if block == 0 and (why := run.not_timed(cell)):
        pytest.skip(why)
    if run.timed_before(cell):
        pytest.skip(run.resumed(cell))
    if block == 0:
        start(cell, run)
    timing = run.timing.get(cell.cell_id)
    if timing is None or block >= timing.plan.blocks:
        pytest.skip(f"{cell.cell_id}: no block {block} in this pass (ended, or a slow cell)")
    plan = timing.plan
    if timing.args is None:
        problem, _ = run.problem(cell)
        args = get_adapters(cell.backend)[0](problem.w, problem.b, problem.X, problem.Y)
    else:
        args = timing.args
    run.settle(cell)
    with thread_limit(cell.threads):
        benchmark.group = f"m={cell.m} n={cell.n} threads={cell.threads} {cell.dtype}"
        benchmark.extra_info.update(
            cell.params(), **run.provenance(cell), pass_number=run.number, block=block
        )
        benchmark.pedantic(
            timing.kernel,
            args=args,
            rounds=plan.rounds,
            iterations=plan.iterations,
            warmup_rounds=plan.warmup_rounds,
        )
        threads_seen = blas_threads()
    run.benchmarks.append(benchmark.stats)
    timing.blocks.append(list(benchmark.stats.stats.data))  # seconds per call, by round
    if block == plan.blocks - 1:
        del run.timing[cell.cell_id]  # frees the framework's copy of the problem
        run.write_pass(
            cell,
            {**timing.entry, "blocks": timing.blocks},
            predicted_s=run.predicted.pop(cell.cell_id),
            blas_threads=threads_seen,
        )
