"""numba_fused split over threads: contiguous ranges of examples, one partial dw per thread.

The thread count is an argument of the compiled function (read by the Python wrapper from
numba.get_num_threads(), which the benchmark's `threads` axis sets) rather than read inside it,
so the compiled code does not depend on it and stays cacheable. So are the work below which one
thread does it all, which lets the tests run the threaded path on small problems, and the
machine's kernel plan (`loopvec.tuning`).
"""

from __future__ import annotations

import numba
import numpy as np
from numpy.typing import NDArray

from loopvec.backends import numba_fused
from loopvec.backends._blocked import Floats, KernelPlan, accumulate, finish
from loopvec.backends._jit import compiled_descent, jit
from loopvec.backends._plan import kernel_plan

#: Work below which one thread is faster than waking the pool (a few microseconds): entries of X
#: plus about 16 per example for the sigmoid, in units of one multiply-add.
_MIN_WORK_PER_THREAD = 2**17
_SIGMOID_WORK = 16


@jit
def ranges_of(m: int, n: int, threads: int, min_work_per_thread: int) -> int:
    """How many ranges of examples (one per thread) an (n, m) problem is split into."""
    return max(1, min(threads, m, m * (n + _SIGMOID_WORK) // min_work_per_thread))


@jit(parallel=True)
def threaded_gradient(
    w: Floats,
    b: float,
    X: Floats,
    Y: Floats,
    threads: int,
    min_work_per_thread: int,
    plan: KernelPlan,
) -> tuple[NDArray[np.float64], float]:
    """`gradient` over `ranges_of(m, n, threads, min_work_per_thread)` ranges of examples."""
    n, m = X.shape
    ranges = ranges_of(m, n, threads, min_work_per_thread)
    if ranges <= 1:
        return numba_fused.planned_gradient(w, b, X, Y, plan)
    partial_dw = np.zeros((ranges, n))
    partial_db = np.zeros(ranges)
    for r in numba.prange(ranges):
        lo, hi = r * m // ranges, (r + 1) * m // ranges
        partial_db[r] = accumulate(w, b, X, Y, lo, hi, partial_dw[r], plan)
    dw = np.zeros(n)
    for r in range(ranges):
        dw += partial_dw[r]
    return finish(dw, partial_db.sum(), m)


def gradient(w: Floats, b: float, X: Floats, Y: Floats) -> tuple[NDArray[np.float64], float]:
    """dw (n, 1) float64 and db of the mean cross-entropy; X (n, m), Y (1, m), w (n, 1)."""
    threads = numba.get_num_threads()
    return threaded_gradient(w, b, X, Y, threads, _MIN_WORK_PER_THREAD, kernel_plan())


compiled_loop = compiled_descent(
    threaded_gradient, lambda: (numba.get_num_threads(), _MIN_WORK_PER_THREAD, kernel_plan())
)
