"""The lesson's vectorized formula in dask.array operations, as a Dask user would first write it:

    Z = w.T X + b;  A = sigmoid(Z);  dZ = A - Y;  dw = X dZ.T / m;  db = sum(dZ) / m

Dask plans the passes over X that these operations need (w.T X, then X dZ.T); the same-engine
baseline for dask_fused. The sigmoid is the stable one (exp of -|Z| only).
"""

from __future__ import annotations

from typing import Any

import dask.array as da
import numpy as np
from numpy.typing import NDArray

from loopvec.backends import _dask
from loopvec.backends._dask import as_dask_array, compute, to_numpy

__all__ = ["gradient", "to_native", "to_numpy"]


def to_native(
    w: Any, b: float, X: Any, Y: Any, chunks: tuple[int, ...] | None = None
) -> tuple[Any, float, Any, Any]:
    """X and Y on the workers as dask_fused holds them (`_dask.to_native`), seen as dask arrays
    whose chunks are those futures."""
    w, b, X, Y = _dask.to_native(w, b, X, Y, chunks)
    return w, b, as_dask_array(X), as_dask_array(Y)


def gradient(w: NDArray[Any], b: float, X: Any, Y: Any) -> tuple[NDArray[np.float64], float]:
    """dw (n, 1) float64 and db of the mean cross-entropy; X (n, m), Y (1, m) dask arrays."""
    m = X.shape[1]
    Z = da.dot(w.T, X) + b
    e = da.exp(-abs(Z))
    A = da.where(Z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
    dZ = A - Y
    dw, db = compute(da.dot(X, dZ.T) / m, dZ.sum() / m)
    return np.asarray(dw, dtype=np.float64), float(db)
