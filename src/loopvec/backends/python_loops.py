"""The lesson's non-vectorized gradient: two nested Python for-loops, Python floats, `math`.

for each example i:    z_i = sum_j w_j x_ji + b;  a_i = sigmoid(z_i);  dz_i = a_i - y_i
    for each feature j:    dw_j += x_ji dz_i
    db += dz_i
dw /= m;  db /= m
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from loopvec.sigmoid import sigmoid_scalar


def gradient(
    w: NDArray[np.float64], b: float, X: NDArray[np.float64], Y: NDArray[np.float64]
) -> tuple[NDArray[np.float64], float]:
    """dw (n, 1) and db of the mean cross-entropy; X (n, m), Y (1, m), w (n, 1)."""
    n, m = X.shape
    # Converting to lists once is part of this backend's cost: no numpy call runs in the loops.
    x_rows: list[list[float]] = X.tolist()
    y: list[float] = Y[0].tolist()
    w_list: list[float] = w[:, 0].tolist()
    dw = [0.0] * n
    db = 0.0
    for i in range(m):
        z = b
        for j in range(n):
            z += w_list[j] * x_rows[j][i]
        dz = sigmoid_scalar(z) - y[i]
        for j in range(n):
            dw[j] += x_rows[j][i] * dz
        db += dz
    return np.array(dw).reshape(n, 1) / m, db / m
