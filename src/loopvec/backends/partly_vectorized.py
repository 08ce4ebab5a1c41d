"""The lesson's first step of vectorization: one loop over examples, dw as a numpy vector.

for each example i:    z_i = w.T x_i + b;  dz_i = sigmoid(z_i) - y_i;  dw += x_i dz_i;  db += dz_i
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
    w_vector = w[:, 0]
    dw = np.zeros(n)
    db = 0.0
    for i in range(m):
        x_i = X[:, i]
        dz = sigmoid_scalar(float(w_vector @ x_i) + b) - float(Y[0, i])
        dw += x_i * dz
        db += dz
    return dw.reshape(n, 1) / m, db / m
