"""One pass over X per gradient, compiled: blocks of examples stay in cache between the two uses.

See `_blocked` for the kernel: z for a block of examples, a vectorized sigmoid, then dw from the
same block while it is still in cache; X in C or Fortran order, never copied. The block sizes and
the Fortran-order strategy are this machine's plan (`loopvec.tuning`).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from loopvec.backends._blocked import Floats, KernelPlan, accumulate, finish
from loopvec.backends._jit import compiled_descent, jit
from loopvec.backends._plan import kernel_plan


@jit
def planned_gradient(
    w: Floats, b: float, X: Floats, Y: Floats, plan: KernelPlan
) -> tuple[NDArray[np.float64], float]:
    """`gradient` with the kernel plan given."""
    n, m = X.shape
    dw = np.zeros(n)
    db = accumulate(w, b, X, Y, 0, m, dw, plan)
    return finish(dw, db, m)


def gradient(w: Floats, b: float, X: Floats, Y: Floats) -> tuple[NDArray[np.float64], float]:
    """dw (n, 1) float64 and db of the mean cross-entropy; X (n, m), Y (1, m), w (n, 1)."""
    return planned_gradient(w, b, X, Y, kernel_plan())


compiled_loop = compiled_descent(planned_gradient, lambda: (kernel_plan(),))
