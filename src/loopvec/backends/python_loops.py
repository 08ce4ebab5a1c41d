"""The lesson's non-vectorized gradient: two nested Python for-loops, Python floats, `math`.

for each example i:    z_i = sum_j w_j x_ji + b;  a_i = sigmoid(z_i);  dz_i = a_i - y_i
    for each feature j:    dw_j += x_ji dz_i
    db += dz_i
dw /= m;  db /= m

Its own arrays are Python lists: `to_native` turns the numpy inputs into lists once, before
timing (as the framework backends move theirs in), so the timed loops touch no numpy at all.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from loopvec.sigmoid import sigmoid_scalar

Lists = tuple[list[float], float, list[list[float]], list[float]]


def to_native(w: NDArray[Any], b: float, X: NDArray[Any], Y: NDArray[Any]) -> Lists:
    """w as a list of n floats, X as n rows of m floats, Y as m floats (done before timing)."""
    return w[:, 0].tolist(), float(b), X.tolist(), Y[0].tolist()


def to_numpy(result: tuple[list[float], float]) -> tuple[NDArray[np.float64], float]:
    """(dw, db), or (w, b): the list back as an (n, 1) array."""
    dw, db = result
    return np.array(dw, dtype=np.float64).reshape(-1, 1), float(db)


def gradient(
    w: list[float], b: float, x_rows: list[list[float]], y: list[float]
) -> tuple[list[float], float]:
    """dw (a list of n) and db of the mean cross-entropy; x_rows n lists of m, y a list of m."""
    n, m = len(x_rows), len(y)
    dw = [0.0] * n
    db = 0.0
    for i in range(m):
        z = b
        for j in range(n):
            z += w[j] * x_rows[j][i]
        dz = sigmoid_scalar(z) - y[i]
        for j in range(n):
            dw[j] += x_rows[j][i] * dz
        db += dz
    return [value / m for value in dw], db / m


def step(
    w: list[float], b: float, dw: list[float], db: float, learning_rate: float, weight_decay: float
) -> tuple[list[float], float]:
    """The gradient-descent update, a loop too: w_j - learning_rate (dw_j + weight_decay w_j)."""
    w_next = [wj - learning_rate * (dwj + weight_decay * wj) for wj, dwj in zip(w, dw, strict=True)]
    return w_next, b - learning_rate * db
