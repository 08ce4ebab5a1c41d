"""The double loop of python_loops, compiled by numba: same algorithm, no interpreter.

for each example i:    z_i = sum_j w_j x_ji + b;  dz_i = sigmoid(z_i) - y_i
    for each feature j:    dw_j += x_ji dz_i
    db += dz_i
dw /= m;  db /= m
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from loopvec.backends._jit import compiled_descent, jit
from loopvec.sigmoid import sigmoid_scalar

_sigmoid = jit(sigmoid_scalar)


@jit
def gradient(
    w: NDArray[np.float64], b: float, X: NDArray[np.float64], Y: NDArray[np.float64]
) -> tuple[NDArray[np.float64], float]:
    """dw (n, 1) and db of the mean cross-entropy; X (n, m), Y (1, m), w (n, 1)."""
    n, m = X.shape
    dw = np.zeros((n, 1))
    db = 0.0
    for i in range(m):
        z = b
        for j in range(n):
            z += w[j, 0] * X[j, i]
        dz = _sigmoid(z) - Y[0, i]
        for j in range(n):
            dw[j, 0] += X[j, i] * dz
        db += dz
    return dw / m, db / m


compiled_loop = compiled_descent(gradient)
