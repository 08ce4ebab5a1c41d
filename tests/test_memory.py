"""The memory axis: peak bytes of one call, checked against what the code must allocate."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from loopvec.backends import BACKENDS, get_adapters, get_kernel, register
from loopvec.backends._blocked import DEFAULT_PLAN, KernelPlan
from loopvec.backends.numba_fused import planned_gradient
from loopvec.memory import PEAK_METHOD, call_peak, measure_peak, peaks_of_passes
from loopvec.problem import make_problem

pytest.importorskip("memray", reason="memray is not installed (Linux and macOS only)")

PAGE_BYTES = 4096
FEW_PAGES_BYTES = 4 * PAGE_BYTES


def peak_of(backend: str, m: int, n: int, layout: str = "C") -> int:
    """Peak bytes of one call of `backend`'s kernel at (m, n), inputs in its own arrays."""
    problem = make_problem(m, n)
    if layout == "F":
        problem = dataclasses.replace(problem, X=np.asfortranarray(problem.X))
    kernel, (to_native, _) = get_kernel(backend), get_adapters(backend)
    args = to_native(problem.w, problem.b, problem.X, problem.Y)
    kernel(*args)  # compiled and warm: the peak of a call, not of a compilation
    _, fields = call_peak(backend, lambda: kernel(*args), call_s=0.0)
    assert fields["peak_method"] == PEAK_METHOD
    return int(fields["peak_bytes"])


@pytest.mark.parametrize(("rows", "m"), [(1, 1000), (3, 100_000), (5, 1_000_000), (8, 12_345)])
def test_a_known_allocation_is_measured_within_a_few_pages(rows: int, m: int) -> None:
    def allocates(w: object, b: object, X: np.ndarray, Y: np.ndarray) -> tuple[np.ndarray, float]:
        scratch = np.ones((rows, m))  # rows x m x 8 bytes, freed on return
        return np.zeros((X.shape[0], 1)), float(scratch[0, 0]) * 0

    register("allocates_known_bytes", allocates)
    try:
        problem = make_problem(10, 2)
        _, fields = call_peak(
            "allocates_known_bytes",
            lambda: allocates(problem.w, problem.b, problem.X, problem.Y),
            call_s=0.0,
        )
    finally:
        del BACKENDS["allocates_known_bytes"]
    assert abs(fields["peak_bytes"] - rows * m * 8) <= FEW_PAGES_BYTES


def test_memory_freed_before_the_peak_and_inputs_made_before_are_not_counted() -> None:
    before = np.ones(1_000_000)  # exists before the call: not the call's

    def call() -> float:
        first = np.ones(300_000)
        del first  # freed before the larger one: the peak is the larger alone
        second = np.ones(500_000)
        return float(second[0] + before[0])

    _, peak = measure_peak(call)
    assert abs(peak - 500_000 * 8) <= FEW_PAGES_BYTES


def test_numpy_vectorized_makes_between_2_and_8_example_long_arrays() -> None:
    m = 1_000_000
    arrays = peak_of("numpy_vectorized", m, 10) / (8 * m)
    assert 2 <= arrays <= 8


@pytest.mark.parametrize("m", [10, 1000, 100_000, 1_000_000])
@pytest.mark.parametrize("layout", ["C", "F"])
@pytest.mark.parametrize("backend", ["numba_fused", "numba_parallel"])
def test_the_fused_kernels_allocate_only_their_block_buffers(
    backend: str, layout: str, m: int
) -> None:
    assert peak_of(backend, m, 10, layout) < 2 * 2**20


@pytest.mark.parametrize(
    "plan",
    [DEFAULT_PLAN, KernelPlan(32 * 2**20, 2**20, 32)],  # the largest blocks tuning may choose
    ids=["default", "largest"],
)
def test_the_fused_kernels_block_buffers_stay_under_2_mib_with_any_plan(plan: KernelPlan) -> None:
    problem = make_problem(1_000_000, 10)
    X = np.asfortranarray(problem.X)  # the transposed path adds a buffer of a block
    planned_gradient(problem.w, problem.b, X, problem.Y, plan)
    _, peak = measure_peak(lambda: planned_gradient(problem.w, problem.b, X, problem.Y, plan))
    assert peak < 2 * 2**20


@pytest.mark.parametrize("backend", ["torch_formula", "torch_autograd", "jax_formula", "jax_grad"])
def test_the_tracker_sees_the_frameworks_allocators(backend: str) -> None:
    for package in BACKENDS[backend].requires:
        pytest.importorskip(package)
    m = 100_000
    # Z, A and dZ are m long in each: at least one m-long float64 array must be seen
    assert peak_of(backend, m, 10) >= 8 * m


def test_a_second_tracker_is_said_not_measured_and_the_call_still_made() -> None:
    made = []

    def inner() -> None:
        _, fields = call_peak("numpy_vectorized", lambda: made.append(1))
        assert fields["peak_bytes"] is None
        assert "not measured" in fields["peak_method"]

    measure_peak(inner)
    assert made == [1]


def test_a_cells_peaks_are_the_largest_of_its_passes() -> None:
    passes = [
        {"pass": 1, "peak_bytes": 100, "inputs_peak_bytes": 7, "peak_method": "m"},
        {"pass": 2, "peak_bytes": 120, "inputs_peak_bytes": None, "peak_method": "m"},
        {"pass": 3, "blocks": []},  # an older pass, measured without memory
    ]
    assert peaks_of_passes(passes) == {
        "peak_bytes": 120,
        "inputs_peak_bytes": 7,
        "peak_method": "m",
    }
    assert peaks_of_passes([{"pass": 1}]) == {}
