"""The grid's pure parts: cell order, the cost model, the budget and memory rules, rounds."""

from __future__ import annotations

import math

import pytest

from loopvec.grid import (
    DEFAULT_TRAIN_BUDGET_S,
    GRIDS,
    MAX_ROUNDS,
    SETTLE_S,
    Cell,
    CostModel,
    RoundPlan,
    budget_skip_reason,
    fit_cost_model,
    make_cells,
    make_training_cells,
    memory_needed_bytes,
    memory_skip_reason,
    pass_order,
    rest_before_s,
    round_plan,
    training_cell_s,
    training_order,
    training_rounds,
)


def test_default_grid_spans_the_issue_sizes() -> None:
    grid = GRIDS["default"]
    assert grid.m_values == (1, 10, 100, 1_000, 10_000, 100_000, 1_000_000)
    assert grid.n_values == (1, 10, 100, 1000)


def test_cells_run_smallest_first_and_unthreaded_backends_once() -> None:
    cells = make_cells(
        [1000, 1], [10], ["python_loops", "numpy_vectorized"], [2, 1], ["float64"], ["C"]
    )
    assert [(c.m, c.backend, c.threads) for c in cells] == [
        (1, "python_loops", 1),
        (1, "numpy_vectorized", 1),
        (1, "numpy_vectorized", 2),
        (1000, "python_loops", 1),
        (1000, "numpy_vectorized", 1),
        (1000, "numpy_vectorized", 2),
    ]
    assert cells[0].cell_id == "python_loops-m1-n10-t1-float64-C"
    assert cells[-1].x_bytes == 1000 * 10 * 8


def test_float32_cells_only_for_backends_registered_with_it() -> None:
    cells = make_cells([10], [10], ["python_loops", "numba_fused"], [1], layouts=["C"])
    assert [(c.backend, c.dtype) for c in cells] == [
        ("python_loops", "float64"),
        ("numba_fused", "float64"),
        ("numba_fused", "float32"),
    ]
    assert cells[-1].x_bytes == 10 * 10 * 4


def test_fortran_order_cells_only_for_backends_that_read_it_in_place() -> None:
    """The layout is an axis of the default grid where it can change a time: a backend that
    copies X into a layout of its own (JAX), or the loops, is timed in C order only."""
    backends = ["python_loops", "numpy_vectorized", "numba_parallel", "jax_grad"]
    cells = make_cells([10], [10], backends, [1], ["float64"])
    assert [(c.backend, c.layout) for c in cells] == [
        ("python_loops", "C"),
        ("numpy_vectorized", "C"),
        ("numba_parallel", "C"),
        ("jax_grad", "C"),
        ("numpy_vectorized", "F"),
        ("numba_parallel", "F"),
    ]
    assert cells[-1].cell_id == "numba_parallel-m10-n10-t1-float64-F"
    assert make_cells([10], [10], backends, [1], ["float64"], ["F"]) == cells[4:]


def test_cost_model_recovers_overhead_per_example_and_per_element_costs() -> None:
    sizes = [(1, 1), (10, 1), (10, 100), (1000, 10), (100_000, 1), (100_000, 100)]
    m, n = zip(*sizes, strict=True)
    times = [2e-6 + 5e-9 * a + 3e-9 * a * b for a, b in sizes]
    model = fit_cost_model(m, n, times)
    assert model is not None
    assert model.overhead_s == pytest.approx(2e-6, rel=1e-9)
    assert model.per_example_s == pytest.approx(5e-9, rel=1e-9)
    assert model.per_element_s == pytest.approx(3e-9, rel=1e-9)
    assert model.predict_s(1_000_000, 10) == pytest.approx(2e-6 + 5e-3 + 3e-2)


def test_cost_model_needs_two_sizes_and_never_goes_negative() -> None:
    assert fit_cost_model([], [], []) is None
    assert fit_cost_model([100, 100], [3, 3], [1e-3, 2e-3]) is None
    falling = fit_cost_model([1, 1000], [1, 1], [2e-3, 1e-3])  # noise: time falls with size
    assert falling is not None
    assert (falling.per_example_s, falling.per_element_s) == (0.0, 0.0)
    assert falling.overhead_s > 0
    proportional = fit_cost_model([10, 1000], [1, 1], [1e-8, 2e-6])  # negative overhead if free
    assert proportional is not None
    assert proportional.overhead_s == 0.0
    assert proportional.predict_s(1000, 1) > 0


def test_budget_skip_names_the_prediction() -> None:
    model = CostModel(overhead_s=1e-6, per_example_s=0.0, per_element_s=1e-7)
    small, large = Cell("python_loops", 100, 10, 1), Cell("python_loops", 1_000_000, 100, 1)
    assert budget_skip_reason(model, small, budget_s=1.0) is None
    reason = budget_skip_reason(model, large, budget_s=1.0)
    assert reason is not None
    assert reason.startswith("predicted 10 s per call > budget 1 s")
    assert budget_skip_reason(None, large, budget_s=1.0) is None  # no model yet: run it


def test_memory_rule_counts_the_backends_own_copies() -> None:
    cell = Cell("numpy_vectorized", 1_000_000, 1000, 1)
    loops = Cell("python_loops", 1_000_000, 1000, 1)
    assert memory_needed_bytes(loops) > 4 * memory_needed_bytes(cell) - 4 * 2**30
    assert memory_skip_reason(cell, available_bytes=64 * 2**30) is None
    reason = memory_skip_reason(cell, available_bytes=4 * 2**30)
    assert reason is not None
    assert "needs about 7.7 GiB" in reason


@pytest.mark.parametrize("backend", ["numpy_vectorized", "python_loops"])
def test_memory_rule_keeps_a_fifth_of_the_free_memory_free(backend: str) -> None:
    cell = Cell(backend, 1_000_000, 100, 1)
    needed = memory_needed_bytes(cell)
    assert needed > cell.m * cell.n * 8  # X at least
    assert memory_skip_reason(cell, available_bytes=math.ceil(needed / 0.8)) is None
    for short_bytes in (math.ceil(needed / 0.8) - 1_000, needed, needed + 1):  # fits, no headroom
        reason = memory_skip_reason(cell, available_bytes=short_bytes)
        assert reason is not None, short_bytes
        assert "more than 80% of the" in reason


@pytest.mark.parametrize(
    ("call_s", "expected"),
    [
        (1e-6, RoundPlan(iterations=20, rounds=MAX_ROUNDS, warmup_rounds=1, blocks=3)),
        (1e-4, RoundPlan(iterations=1, rounds=MAX_ROUNDS, warmup_rounds=1, blocks=3)),
        (0.002, RoundPlan(iterations=1, rounds=16, warmup_rounds=1, blocks=3)),  # as many as fit
        (0.02, RoundPlan(iterations=1, rounds=1, warmup_rounds=0, blocks=3)),  # slow: no warm-up
        (0.05, RoundPlan(iterations=1, rounds=1, warmup_rounds=0, blocks=2)),  # 2 blocks fit
        (1.5, RoundPlan(iterations=1, rounds=1, warmup_rounds=0, blocks=1)),  # one call a pass
    ],
)
def test_rounds_are_long_enough_to_time_and_fill_the_pass(
    call_s: float, expected: RoundPlan
) -> None:
    assert round_plan(call_s, pass_s=0.1, blocks=3) == expected


def test_a_pass_times_each_group_side_by_side_in_interleaved_blocks() -> None:
    cells = make_cells(
        [1, 100], [10], ["numpy_vectorized", "numba_loops", "numba_parallel"], [1, 2]
    )
    first = pass_order(cells, pass_number=1, blocks=3, seed=0)
    assert len(first) == 3 * len(cells)
    # pass 1: smallest problem first (the budget learns from it), each group's blocks in turn
    assert [c.m for c, _ in first] == sorted(c.m for c, _ in first)
    group = first[:9]  # m = 1, 1 thread: three backends, three blocks each
    assert {(c.m, c.threads) for c, _ in group} == {(1, 1)}
    assert [b for _, b in group] == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert [{c.backend for c, b in group if b == k} for k in range(3)] == [
        {"numpy_vectorized", "numba_loops", "numba_parallel"}
    ] * 3
    orders = {tuple(c.backend for c, b in group if b == k) for k in range(3)}
    second = pass_order(cells, pass_number=2, blocks=3, seed=0)
    assert sorted(map(str, second)) == sorted(map(str, first))  # every block once
    assert pass_order(cells, pass_number=2, blocks=3, seed=0) == second  # seeded
    assert (
        pass_order(cells, pass_number=3, blocks=3, seed=0) != second
        or pass_order(cells, pass_number=4, blocks=3, seed=0) != second
    )
    assert len(orders) > 1 or pass_order(cells, 1, 3, seed=1)[:9] != group  # shuffled


def test_a_block_rests_after_another_backends_threads_only() -> None:
    # the spinning thread pools of a multi-threaded block would take the next block's cores
    assert rest_before_s(("numpy_vectorized", 2), "numba_parallel") == SETTLE_S > 0
    assert rest_before_s(("numpy_vectorized", 1), "numba_parallel") == 0  # no pool ran
    assert rest_before_s(("numba_parallel", 2), "numba_parallel") == 0  # its own pool: warm
    assert rest_before_s(None, "numba_parallel") == 0  # the first block of the pass


def test_training_passes_after_the_first_come_in_a_seeded_random_order() -> None:
    cells = make_training_cells(
        [("synthetic", 100, 10, 20)], ["python_loops", "numpy_vectorized"], [1]
    )
    assert training_order(cells, 1, seed=0) == [0, 1]
    assert sorted(training_order(cells, 2, seed=0)) == [0, 1]
    assert training_order(cells, 2, seed=0) == training_order(cells, 2, seed=0)


def test_the_default_training_benchmark_is_the_issues() -> None:
    training = GRIDS["default"].training
    assert training.problems() == [
        ("breast_cancer", 569, 30, 1000),
        ("synthetic", 10_000, 100, 1000),
        ("synthetic", 10, 100, 1000),  # the outer loop's sizes: m = 10 to 1e6 at n = 100
        ("synthetic", 100, 100, 1000),
        ("synthetic", 1_000, 100, 1000),
        ("synthetic", 100_000, 100, 100),
        ("synthetic", 1_000_000, 100, 10),
    ]
    assert GRIDS["smoke"].training.iterations < 100  # CI runs it on every push


def test_training_cells_per_problem_and_loop_with_the_grids_thread_rule() -> None:
    problems = [("breast_cancer", 569, 30, 1000), ("synthetic", 10_000, 100, 1000)]
    cells = make_training_cells(problems, ["python_loops", "numba_parallel", "jax_grad"], [1, 2])
    assert [(c.dataset, c.backend, c.loop, c.threads) for c in cells[:7]] == [
        ("breast_cancer", "python_loops", "python", 1),
        ("breast_cancer", "numba_parallel", "python", 1),
        ("breast_cancer", "numba_parallel", "python", 2),
        ("breast_cancer", "numba_parallel", "compiled", 1),  # python_loops has no compiled loop
        ("breast_cancer", "numba_parallel", "compiled", 2),
        ("breast_cancer", "jax_grad", "python", 2),
        ("breast_cancer", "jax_grad", "compiled", 2),
    ]
    assert len(cells) == 14
    assert cells[7].cell_id == "train-synthetic-m10000-n100-python_loops-t1"
    assert cells[10].cell_id == "train-synthetic-m10000-n100-numba_parallel-t1-compiled"
    assert cells[10].params()["kind"] == "training"
    assert cells[10].params()["loop"] == "compiled"


def test_training_rounds_fill_a_pass_with_at_least_one() -> None:
    assert training_rounds(0.01, 0.1) == 10
    assert training_rounds(0.001, 0.1) == MAX_ROUNDS
    assert training_rounds(2.0, 0.1) == 1


def test_a_training_cell_costs_a_checked_run_and_one_run_a_pass() -> None:
    assert training_cell_s(2.0, passes=5) == 12.0
    assert training_cell_s(18.3, passes=5) > DEFAULT_TRAIN_BUDGET_S  # partly_vectorized, m = 1e4


def test_cost_model_of_one_example_count_has_no_cost_per_example() -> None:
    """A Dask backend at m = 1: 20 ms at n = 1 and at n = 10. Not 2 s at m = 100."""
    model = fit_cost_model([1, 1], [1, 10], [20e-3, 20.5e-3])
    assert model is not None
    assert model.per_example_s == 0.0
    assert model.predict_s(100, 1) < 0.1
