"""The idiomatic JAX way: write the loss, let jax.grad derive the gradient, jit the result.

loss(w, b) = mean(softplus(z) - y z), z = w.T X + b: the mean cross-entropy, stable for any z;
jax.jit(jax.grad(loss, argnums=(0, 1))) gives (dw, db), compiled once per shape.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from loopvec.backends._jax import loops_of, ready, to_native, to_numpy

__all__ = ["compiled_loop", "gradient", "python_loop", "to_native", "to_numpy"]


def _loss(w: Any, b: Any, X: Any, Y: Any) -> Any:
    Z = w.T @ X + b
    return jnp.mean(jax.nn.softplus(Z) - Y * Z)


_gradient = jax.jit(jax.grad(_loss, argnums=(0, 1)))


def gradient(w: Any, b: Any, X: Any, Y: Any) -> tuple[Any, Any]:
    """dw (n, 1) and db (0-d array), computed and waited for; X (n, m), Y (1, m), w (n, 1)."""
    return ready(_gradient(w, b, X, Y))


python_loop, compiled_loop = loops_of(_gradient)
