"""Is a backend's gradient the reference's gradient? The yardstick every backend is held to.

A plain relative tolerance fails on components that are near zero by cancellation: dw_j sums m
terms x_ji (a_i - y_i) of both signs, and any two correct summation orders differ by about
eps x sum_i |x_ji| (|a_i| + |y_i|). So the tolerance is relative to that sum of magnitudes, the
standard error bound of a dot product, with a term for the rounding of z = w.T x + b carried
through the sigmoid (whose slope is a (1 - a)):

    scale_i  = |a_i| + |y_i| + a_i (1 - a_i) (|w|.T |x_i| + |b|)        (one per example)
    |dw_j - dw_ref_j| <= rtol * sum_i |x_ji| scale_i / m
    |db - db_ref|     <= rtol * sum_i scale_i / m

Where dw_j is not small this is an ordinary relative tolerance; where it cancels to near zero it
still allows no more than rtol of the magnitude of what was summed.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from loopvec.backends import get_kernel
from loopvec.problem import Problem
from loopvec.sigmoid import sigmoid

Array = NDArray[np.float64]

#: The backend the others are checked against.
REFERENCE = "numpy_vectorized"
#: float64 backends must agree with the reference to this (see the module docstring).
RTOL_FLOAT64 = 1e-10


class DisagreementError(AssertionError):
    """A backend's gradient differs from the reference beyond the tolerance."""


def error_scale(problem: Problem) -> tuple[Array, float]:
    """(scale of dw, shape (n, 1); scale of db): the magnitudes the gradient sums, over m."""
    w, b, X, Y = problem.w, problem.b, problem.X, problem.Y
    abs_X = np.abs(X)
    A = sigmoid(w.T @ X + b)
    scale = A + np.abs(Y) + A * (1.0 - A) * (np.abs(w).T @ abs_X + abs(b))
    return (abs_X @ scale.T) / problem.m, float(scale.sum()) / problem.m


def check_gradient(
    name: str, got: tuple[Array, float], problem: Problem, *, rtol: float = RTOL_FLOAT64
) -> None:
    """Raise DisagreementError unless `got` = (dw, db) is the reference gradient on `problem`."""
    dw, db = got
    if not isinstance(dw, np.ndarray) or dw.shape != (problem.n, 1):
        shape = getattr(dw, "shape", type(dw).__name__)
        raise DisagreementError(
            f"{name}: dw must be an array of shape ({problem.n}, 1); got {shape}"
        )
    expected_dw, expected_db = get_kernel(REFERENCE)(problem.w, problem.b, problem.X, problem.Y)
    scale_dw, scale_db = error_scale(problem)
    # `<=` rather than a ratio: a zero scale then demands exact equality, and NaN never passes.
    dw_ok = np.abs(dw - expected_dw) <= rtol * scale_dw
    if not (np.all(dw_ok) and abs(db - expected_db) <= rtol * scale_db):
        j = int(np.argmin(dw_ok))  # the first bad component, or 0 if only db is off
        raise DisagreementError(
            f"{name} disagrees with {REFERENCE} beyond rtol={rtol:g} (relative to the summed "
            f"magnitudes): dw[{j}] = {dw[j, 0]!r} vs {expected_dw[j, 0]!r}, "
            f"db = {db!r} vs {expected_db!r}"
        )


def checked_call(name: str, problem: Problem, *, rtol: float = RTOL_FLOAT64) -> tuple[Array, float]:
    """Run backend `name`'s kernel once on `problem` and check it; a wrong backend never returns."""
    got = get_kernel(name)(problem.w, problem.b, problem.X, problem.Y)
    check_gradient(name, got, problem, rtol=rtol)
    return got
