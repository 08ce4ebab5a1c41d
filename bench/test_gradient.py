"""Time every available backend over the grid: backend x m x n x threads x dtype (conftest.py).

Per cell: skip if already timed in this run's folder, over the time budget or out of memory;
build the problem outside the timing; call the kernel once and check it against the reference
(that first call, compile included, is recorded); warm up; then let pytest-benchmark time the raw
kernel (no validation) and write the cell's file.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from threadpoolctl import threadpool_info
from timing import time_one_call, timing_fields

from loopvec.agreement import RTOL
from loopvec.backends import get_adapters, get_kernel
from loopvec.grid import Cell, budget_skip_reason, memory_skip_reason, rounds_for, thread_limit

if TYPE_CHECKING:
    from conftest import BenchRun


def blas_threads() -> int | None:
    """Threads of the BLAS pool right now (inside the cell's thread limit)."""
    pools = [p["num_threads"] for p in threadpool_info() if p.get("user_api") == "blas"]
    return pools[0] if pools else None


def test_gradient(benchmark, cell: Cell, run: BenchRun) -> None:  # type: ignore[no-untyped-def]
    if run.timed_before(cell):
        pytest.skip(f"{cell.cell_id}: already timed in {run.folder} (--fresh to redo)")
    model = run.model(cell)
    predicted_s = model.predict_s(cell.m, cell.n) if model else None
    reason = budget_skip_reason(model, cell, run.budget_s) or memory_skip_reason(
        cell, run.available_bytes(cell)
    )
    if reason:
        run.skip(cell, reason, predicted_s=predicted_s)

    problem, reference = run.problem(cell)
    kernel = get_kernel(cell.backend)
    to_native, to_numpy = get_adapters(cell.backend)
    args = to_native(problem.w, problem.b, problem.X, problem.Y)  # into the framework: untimed
    signature = (cell.backend, cell.dtype, cell.layout)
    with thread_limit(cell.threads):
        try:
            got, first_call_s = time_one_call(kernel, args)
            reference.check(cell.backend, to_numpy(got), rtol=RTOL[cell.dtype])
        except Exception as error:  # wrong, or crashed: recorded, never timed, fails the run
            run.write_cell(cell, "failed", reason=f"{type(error).__name__}: {error}")
            raise
        run.compile_s.setdefault(signature, first_call_s)  # the first call in this process
        _, warm_s = time_one_call(kernel, args)  # warm-up: caches, pages, branch history

        benchmark.group = f"m={cell.m} n={cell.n} threads={cell.threads} {cell.dtype}"
        benchmark.extra_info.update(
            cell.params(), compile_s=run.compile_s[signature], **run.provenance(cell)
        )
        rounds = rounds_for(warm_s, run.max_time_s, run.min_rounds)
        if rounds is None:
            benchmark(kernel, *args)
        else:  # slow cell: a few rounds, not min_rounds x calibration
            benchmark.pedantic(kernel, args=args, rounds=rounds, iterations=1)
        threads_seen = blas_threads()

    run.write_cell(
        cell,
        "timed",
        **timing_fields(benchmark),
        iterations=benchmark.stats.iterations,
        compile_s=run.compile_s[signature],
        first_call_s=first_call_s,
        predicted_s=predicted_s,
        blas_threads=threads_seen,
    )
