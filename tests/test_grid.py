"""The grid's pure parts: its cells, their order, the cost model."""

from __future__ import annotations

import pytest

from loopvec.grid import GRIDS, fit_cost_model, make_cells, make_training_cells, no_cell_reason


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


def test_cost_model_of_one_example_count_has_no_cost_per_example() -> None:
    """A Dask backend at m = 1: 20 ms at n = 1 and at n = 10. Not 2 s at m = 100."""
    model = fit_cost_model([1, 1], [1, 10], [20e-3, 20.5e-3])
    assert model is not None
    assert model.per_example_s == 0.0
    assert model.predict_s(100, 1) < 0.1


def test_a_backend_without_threads_has_no_cell_above_one_thread_and_says_why() -> None:
    assert not make_cells([10], [10], ["numba_fused"], [2])
    assert no_cell_reason("numba_fused", [2]) == (
        "it runs at 1 thread only (it has no threads of its own), and --threads is 2"
    )
    assert no_cell_reason("numba_fused", [2, 1]) is None
    assert no_cell_reason("numba_parallel", [2]) is None
