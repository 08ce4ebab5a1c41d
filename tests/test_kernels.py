"""Every path of the compiled kernels, against the reference: several blocks of examples and a
partial last one, C and Fortran order, float64 and float32, n around the 8-row unroll and the
short columns' two SIMD vectors, every way a kernel plan reads a block, numba_parallel's
threaded path with 2, 3 and 7 ranges of examples, and on a CPU with AVX-512 all of it again
compiled for AVX2 (`NUMBA_CPU_NAME=haswell`; on a CPU with AVX2 and not AVX-512 the native
run is the AVX2 one).

`Reference` sums the lesson's formula with numpy in blocks of its own size (no code in common with
the kernels); tests/test_agreement.py holds it to the exact gradient.
"""

from __future__ import annotations

import ctypes
import mmap
import os
import re
import subprocess
import sys
from pathlib import Path

import llvmlite.binding
import numba
import numpy as np
import pytest

import loopvec
from loopvec.agreement import RTOL, Reference
from loopvec.backends import get_kernel
from loopvec.backends._blocked import (
    DEFAULT_PLAN,
    SHORT_COLUMN_MAX_N,
    KernelPlan,
    _dw_columns,
    _dw_lane_columns,
    _lane_rows,
    _z_each_column,
    block_examples,
    columns_read_whole,
)
from loopvec.backends._exp import sigmoid_minus_y
from loopvec.backends._jit import REASSOCIATE
from loopvec.backends.numba_fused import planned_gradient
from loopvec.backends.numba_parallel import ranges_of, threaded_gradient
from loopvec.machine import cpu_target
from loopvec.problem import Problem

pytestmark = pytest.mark.skipif(
    "numba_fused" not in loopvec.available_backends(), reason="numba is not installed"
)

_HOST = llvmlite.binding.get_host_cpu_features()
#: This CPU has AVX2 and not AVX-512: the kernels compiled for it are AVX2 code.
NATIVE_AVX2 = bool(_HOST.get("avx2")) and not _HOST.get("avx512f")
BLOCK = 4096  # examples per block for n <= 256 in C order (`block_examples`, DEFAULT_PLAN)
#: One full block and one example; two and a half blocks; three blocks and a partial fourth.
BLOCKED_M = (BLOCK + 1, 10_001, 3 * BLOCK + 123)
#: Below the 8-row unroll, a multiple of it, and 8 rows plus 5 left over; in Fortran order these
#: are short columns (`_blocked.SHORT_COLUMN_MAX_N`: one SIMD vector, two, one and 5 lanes), and
#: 2 x 8 + 5 features are walked.
UNROLL_N = (3, 16, 13, 21)
#: Each way a block of X is read (Fortran order: columns walked 8 or one at a time, or 8 in
#: Lanes, in blocks (both passes, or dw only) or in one pass of 8 streams, the block transposed,
#: by n; C order: its two passes apart or pipelined), with the reference's block sizes and with
#: the smallest blocks (64 examples: a problem spans many).
PLANS = {
    "columns": DEFAULT_PLAN,
    "transposed": DEFAULT_PLAN._replace(f_transpose_below_n=2**62),
    "smallest blocks, columns": KernelPlan(1, 1, 0),
    "columns one at a time": DEFAULT_PLAN._replace(f_columns_per_walk=1),
    "smallest blocks, columns one at a time": KernelPlan(1, 1, 0, 0, 1),
    "columns in lanes": DEFAULT_PLAN._replace(f_lanes=1),
    "smallest blocks, columns in lanes": KernelPlan(1, 1, 0, 0, 8, 1),
    "columns one at a time, dw in lanes": DEFAULT_PLAN._replace(f_columns_per_walk=1, f_lanes=1),
    "smallest blocks, columns one at a time, dw in lanes": KernelPlan(1, 1, 0, 0, 1, 1),
    "one pass of 8 streams in lanes": DEFAULT_PLAN._replace(f_lanes=2),
    "one pass, from n = 14 columns one at a time": DEFAULT_PLAN._replace(
        f_lanes=2, f_wide_from_n=14, f_wide_columns_per_walk=1
    ),
    "smallest blocks, transposed below n = 14": KernelPlan(1, 1, 14),
    "C order pipelined": DEFAULT_PLAN._replace(c_pipeline_below_n=2**62),
    "smallest blocks, C order pipelined below n = 14": KernelPlan(1, 1, 0, 14),
}


def problem(m: int, n: int, layout: str, dtype: str, seed: int = 0) -> Problem:
    p = loopvec.make_problem(m, n, seed=seed).astype(dtype)
    X = np.asfortranarray(p.X) if layout == "F" else p.X
    assert X.flags.f_contiguous == (layout == "F")
    assert X.dtype == dtype
    return Problem(p.w, p.b, X, p.Y)


def check(backend: str, got: tuple[np.ndarray, float], p: Problem) -> None:
    Reference.of(p).check(backend, got, rtol=RTOL[str(p.X.dtype)])


def test_the_blocked_sizes_span_several_blocks() -> None:
    sizes = {
        block_examples(n, size, DEFAULT_PLAN.c_block_bytes) for n in UNROLL_N for size in (4, 8)
    }
    assert sizes == {BLOCK}
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
    assert block_examples(n, 8, DEFAULT_PLAN.c_block_bytes) == 1024
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
    check("numba_parallel", threaded_gradient(p.w, p.b, p.X, p.Y, threads, 1, DEFAULT_PLAN), p)


@pytest.mark.parametrize("n", [3, 10, 16])
def test_short_columns_read_whole_all_but_the_last_that_would_reach_past_x(n: int) -> None:
    X = np.asfortranarray(np.ones((n, 50)))
    last = 49 - (SHORT_COLUMN_MAX_N - n) // n - ((SHORT_COLUMN_MAX_N - n) % n > 0)
    assert columns_read_whole(X) == last + 1  # columns 0..last: 16 values from each start
    assert (last * n + SHORT_COLUMN_MAX_N) * 8 <= X.nbytes < ((last + 1) * n + 16) * 8
    assert columns_read_whole(X[:, :1]) == (1 if n == 16 else 0)


#: The plans of the Lanes walks of columns longer than the short ones: in blocks (both passes,
#: or the dw pass after a z pass one column at a time), in one pass.
LANES_PLAN = DEFAULT_PLAN._replace(f_lanes=1)
ONE_AT_A_TIME_PLAN = DEFAULT_PLAN._replace(f_columns_per_walk=1)
DW_LANES_PLAN = ONE_AT_A_TIME_PLAN._replace(f_lanes=1)
STREAMS_PLAN = DEFAULT_PLAN._replace(f_lanes=2)


@pytest.mark.parametrize(
    "plan", [LANES_PLAN, DW_LANES_PLAN, STREAMS_PLAN], ids=["blocks", "dw only", "streams"]
)
@pytest.mark.parametrize("n", [17, 24, 100])  # 8 features a Lanes value and 1, 0 and 4 more
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_columns_in_lanes_at_widths_that_do_and_do_not_fill_them(
    n: int, dtype: str, plan: KernelPlan
) -> None:
    p = problem(BLOCK + 301, n, "F", dtype, seed=n)
    check("numba_fused", planned_gradient(p.w, p.b, p.X, p.Y, plan), p)
    check("numba_parallel", threaded_gradient(p.w, p.b, p.X, p.Y, 3, 1, plan), p)


@pytest.mark.parametrize("n", [17, 100])
def test_the_walk_with_dw_in_lanes_makes_z_one_column_at_a_time(n: int) -> None:
    """It gives the bits of the z pass one column at a time and the Lanes walk's dw pass,
    composed here block by block from the kernels' own loops (the bits of neither the Lanes walk
    nor the walk one at a time)."""
    p = problem(BLOCK + 301, n, "F", "float64", seed=n)
    m = p.X.shape[1]
    block = block_examples(n, p.X.itemsize, DW_LANES_PLAN.f_block_bytes)
    w, z, dz = np.ascontiguousarray(p.w[:, 0]), np.empty(block), np.empty(block)
    dw_lanes, db = np.zeros(_lane_rows(n)), 0.0
    for start in range(0, m, block):
        size = min(block, m - start)
        _z_each_column(w, p.b, p.X, start, size, z)
        db += sigmoid_minus_y(z, p.Y[0, start : start + size], size, dz)
        _dw_lane_columns(p.X, start, size, dz, dw_lanes)
    got = planned_gradient(p.w, p.b, p.X, p.Y, DW_LANES_PLAN)
    np.testing.assert_array_equal(got[0][:, 0], dw_lanes[:n] / m)
    assert got[1] == db / m
    for other in (LANES_PLAN, ONE_AT_A_TIME_PLAN):
        assert not np.array_equal(planned_gradient(p.w, p.b, p.X, p.Y, other)[0], got[0])


@pytest.mark.parametrize("n", [17, 100])
def test_x_in_the_cache_is_walked_the_plan_s_way_for_it_and_larger_x_the_other(n: int) -> None:
    """The plan's walk in cache for X of at most f_cache_bytes, its other walk for larger X: each
    gives the bits of the plan that walks every X its way (the two walks' bits differ)."""
    p = problem(BLOCK + 301, n, "F", "float64", seed=n)
    both = ONE_AT_A_TIME_PLAN._replace(f_cache_lanes=2)  # in cache: the one pass, as STREAMS_PLAN
    in_cache, from_memory = (
        threaded_gradient(p.w, p.b, p.X, p.Y, 3, 1, plan)
        for plan in (STREAMS_PLAN, ONE_AT_A_TIME_PLAN)
    )
    assert not np.array_equal(in_cache[0], from_memory[0])
    for cache_bytes, expected in [(p.X.nbytes, in_cache), (p.X.nbytes - 1, from_memory)]:
        got = threaded_gradient(p.w, p.b, p.X, p.Y, 3, 1, both._replace(f_cache_bytes=cache_bytes))
        np.testing.assert_array_equal(got[0], expected[0])
        assert got[1] == expected[1]


@pytest.mark.parametrize("wide_from_n", [99, 100, 101])
def test_x_from_memory_is_walked_the_plan_s_wide_way_from_its_width(wide_from_n: int) -> None:
    """X from memory with at least f_wide_from_n features is walked the plan's wide way (the
    bits of the plan that walks every X that way), narrower X the other way; X in cache its
    own way whatever its width."""
    p = problem(BLOCK + 301, 100, "F", "float64", seed=7)
    plans = {"streams": STREAMS_PLAN, "one at a time": ONE_AT_A_TIME_PLAN, "lanes": LANES_PLAN}
    bits = {k: threaded_gradient(p.w, p.b, p.X, p.Y, 3, 1, v) for k, v in plans.items()}
    wide = STREAMS_PLAN._replace(f_wide_from_n=wide_from_n, f_wide_columns_per_walk=1)
    expected = bits["one at a time"] if wide_from_n <= 100 else bits["streams"]
    got = threaded_gradient(p.w, p.b, p.X, p.Y, 3, 1, wide)
    np.testing.assert_array_equal(got[0], expected[0])
    assert got[1] == expected[1]
    in_cache = wide._replace(f_cache_bytes=p.X.nbytes, f_cache_lanes=1)
    got = threaded_gradient(p.w, p.b, p.X, p.Y, 3, 1, in_cache)
    np.testing.assert_array_equal(got[0], bits["lanes"][0])
    assert len({v[0].tobytes() for v in bits.values()}) == 3  # three walks, three sets of bits


@pytest.mark.parametrize("m", [1, 7, 8, 9, 63, 8 * 40 + 3, 8 * 45 + 3])
def test_streams_shorter_than_a_step_or_than_one_column(m: int) -> None:
    """The one-pass walk's 8 streams of m // 8 columns (none at m < 8), in steps of 8 columns:
    one step, or several (each step's dw made in the next step's walk), the last whole (m = 323)
    or short (m = 363); the few columns left over one at a time; each thread's range split so
    again."""
    p = problem(m, 30, "F", "float64", seed=m)
    check("numba_fused", planned_gradient(p.w, p.b, p.X, p.Y, STREAMS_PLAN), p)
    check("numba_parallel", threaded_gradient(p.w, p.b, p.X, p.Y, 3, 1, STREAMS_PLAN), p)


@pytest.mark.parametrize(
    ("n", "plan"), [(3, DEFAULT_PLAN), (13, DEFAULT_PLAN), (21, LANES_PLAN), (21, STREAMS_PLAN)]
)
def test_short_columns_of_a_view_never_sum_what_lies_between_its_columns(
    n: int, plan: KernelPlan
) -> None:
    """A Fortran-order view whose columns have gaps full of NaN (rows and columns of a larger
    array left out): the short-column and Lanes kernels read whole Lanes of a column, and what
    they read past its n is set to 0, never multiplied by 0. (float64 only: a view's layout is
    compiled anew.)"""
    p = problem(BLOCK + 301, n, "F", "float64", seed=n)
    parent = np.full((n + 3, 2 * p.X.shape[1]), np.nan, order="F")
    parent[:n, ::2] = p.X
    view = parent[:n, ::2]
    assert view.strides == (view.itemsize, 2 * (n + 3) * view.itemsize)
    check("numba_fused", planned_gradient(p.w, p.b, view, p.Y, plan), p)
    check("numba_parallel", threaded_gradient(p.w, p.b, view, p.Y, 3, 1, plan), p)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mprotect through Linux's libc")
@pytest.mark.parametrize(
    ("n", "plan"),
    [
        (3, DEFAULT_PLAN),
        (10, DEFAULT_PLAN),
        (16, DEFAULT_PLAN),
        (21, LANES_PLAN),
        (21, STREAMS_PLAN),
    ],
)
def test_short_columns_read_nothing_past_the_end_of_x(n: int, plan: KernelPlan) -> None:
    """X (Fortran order) ends where a page that may not be read begins: a read past its last
    element would end the process (SIGSEGV). Compiled for AVX-512, LLVM makes a whole load and
    its select one masked load, which reads nothing masked; the AVX2 run below reads whole. The
    Lanes walk of longer columns too."""
    page, m = mmap.PAGESIZE, 1000
    pages = -(-m * n * 8 // page)
    memory = mmap.mmap(-1, (pages + 1) * page)
    start = ctypes.addressof(ctypes.c_char.from_buffer(memory))
    libc = ctypes.CDLL(None, use_errno=True)
    guard = ctypes.c_void_p(start + pages * page)
    assert libc.mprotect(guard, ctypes.c_size_t(page), 0) == 0, os.strerror(ctypes.get_errno())
    X = np.frombuffer(memory, np.float64, m * n, pages * page - m * n * 8).reshape(m, n).T
    try:
        p = problem(m, n, "F", "float64", seed=n)
        X[...] = p.X
        gradients = {
            "numba_fused": planned_gradient(p.w, p.b, X, p.Y, plan),
            "numba_parallel": threaded_gradient(p.w, p.b, X, p.Y, 3, 1, plan),
        }
        for backend, gradient in gradients.items():
            check(backend, gradient, Problem(p.w, p.b, X, p.Y))  # no reference to X kept
    finally:
        libc.mprotect(guard, ctypes.c_size_t(page), 3)  # read and write again, so it can close
        del X
        memory.close()


@pytest.mark.parametrize("plan", PLANS.values(), ids=list(PLANS))
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("layout", ["C", "F"])
@pytest.mark.parametrize("n", UNROLL_N)
def test_every_plan_of_both_kernels(plan: KernelPlan, n: int, layout: str, dtype: str) -> None:
    p = problem(3 * BLOCK + 123, n, layout, dtype, seed=n)
    check("numba_fused", planned_gradient(p.w, p.b, p.X, p.Y, plan), p)
    check("numba_parallel", threaded_gradient(p.w, p.b, p.X, p.Y, 3, 1, plan), p)


def test_the_kernels_are_compiled_for_the_cpu_numba_targets() -> None:
    """Under NUMBA_CPU_NAME=haswell (with NUMBA_CPU_FEATURES="", else numba adds this CPU's
    features) a kernel's loops use AVX2's 256-bit registers and no AVX-512 ones. (Compiled
    afresh: numba shows no assembly of code loaded from its cache.)"""
    fresh = numba.njit(fastmath=set(REASSOCIATE))(_dw_columns.py_func)
    p = problem(BLOCK, 16, "F", "float64")
    fresh(p.X, 0, BLOCK, np.ones(BLOCK), np.zeros(16))
    assembly = "".join(fresh.inspect_asm().values())
    assert "%xmm" in assembly  # x86: the test reads x86 assembly
    if numba.config.CPU_NAME == "haswell" or NATIVE_AVX2:
        assert "%ymm" in assembly
        # AVX-512's registers: 512-bit, the upper 16 of 32, the masks
        assert not re.search(r"%zmm|%ymm(1[6-9]|2\d|3[01])\b|%k[1-7]", assembly)


def test_every_kernel_path_again_compiled_for_avx2() -> None:
    if os.environ.get("NUMBA_CPU_NAME"):
        pytest.skip("this run is the AVX2 one")  # it would start itself again
    if NATIVE_AVX2:
        # The kernels' code paths differ only by the registers' width: on an AVX2 CPU the run
        # above compiled each for AVX2 (its assembly test holds it to 256-bit registers), and a
        # second run would compile the same code again (170 s of CI's 2 cores on a Zen 3).
        pytest.skip(
            f"this CPU ({cpu_target()}) has AVX2, not AVX-512: the run above was the AVX2 one"
        )
    env = os.environ | {"NUMBA_CPU_NAME": "haswell", "NUMBA_CPU_FEATURES": ""}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x", __file__,
         "-k", "not again_compiled_for_avx2"],
        env=env, capture_output=True, text=True, timeout=900, check=False,
        cwd=Path(__file__).parent.parent,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    assert " passed" in done.stdout, done.stdout[-2000:]
    assert "skipped" not in done.stdout, done.stdout[-2000:]


def test_threads_start_only_where_there_is_work_for_them() -> None:
    threshold = 2**17  # multiply-adds per thread, the module's default
    assert ranges_of(1000, 100, 8, threshold) == 1  # 116,000 < one thread's share: serial
    assert ranges_of(10_000, 100, 8, threshold) == 8
    assert ranges_of(5, 1_000_000, 8, threshold) == 5  # never more ranges than examples
    assert ranges_of(100_000, 10, numba.get_num_threads(), threshold) == numba.get_num_threads()
