"""Problems to compute gradients on: seeded synthetic data and the course's worked example."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from loopvec.sigmoid import sigmoid
from loopvec.validation import validate_positive_int


class ExamplesAsColumns:
    """n and m of a set whose X is (n, m): features x examples, the course's layout."""

    X: Any

    @property
    def n(self) -> int:
        return int(self.X.shape[0])

    @property
    def m(self) -> int:
        return int(self.X.shape[1])


@dataclass(frozen=True, eq=False)
class Problem(ExamplesAsColumns):
    """One gradient evaluation's inputs in the course layout.

    X : ndarray of shape (n, m)   features x examples
    Y : ndarray of shape (1, m)   labels in {0, 1}
    w : ndarray of shape (n, 1)   the weights the gradient is taken at
    b : float
    """

    w: NDArray[np.float64]
    b: float
    X: NDArray[np.float64]
    Y: NDArray[np.float64]

    def astype(self, dtype: str) -> Problem:
        """This problem with w, X, Y in `dtype` (copied unless already in it); b stays a float."""
        return Problem(
            w=self.w.astype(dtype, copy=False),
            b=self.b,
            X=self.X.astype(dtype, copy=False),
            Y=self.Y.astype(dtype, copy=False),
        )


def make_problem(m: int, n: int, *, seed: int = 0) -> Problem:
    """A learnable random problem with m examples and n features, the same for the same seed.

    Features are standard normal; labels are drawn as Y ~ Bernoulli(sigmoid(true_w.T X + true_b))
    with true_w ~ N(0, 1/n) so that z stays of order one whatever n is. The gradient is taken at a
    small random w (not at zero, so every term of the sum matters).
    """
    m = validate_positive_int("m", m)
    n = validate_positive_int("n", n)
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, m))
    true_w = rng.standard_normal((n, 1)) / math.sqrt(n)
    true_b = float(rng.standard_normal())
    probability = sigmoid(true_w.T @ X + true_b)
    Y = (rng.random((1, m)) < probability).astype(np.float64)
    w = 0.01 * rng.standard_normal((n, 1))
    return Problem(w=w, b=0.01 * float(rng.standard_normal()), X=X, Y=Y)


def tiny_problem(dtype: str = "float64", layout: str = "C") -> Problem:
    """A 3 x 2 problem in `dtype` and memory `layout` (C or F): what a kernel is first called on
    to compile it (or load it from the cache) before the calls that are timed."""
    p = make_problem(2, 3, seed=1).astype(dtype)
    return Problem(p.w, p.b, np.asfortranarray(p.X), p.Y) if layout == "F" else p


def worked_example() -> Problem:
    """The course's worked example (m = 3, n = 2) whose gradient and cost are known by heart.

    dw = [[0.99845601], [2.39507239]], db = 0.00145557813678, cost = 5.801545319394553.
    """
    return Problem(
        w=np.array([[1.0], [2.0]]),
        b=2.0,
        X=np.array([[1.0, 2.0, -1.0], [3.0, 4.0, -3.2]]),
        Y=np.array([[1.0, 0.0, 1.0]]),
    )
