"""What the JAX backends share: float64 switched on, moving arrays in and out.

JAX computes in float32 unless jax_enable_x64 is set; it is set here, for the whole process, when
a JAX backend is first used (float64 is what every other backend computes in).
JAX's CPU thread pool is sized by XLA when the process starts and cannot be changed afterwards,
so the grid runs these backends once, at all cores.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from numpy.typing import NDArray

jax.config.update("jax_enable_x64", True)  # type: ignore[no-untyped-call]


def to_native(w: NDArray[Any], b: float, X: NDArray[Any], Y: NDArray[Any]) -> tuple[Any, ...]:
    """numpy inputs as JAX arrays on the CPU device (a copy, made before timing). b becomes a
    0-d array so that a new value of b does not trigger a new compilation."""
    return jnp.asarray(w), jnp.asarray(b, dtype=w.dtype), jnp.asarray(X), jnp.asarray(Y)


def to_numpy(result: tuple[Any, Any]) -> tuple[NDArray[np.floating], float]:
    dw, db = result
    return np.asarray(dw), float(db)


def ready(result: tuple[Any, Any]) -> tuple[Any, Any]:
    """Wait until JAX has computed `result` (it dispatches asynchronously), so timings are whole."""
    return jax.block_until_ready(result)  # type: ignore[no-untyped-call,no-any-return]
