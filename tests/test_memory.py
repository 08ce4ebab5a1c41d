"""The memory axis: peak bytes of one call, checked against what the code must allocate.

Every measurement runs in a fresh interpreter: memray aborts at exit a process that held a large
`decimal.Decimal` before it tracked ("double free or corruption", memray 1.16 to 1.20 on CPython
3.11), and the exact-arithmetic tests' module (`exact`) makes such Decimals in every test process.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from typing import Any

import pytest

from loopvec.backends import BACKENDS
from loopvec.memory import peaks_of_passes

pytest.importorskip("memray", reason="memray is not installed (Linux and macOS only)")

PAGE_BYTES = 4096
FEW_PAGES_BYTES = 4 * PAGE_BYTES
FUSED_LIMIT_BYTES = 2 * 2**20

#: What every measuring process starts with: `peak_of(backend, m, n, layout)`, the peak bytes of
#: one call of a backend's kernel, compiled and warm, its inputs already in its own arrays.
_PRELUDE = """
import dataclasses, json
import numpy as np
from loopvec.backends import get_adapters, get_kernel
from loopvec.memory import PEAK_METHOD, call_peak, measure_peak
from loopvec.problem import make_problem

def peak_of(backend, m, n, layout="C"):
    problem = make_problem(m, n)
    if layout == "F":
        problem = dataclasses.replace(problem, X=np.asfortranarray(problem.X))
    kernel, (to_native, _) = get_kernel(backend), get_adapters(backend)
    args = to_native(problem.w, problem.b, problem.X, problem.Y)
    kernel(*args)
    _, fields = call_peak(backend, lambda: kernel(*args))
    assert fields["peak_method"] == PEAK_METHOD, fields
    return fields["peak_bytes"]
"""


def measured(body: str) -> Any:
    """`result` as the Python `body` sets it, run after _PRELUDE in a new interpreter."""
    code = _PRELUDE + textwrap.dedent(body) + "\nprint(json.dumps(result))\n"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


@pytest.mark.parametrize(("rows", "m"), [(1, 1000), (3, 100_000), (5, 1_000_000), (8, 12_345)])
def test_a_known_allocation_is_measured_within_a_few_pages(rows: int, m: int) -> None:
    peak = measured(f"""
        from loopvec.backends import register

        def allocates(w, b, X, Y):
            scratch = np.ones(({rows}, {m}))  # rows x m x 8 bytes, freed on return
            return np.zeros((X.shape[0], 1)), float(scratch[0, 0]) * 0

        register("allocates_known_bytes", allocates)
        problem = make_problem(10, 2)
        call = lambda: allocates(problem.w, problem.b, problem.X, problem.Y)
        result = call_peak("allocates_known_bytes", call)[1]["peak_bytes"]
    """)
    assert abs(peak - rows * m * 8) <= FEW_PAGES_BYTES


def test_memory_freed_before_the_peak_and_inputs_made_before_are_not_counted() -> None:
    peak = measured("""
        before = np.ones(1_000_000)  # exists before the call: not the call's

        def call():
            first = np.ones(300_000)
            del first  # freed before the larger one: the peak is the larger alone
            second = np.ones(500_000)
            return float(second[0] + before[0])

        result = measure_peak(call)[1]
    """)
    assert abs(peak - 500_000 * 8) <= FEW_PAGES_BYTES


def test_numpy_vectorized_makes_between_2_and_8_example_long_arrays() -> None:
    m = 1_000_000
    arrays = measured(f"result = peak_of('numpy_vectorized', {m}, 10)") / (8 * m)
    assert 2 <= arrays <= 8


@pytest.mark.parametrize("backend", ["numba_fused", "numba_parallel"])
def test_the_fused_kernels_allocate_only_their_block_buffers(backend: str) -> None:
    peaks = measured(f"""
        result = {{f"{{layout}} m={{m}}": peak_of({backend!r}, m, 10, layout)
                   for layout in ("C", "F") for m in (10, 1000, 100_000, 1_000_000)}}
    """)
    assert len(peaks) == 8
    assert {cell: peak for cell, peak in peaks.items() if peak >= FUSED_LIMIT_BYTES} == {}


def test_the_fused_kernels_block_buffers_stay_under_2_mib_with_any_plan() -> None:
    peaks = measured("""
        from loopvec.backends._blocked import DEFAULT_PLAN, KernelPlan
        from loopvec.backends.numba_fused import planned_gradient

        problem = make_problem(1_000_000, 10)
        X = np.asfortranarray(problem.X)  # the transposed path adds a buffer of a block
        result = {}
        largest = KernelPlan(32 * 2**20, 2**20, 32)  # the largest blocks tuning may choose
        for name, plan in (("default", DEFAULT_PLAN), ("largest", largest)):
            call = lambda: planned_gradient(problem.w, problem.b, X, problem.Y, plan)
            call()
            result[name] = measure_peak(call)[1]
    """)
    assert set(peaks) == {"default", "largest"}
    assert all(peak < FUSED_LIMIT_BYTES for peak in peaks.values()), peaks


@pytest.mark.parametrize("backend", ["torch_formula", "torch_autograd", "jax_formula", "jax_grad"])
def test_the_tracker_sees_the_frameworks_allocators(backend: str) -> None:
    for package in BACKENDS[backend].requires:
        pytest.importorskip(package)
    m = 100_000
    # Z, A and dZ are m long in each: at least one m-long float64 array must be seen
    assert measured(f"result = peak_of({backend!r}, {m}, 10)") >= 8 * m


def test_a_second_tracker_is_said_not_measured_and_the_call_still_made() -> None:
    inner = measured("""
        made = []

        def inner():
            return call_peak("numpy_vectorized", lambda: made.append(1))[1]

        result = {**measure_peak(inner)[0], "made": made}
    """)
    assert inner["peak_bytes"] is None
    assert inner["peak_method"].startswith("not measured: ")
    assert inner["made"] == [1]


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
