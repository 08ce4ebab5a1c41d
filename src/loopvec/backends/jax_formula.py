"""The lesson's vectorized formula under jax.jit: XLA compiles and fuses it (once per shape).

Z = w.T X + b;  A = sigmoid(Z);  dZ = A - Y;  dw = X dZ.T / m;  db = sum(dZ) / m
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from loopvec.backends._jax import loops_of, ready, to_native, to_numpy

__all__ = ["compiled_loop", "gradient", "python_loop", "to_native", "to_numpy"]


@jax.jit
def _gradient(w: Any, b: Any, X: Any, Y: Any) -> tuple[Any, Any]:
    m = X.shape[1]
    dZ = jax.nn.sigmoid(w.T @ X + b) - Y  # jax.nn.sigmoid is lax.logistic: stable
    return X @ dZ.T / m, jnp.sum(dZ) / m


def gradient(w: Any, b: Any, X: Any, Y: Any) -> tuple[Any, Any]:
    """dw (n, 1) and db (0-d array), computed and waited for; X (n, m), Y (1, m), w (n, 1)."""
    return ready(_gradient(w, b, X, Y))


python_loop, compiled_loop = loops_of(_gradient)
