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
still allows no more than rtol of the magnitude of what was summed. One absolute allowance is added:
the smallest normal float64 (2.2e-308), because some backends (XLA's CPU code) flush subnormal
results to zero, a difference below anything a float64 gradient can represent in full precision.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from loopvec.problem import Problem
from loopvec.sigmoid import sigmoid
from loopvec.training import TrainResult

Array = NDArray[np.float64]

#: The backend the others are compared with in speedups and in training (`check_training`);
#: gradients are checked against `Reference`, the same formula summed in float64 by blocks.
REFERENCE = "numpy_vectorized"
#: float64 backends must agree with the reference to this (see the module docstring).
RTOL_FLOAT64 = 1e-10
#: Computing from float32 inputs, against the float64 reference on the same (float32) values:
#: float32 rounding is 6e-8 per operation; measured errors stay below 3e-8 up to m = 1e6.
RTOL_FLOAT32 = 1e-5
RTOL = {"float64": RTOL_FLOAT64, "float32": RTOL_FLOAT32}
#: Subnormal results may be flushed to zero (FTZ/DAZ); see the module docstring.
_FLUSH_TO_ZERO_ATOL = float(np.finfo(np.float64).tiny)
#: Bytes of |X| per block when summing magnitudes, so |X| is never held whole (X may fill RAM).
_BLOCK_BYTES = 64 * 2**20


class DisagreementError(AssertionError):
    """A backend's gradient differs from the reference beyond the tolerance."""


def _sums(problem: Problem) -> tuple[Array, float, Array, float]:
    """(dw, db, scale of dw, scale of db) in float64, in one pass over X by blocks of examples:
    the lesson's formula summed block by block, on the problem's values exactly (float32 inputs
    too), with no float64 copy of X held whole (X may fill the memory)."""
    w, b = problem.w.astype(np.float64), float(problem.b)
    abs_w = np.abs(w)
    dw, scale_dw = np.zeros((problem.n, 1)), np.zeros((problem.n, 1))
    db = scale_db = 0.0
    block = max(1, _BLOCK_BYTES // (8 * problem.n))
    for start in range(0, problem.m, block):
        X_block = problem.X[:, start : start + block].astype(np.float64)
        Y_block = problem.Y[:, start : start + block].astype(np.float64)
        A = sigmoid(w.T @ X_block + b)
        dZ = A - Y_block
        dw += X_block @ dZ.T
        db += float(dZ.sum())
        abs_X = np.abs(X_block)
        scale = A + np.abs(Y_block) + A * (1.0 - A) * (abs_w.T @ abs_X + abs(b))
        scale_dw += abs_X @ scale.T
        scale_db += float(scale.sum())
    m = problem.m
    return dw / m, db / m, scale_dw / m, scale_db / m


def error_scale(problem: Problem) -> tuple[Array, float]:
    """(scale of dw, shape (n, 1); scale of db): the magnitudes the gradient sums, over m."""
    _, _, scale_dw, scale_db = _sums(problem)
    return scale_dw, scale_db


@dataclass(frozen=True)
class Reference:
    """The reference gradient of one problem and its error scale, computed once, checked often."""

    dw: Array
    db: float
    scale_dw: Array
    scale_db: float

    @classmethod
    def of(cls, problem: Problem) -> Reference:
        """The float64 gradient of `problem`'s values (of float32 inputs, exactly) and its
        error scale, in one blocked pass that shares no code with any backend."""
        return cls(*_sums(problem))

    def check(self, name: str, got: tuple[Array, float], *, rtol: float = RTOL_FLOAT64) -> None:
        """Raise DisagreementError unless `got` = (dw, db) is this reference gradient."""
        dw, db = got
        if not isinstance(dw, np.ndarray) or dw.shape != self.dw.shape:
            shape = getattr(dw, "shape", type(dw).__name__)
            raise DisagreementError(
                f"{name}: dw must be an array of shape {self.dw.shape}; got {shape}"
            )
        # `<=` rather than a ratio: a zero scale then demands exact equality, and NaN never passes.
        dw_ok = np.abs(dw - self.dw) <= rtol * self.scale_dw + _FLUSH_TO_ZERO_ATOL
        db_ok = abs(db - self.db) <= rtol * self.scale_db + _FLUSH_TO_ZERO_ATOL
        if not (np.all(dw_ok) and db_ok):
            j = int(np.argmin(dw_ok))  # the first bad component, or 0 if only db is off
            raise DisagreementError(
                f"{name} disagrees with the reference gradient beyond rtol={rtol:g} (relative to "
                f"the summed magnitudes): dw[{j}] = {dw[j, 0]!r} vs {self.dw[j, 0]!r}, "
                f"db = {db!r} vs {self.db!r}"
            )


def check_gradient(
    name: str, got: tuple[Array, float], problem: Problem, *, rtol: float = RTOL_FLOAT64
) -> None:
    """Raise DisagreementError unless `got` = (dw, db) is the reference gradient on `problem`."""
    Reference.of(problem).check(name, got, rtol=rtol)


#: Training runs (1000 steps) must learn the reference run's w, b and costs to this. Rounding
#: differences of 1e-16 per step stay near 1e-14 (measured), far below it; a component near zero
#: is held to that share of the largest |w| instead (a plain rtol fails on cancellation).
RTOL_TRAINING = 1e-9


def check_training(name: str, got: TrainResult, want: TrainResult) -> None:
    """Raise DisagreementError unless `got` learned `want`'s model and cost curve."""
    scale = float(np.max(np.abs(want.w), initial=abs(want.b)))
    for part, mine, theirs in (
        ("w", got.w, want.w),
        ("b", got.b, want.b),
        ("costs", got.costs, want.costs),
        ("final cost", got.final_cost, want.final_cost),
    ):
        atol = RTOL_TRAINING * scale if part in {"w", "b"} else 0.0
        try:
            np.testing.assert_allclose(mine, theirs, rtol=RTOL_TRAINING, atol=atol)
        except AssertionError as error:
            raise DisagreementError(
                f"{name} learned a different {part} than {want.backend}: {error}"
            ) from None
