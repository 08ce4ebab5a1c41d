"""Every path of the compiled kernels, against the reference: several blocks of examples and a
partial last one, C and Fortran order, float64 and float32, n around the 8-row unroll, and
numba_parallel's threaded path with 2, 3 and 7 ranges of examples.

`Reference` sums the lesson's formula with numpy in blocks of its own size (no code in common with
the kernels); tests/test_agreement.py holds it to the exact gradient.
"""

from __future__ import annotations

import numba
import numpy as np
import pytest

import loopvec
from loopvec.agreement import RTOL, Reference
from loopvec.backends import get_kernel
from loopvec.backends._blocked import block_examples
from loopvec.backends.numba_parallel import ranges_of, threaded_gradient
from loopvec.problem import Problem

pytestmark = pytest.mark.skipif(
    "numba_fused" not in loopvec.available_backends(), reason="numba is not installed"
)

BLOCK = 4096  # examples per block for n <= 256 (`block_examples`)
#: One full block and one example; two and a half blocks; three blocks and a partial fourth.
BLOCKED_M = (BLOCK + 1, 10_001, 3 * BLOCK + 123)
#: Below the 8-row unroll, a multiple of it, and 8 rows plus 5 left over.
UNROLL_N = (3, 16, 13)


def problem(m: int, n: int, layout: str, dtype: str, seed: int = 0) -> Problem:
    p = loopvec.make_problem(m, n, seed=seed).astype(dtype)
    X = np.asfortranarray(p.X) if layout == "F" else p.X
    assert X.flags.f_contiguous == (layout == "F")
    assert X.dtype == dtype
    return Problem(p.w, p.b, X, p.Y)


def check(backend: str, got: tuple[np.ndarray, float], p: Problem) -> None:
    Reference.of(p).check(backend, got, rtol=RTOL[str(p.X.dtype)])


def test_the_blocked_sizes_span_several_blocks() -> None:
    assert {block_examples(n, itemsize) for n in UNROLL_N for itemsize in (4, 8)} == {BLOCK}
    assert [m // BLOCK for m in BLOCKED_M] == [1, 2, 3]
    assert all(m % BLOCK for m in BLOCKED_M)  # and a partial last block


@pytest.mark.parametrize("backend", ["numba_fused", "numba_parallel", "numba_loops"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("layout", ["C", "F"])
@pytest.mark.parametrize("n", UNROLL_N)
@pytest.mark.parametrize("m", BLOCKED_M)
def test_every_block_row_and_layout_path(backend: str, m: int, n: int, layout: str, dtype: str):  # type: ignore[no-untyped-def]
    p = problem(m, n, layout, dtype, seed=m + n)
    check(backend, get_kernel(backend)(p.w, p.b, p.X, p.Y), p)


@pytest.mark.parametrize("layout", ["C", "F"])
def test_a_smaller_block_for_many_features(layout: str) -> None:
    m, n = 2500, 1001  # 1024 examples a block: two full blocks and a partial one
    assert block_examples(n, 8) == 1024
    p = problem(m, n, layout, "float64")
    check("numba_fused", get_kernel("numba_fused")(p.w, p.b, p.X, p.Y), p)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("layout", ["C", "F"])
@pytest.mark.parametrize("m", [10_001, 30_011])  # divisible by none of 2, 3, 7
@pytest.mark.parametrize("threads", [2, 3, 7])
def test_the_threaded_path_with_ranges_that_do_not_divide_m(
    threads: int, m: int, layout: str, dtype: str
) -> None:
    n = 13
    assert m % threads
    assert ranges_of(m, n, threads, 1) == threads  # forced: every range its own thread's work
    p = problem(m, n, layout, dtype, seed=threads)
    check("numba_parallel", threaded_gradient(p.w, p.b, p.X, p.Y, threads, 1), p)


def test_threads_start_only_where_there_is_work_for_them() -> None:
    threshold = 2**17  # multiply-adds per thread, the module's default
    assert ranges_of(1000, 100, 8, threshold) == 1  # 116,000 < one thread's share: serial
    assert ranges_of(10_000, 100, 8, threshold) == 8
    assert ranges_of(5, 1_000_000, 8, threshold) == 5  # never more ranges than examples
    assert ranges_of(100_000, 10, numba.get_num_threads(), threshold) == numba.get_num_threads()
