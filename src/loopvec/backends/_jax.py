"""What the JAX backends share: float64 switched on, moving arrays in and out, the training loops.

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
from jax import lax
from numpy.typing import NDArray

from loopvec.backends._loop import Advance, Loop

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


def loops_of(gradient: Any) -> tuple[Loop, Loop]:
    """(python_loop, compiled_loop) of a JAX backend whose pure `gradient(w, b, X, Y)` gives
    (dw, db), as JAX users write them: the Python loop calls one jitted step (gradient and update
    together), the compiled loop is a lax.fori_loop under one jax.jit. The step count, the
    learning rate and the weight decay are traced: one compilation serves them all."""

    def step(w: Any, b: Any, X: Any, Y: Any, learning_rate: Any, weight_decay: Any) -> Any:
        dw, db = gradient(w, b, X, Y)
        return w - learning_rate * (dw + weight_decay * w), b - learning_rate * db

    def descend(w: Any, b: Any, X: Any, Y: Any, rate: Any, decay: Any, steps: Any) -> Any:
        return lax.fori_loop(0, steps, lambda _, wb: step(wb[0], wb[1], X, Y, rate, decay), (w, b))

    jitted_step, jitted_descend = jax.jit(step), jax.jit(descend)

    def python_loop(
        w: Any, b: Any, X: Any, Y: Any, learning_rate: float, weight_decay: float
    ) -> tuple[Advance, Any, Any]:
        def advance(w: Any, b: Any, steps: int) -> tuple[Any, Any]:
            for _ in range(steps):  # dispatched ahead; the recorded cost waits for them
                w, b = jitted_step(w, b, X, Y, learning_rate, weight_decay)
            return w, b

        return advance, w, b

    def compiled_loop(
        w: Any, b: Any, X: Any, Y: Any, learning_rate: float, weight_decay: float
    ) -> tuple[Advance, Any, Any]:
        def advance(w: Any, b: Any, steps: int) -> tuple[Any, Any]:
            return jitted_descend(w, b, X, Y, learning_rate, weight_decay, steps)  # type: ignore[no-any-return]

        return advance, w, b

    return python_loop, compiled_loop
