"""The validated front doors: the gradient through any backend, and the loss.

Shapes: X (n, m) features x examples, Y (1, m) in [0, 1], w (n, 1), b a real scalar.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from loopvec.backends import BACKENDS, _module, call, get_backend, get_kernel
from loopvec.validation import is_dask_array, validate_lazy_problem, validate_problem


def gradient(
    w: Any, b: Any, X: Any, Y: Any, *, backend: str = "numpy_vectorized", dtype: str = "float64"
) -> tuple[NDArray[np.floating], float]:
    """Gradient of the mean cross-entropy, (dw of shape (n, 1), db float).

    Z = w.T X + b;  A = sigmoid(Z);  dZ = A - Y;  dw = X dZ.T / m;  db = sum(dZ) / m.
    Inputs are validated once (ValueError/TypeError naming the argument), converted to `dtype`
    and never modified; `backend` is any name of `loopvec.backend_names()`. dw is float64 for any
    real input; dtype="float32" computes from float32 inputs and returns dw in float32.
    """
    get_kernel(backend)  # an unknown or unavailable backend fails before any work
    if is_dask_array(X) or is_dask_array(Y):
        return _dask_gradient(w, b, X, Y, backend, dtype)
    w, b, X, Y = validate_problem(w, b, X, Y, dtype=dtype)
    dw, db = call(backend, w, b, X, Y)
    return np.asarray(dw, dtype=X.dtype), float(db)


def _dask_gradient(
    w: Any, b: Any, X: Any, Y: Any, backend: str, dtype: str
) -> tuple[NDArray[np.floating], float]:
    """The gradient of dask arrays (from Zarr, say), never loaded whole: a Dask backend reads
    them chunk by chunk and checks their values in that same pass."""
    require_dask_backend(backend)
    from loopvec.backends._dask import checked  # noqa: PLC0415 (dask is optional)

    w, b, X, Y = validate_lazy_problem(w, b, X, Y, dtype=dtype)
    dw, db = _module(backend).gradient(w, b, *checked(X, Y))  # values checked as they are read
    return np.asarray(dw, dtype=X.dtype), float(db)


def require_dask_backend(backend: str) -> None:
    """TypeError unless `backend` computes on Dask: the others would load dask inputs whole."""
    if get_backend(backend).family != "dask":
        dask_backends = ", ".join(name for name, spec in BACKENDS.items() if spec.family == "dask")
        raise TypeError(
            f"X and Y are dask arrays, which backend {backend!r} would load whole: use a Dask "
            f"backend ({dask_backends}), or pass numpy arrays (X.compute())"
        )


def loss(w: Any, b: Any, X: Any, Y: Any) -> float:
    """Mean cross-entropy J = -mean(Y log A + (1 - Y) log(1 - A)), A = sigmoid(w.T X + b).

    Computed as mean(softplus(Z) - Y Z) with softplus(z) = max(z, 0) + log1p(exp(-|z|)), the same
    quantity rearranged so that it never takes log(0) and never overflows.
    """
    if is_dask_array(X) or is_dask_array(Y):  # summed chunk by chunk on the Dask cluster
        from loopvec.backends._dask import checked, cross_entropy  # noqa: PLC0415 (optional)

        w, b, X, Y = validate_lazy_problem(w, b, X, Y)
        return cross_entropy(w, b, *checked(X, Y))
    w, b, X, Y = validate_problem(w, b, X, Y)
    Z = w.T @ X + b
    softplus = np.maximum(Z, 0.0) + np.log1p(np.exp(-np.abs(Z)))
    return float(np.mean(softplus - Y * Z))
