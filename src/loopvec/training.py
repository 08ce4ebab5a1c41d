"""Gradient descent: the outer loop over iterations, the one loop the lesson keeps.

    for i in range(iterations):
        dw, db = gradient(w, b, X, Y)                      # any backend's kernel
        w = w - learning_rate * (dw + l2_penalty / m * w)  # the penalty term only if asked for
        b = b - learning_rate * db

loop="python" runs this for loop in Python, a step per iteration as each framework's users write
it (JAX: one jitted step; torch_autograd: an SGD optimizer). loop="compiled" runs the steps
between two recorded costs in one call of the backend's compiled code (numba: one jitted loop;
JAX: lax.fori_loop under jit; torch: torch.compile), so the interpreter is left out of the loop.

Shapes: X (n, m) features x examples, Y (1, m) in [0, 1], w (n, 1), b a scalar. The cost

    J = mean cross-entropy + l2_penalty / (2 m) * ||w||^2

is recorded before iteration 0, record_every, 2 record_every, ... (as the course's `optimize` does)
and once more after the last iteration. The inputs are moved into the backend once; w and b stay
in its arrays for the whole run.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from loopvec.backends import get_adapters, get_backend, get_loop
from loopvec.backends._jit import jit
from loopvec.interrupts import ctrl_c
from loopvec.sigmoid import sigmoid
from loopvec.validation import (
    is_dask_array,
    validate_bias,
    validate_features,
    validate_labels,
    validate_lazy_data,
    validate_positive_int,
    validate_rate,
    validate_weights,
)

Array = NDArray[np.float64]


@dataclass(frozen=True, eq=False)
class TrainResult:
    """What a training run learned: w (n, 1), b, and the cost along the way."""

    w: Array
    b: float
    costs: Array  #: J before iteration 0, record_every, 2 record_every, ... (< iterations)
    final_cost: float  #: J after the last iteration
    iterations: int  #: iterations done
    record_every: int
    learning_rate: float
    l2_penalty: float
    backend: str

    @property
    def cost_iterations(self) -> NDArray[np.int64]:
        """The iteration at which each entry of `costs` was recorded."""
        return np.arange(len(self.costs), dtype=np.int64) * self.record_every


class TrainingDiverged(ValueError):
    """The recorded cost became inf or NaN: the weights overflowed.

    The cost is computed stably, so a learning rate that is merely too large (the cost grows or
    oscillates) stays finite; this is raised when the steps overflow float64, checked every
    record_every iterations and at the end."""


class DataLost(RuntimeError):
    """The training data held on Dask workers was lost with a worker, again and again: the run
    cannot go on (a lost chunk is sent again from the caller's arrays, MAX_RESENDS times)."""


#: Times a run sends its data to the cluster again after a worker died with part of it.
MAX_RESENDS = 3


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during training; `result` holds what was learned up to the interrupt."""

    def __init__(self, result: TrainResult) -> None:
        super().__init__(f"training interrupted after {result.iterations} iterations")
        self.result = result


@jit
def _cross_entropy_terms(w: Array, b: float, X: Array, Y: Array) -> Array:
    """softplus(z) - y z per example, z = w.T X + b: the terms of the mean cross-entropy (m,).

    The recorded cost is bookkeeping. Compiled, z is computed on the calling thread and wakes no
    pool: with BLAS on two threads, OpenBLAS's spinning worker took a core from the backend's
    own pool (numba, torch), and their two-thread training ran slower than one thread.
    """
    n, m = X.shape
    z = np.full(m, b)
    for j in range(n):  # a row of X at a time: contiguous in the course layout
        for i in range(m):
            z[i] += w[j, 0] * X[j, i]
    terms = np.empty(m)
    for i in range(m):
        terms[i] = max(z[i], 0.0) + math.log1p(math.exp(-abs(z[i]))) - Y[0, i] * z[i]
    return terms


def _recorded_cost(w: Array, b: float, X: Any, Y: Any, l2_penalty: float) -> float:
    """J = mean cross-entropy + l2_penalty / (2 m) ||w||^2; numpy's pairwise sums (no BLAS), or
    for data on a Dask cluster sums chunk by chunk there."""
    if not isinstance(X, np.ndarray):
        from loopvec.backends._dask import cross_entropy as dask_cross_entropy  # noqa: PLC0415

        cross_entropy = dask_cross_entropy(w, b, X, Y)
    else:
        cross_entropy = float(np.mean(_cross_entropy_terms(w, b, X, Y)))
    return cross_entropy + l2_penalty / (2 * int(X.shape[1])) * float(np.sum(w * w))


class Descent:
    """Gradient descent with one backend on one validated float64 problem.

    The arrays are moved into the backend when this is made, so `run` (what the training
    benchmark times) is the loop alone: kernel, update, and the cost every record_every steps.
    """

    def __init__(self, backend: str, w0: Array, b0: float, X: Array, Y: Array) -> None:
        self._to_native, self._to_numpy = get_adapters(backend)
        self.backend, self._inputs = backend, (X, Y)
        #: Errors of a step whose data went with a dead worker (Dask's scattered chunks have no
        #: recipe to compute them again): the data is sent again and the step repeated.
        self._lost: tuple[type[BaseException], ...] = ()
        self._on_dask = get_backend(backend).family == "dask"
        if self._on_dask:
            from loopvec.backends._dask import LOST_DATA_ERRORS  # noqa: PLC0415 (optional)

            self._lost = LOST_DATA_ERRORS
        self._send(w0, b0)

    def _send(self, w: Array, b: float) -> None:
        """w, b, X and Y moved into the backend (`_native`); for data on a Dask cluster, X and
        Y are where the cost is summed."""
        self.X, self.Y = self._inputs
        w, b, X, Y = self._to_native(w, b, *self._inputs)
        self._native: tuple[Any, Any, Any, Any] = (w, b, X, Y)
        if is_dask_array(self.X):
            self.X, self.Y = self._native[2], self._native[3]

    def run(
        self,
        *,
        learning_rate: float,
        iterations: int,
        record_every: int = 100,
        l2_penalty: float = 0.0,
        progress: Callable[[int], object] | None = None,
        loop: str = "python",
    ) -> TrainResult:
        """`iterations` steps from (w0, b0) in the `loop` asked for; `progress(k)` after every
        k steps done, if given (k = 1 in the Python loop).

        Raises TrainingDiverged at the first recorded cost that is not finite, and
        TrainingInterrupted (a KeyboardInterrupt holding the result so far) on Ctrl-C, which
        takes effect at the end of the step running (a compiled loop's: of its up to
        record_every steps); a second Ctrl-C stops at once (with a Dask backend, at the end of
        the step too).
        """
        weight_decay = l2_penalty / self.X.shape[1]
        start = get_loop(self.backend, loop)
        advance, w, b = start(*self._native, learning_rate, weight_decay)
        steps_per_call = 1 if loop == "python" else record_every
        costs: list[float] = []
        done = resends = 0

        def cost(w: Any, b: Any) -> tuple[Array, float, float]:
            w_numpy, b_float = self._to_numpy((w, b))
            w_numpy = np.array(w_numpy, dtype=np.float64)  # a copy: never the backend's memory
            J = _recorded_cost(w_numpy, b_float, self.X, self.Y, l2_penalty)
            if not math.isfinite(J):
                raise self._diverged(done, costs, record_every, learning_rate)
            return w_numpy, b_float, J

        def result(w: Any, b: Any) -> TrainResult:
            w_numpy, b_float, final_cost = cost(w, b)
            return TrainResult(
                w=w_numpy,
                b=b_float,
                costs=np.array(costs),
                final_cost=final_cost,
                iterations=done,
                record_every=record_every,
                learning_rate=learning_rate,
                l2_penalty=l2_penalty,
                backend=self.backend,
            )

        # Overflow is reported as divergence at the next recorded cost, not as numpy warnings.
        # A Dask step cut short would leave its tasks on the cluster and distributed's tracebacks
        # on the terminal: there a second Ctrl-C waits for the step's end too.
        # Ctrl-C takes effect between two steps, never inside one: a step may update the weights
        # in place (torch's optimizers do), and its count must go with them.
        between_steps = ctrl_c(first_at_once=False, second_at_once=not self._on_dask)
        with np.errstate(over="ignore", invalid="ignore"), between_steps as pressed:
            try:
                while done < iterations:
                    try:
                        if done % record_every == 0 and len(costs) * record_every <= done:
                            costs.append(cost(w, b)[2])
                        steps = min(steps_per_call, iterations - done)
                        w, b, done = (*advance(w, b, steps), done + steps)
                    except self._lost as error:  # (w, b) are still those before the step
                        resends += 1
                        if resends > MAX_RESENDS:
                            raise self._data_lost(done, resends - 1, error) from None
                        self._send(*self._to_numpy((w, b)))
                        advance, w, b = start(*self._native, learning_rate, weight_decay)
                        continue
                    if progress is not None:
                        progress(steps)
                    if pressed.pressed:
                        raise KeyboardInterrupt
            except KeyboardInterrupt:
                raise TrainingInterrupted(result(w, b)) from None
            return result(w, b)

    def _data_lost(self, iteration: int, resends: int, error: BaseException) -> DataLost:
        return DataLost(
            f"training with {self.backend} stopped at iteration {iteration}: the data it holds "
            f"on the Dask workers was lost with a worker, again after it was sent {resends} "
            f"more times ({type(error).__name__}: {error}). Check the workers' logs and memory "
            f"limit (a worker killed for memory takes its chunks with it), then train again"
        )

    def _diverged(
        self, iteration: int, costs: list[float], record_every: int, learning_rate: float
    ) -> TrainingDiverged:
        last = (
            f"; the last recorded cost was {costs[-1]:.6g} at iteration "
            f"{(len(costs) - 1) * record_every}"
            if costs
            else ""
        )
        return TrainingDiverged(
            f"training diverged: the cost is not finite at iteration {iteration} with "
            f"learning_rate={learning_rate:g}{last}. The weights overflowed to inf or NaN: use a "
            f"smaller learning_rate (try {learning_rate / 10:g}); record_every=1 finds the first "
            f"such step"
        )


def train(
    X: Any,
    Y: Any,
    *,
    backend: str = "numpy_vectorized",
    learning_rate: float = 0.5,
    iterations: int = 2000,
    record_every: int = 100,
    w0: Any = None,
    b0: Any = 0.0,
    l2_penalty: float = 0.0,
    progress: Callable[[int], object] | None = None,
    loop: str = "python",
) -> TrainResult:
    """Logistic regression by gradient descent on X (n, m), Y (1, m), with any backend.

    loop is "python" (a Python for loop over the steps) or "compiled" (the backend's compiled
    loop: numba, JAX and torch backends have one; others raise a ValueError naming them).
    Starts from w0 (zeros of shape (n, 1) by default) and b0; the defaults of learning_rate and
    iterations are the course's. l2_penalty is the course's lambda: it adds
    lambda / (2 m) ||w||^2 to the cost. Inputs are validated once, here, not at every iteration.
    Raises TrainingDiverged (a ValueError) if the cost stops being finite: never NaN weights.
    """
    get_loop(backend, loop)  # an unknown loop, backend or package fails before any work
    if is_dask_array(X) or is_dask_array(Y):
        X, Y = _lazy_inputs(backend, X, Y)
    else:
        X = validate_features(X)
        Y = validate_labels(Y, X.shape[1])
    n = X.shape[0]
    w = np.zeros((n, 1)) if w0 is None else validate_weights(w0, n, name="w0").copy()
    descent = Descent(backend, w, validate_bias(b0, name="b0"), X, Y)
    return descent.run(
        learning_rate=validate_rate("learning_rate", learning_rate),
        iterations=validate_positive_int("iterations", iterations),
        record_every=validate_positive_int("record_every", record_every),
        l2_penalty=validate_rate("l2_penalty", l2_penalty, allow_zero=True),
        progress=progress,
        loop=loop,
    )


def _lazy_inputs(backend: str, X: Any, Y: Any) -> tuple[Any, Any]:
    """Dask X and Y for a Dask backend, shapes and dtypes checked; their values are checked
    where the backend puts them on the cluster (`_dask.to_native`), before the first step."""
    from loopvec.logistic import require_dask_backend  # noqa: PLC0415 (logistic imports us)

    require_dask_backend(backend)
    return validate_lazy_data(X, Y)


def predict(w: Any, b: Any, X: Any) -> NDArray[np.int64]:
    """Labels (1, m) of 0 and 1: 1 where sigmoid(w.T X + b) > 0.5, as the course predicts."""
    X = validate_features(X)
    w, b = validate_weights(w, X.shape[0]), validate_bias(b)
    return (sigmoid(w.T @ X + b) > 0.5).astype(np.int64)


def accuracy(w: Any, b: Any, X: Any, Y: Any) -> float:
    """Share of the m examples whose predicted label is their label (Y > 0.5, as predict)."""
    X = validate_features(X)
    labels = validate_labels(Y, X.shape[1]) > 0.5
    return float(np.mean(predict(w, b, X) == labels))
