"""The fully vectorized gradient, the reference every other backend is checked against.

Z = w.T X + b;  A = sigmoid(Z);  dZ = A - Y;  dw = X dZ.T / m;  db = sum(dZ) / m
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from loopvec.sigmoid import sigmoid


def gradient(
    w: NDArray[np.float64], b: float, X: NDArray[np.float64], Y: NDArray[np.float64]
) -> tuple[NDArray[np.float64], float]:
    """dw (n, 1) and db of the mean cross-entropy; X (n, m), Y (1, m), w (n, 1)."""
    m = X.shape[1]
    # Two matrix products (GEMV in BLAS) read X twice; that is the formula as the lesson writes it.
    dZ = sigmoid(w.T @ X + b) - Y
    return (X @ dZ.T) / m, float(dZ.sum()) / m
