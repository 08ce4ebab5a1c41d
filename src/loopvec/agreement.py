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

No relative bound covers flushing: some backends (XLA's CPU code) read subnormal inputs and write
subnormal results as 0, so a label y = 2.2e-309 read as 0 moves dw_j by |x_ji| y / m. A flush
changes a value by less than tiny = 2.2e-308 (the reference's own rounding of a subnormal result,
2^-1075 at most, fits in the same allowance) and moves the result by tiny times that value's
coefficient in it. Per example, with g_i = sum_k (|w_k| + |x_ki|) + 2n + 2:

    z_i  = w.T x_i + b   off by < tiny g_i         w_k costs |x_ki|, x_ki costs |w_k|, b 1, and
                                                   the n products, n sums and z itself 1 each
    a_i  = sigmoid(z_i)  off by < tiny g_i / 4     the slope a (1 - a) is at most 1/4
                         + 2 tiny                  exp(-|z_i|) and a_i flushed
    dz_i = a_i - y_i     + 2 tiny                  y_i and dz_i flushed

Backends scale by 1/m at different points (jax_grad's autodiff of the mean forms a_i/m - y_i/m
before summing), and a flush after the scaling costs m times more. So only the error carried
through the sigmoid is divided by m; every later flush is counted in full:

    f_i       = g_i / (4 m) + 4                        dz_i's flush error, in units of tiny
    atol_dw_j = tiny (sum_i (|x_ji| f_i + |y_i| + 3) + 1)
    atol_db   = tiny (sum_i (f_i + 1) + 1)

(x_ji flushed costs |dz_i| <= 1 + |y_i|, the product and its sum 1 each, the final result 1.)
For data of ordinary size it is below 1e-300 times the summed magnitudes (m up to 1e6), so it
matters only for gradients near the underflow threshold (a = sigmoid(-700) = 1e-304), and there
a real error, such as a computed as 0, still exceeds it.
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
#: The smallest normal float64: subnormals may be flushed to zero (see the module docstring).
_TINY = float(np.finfo(np.float64).tiny)
#: Bytes of |X| per block when summing magnitudes, so |X| is never held whole (X may fill RAM).
_BLOCK_BYTES = 64 * 2**20


class DisagreementError(AssertionError):
    """A backend's gradient differs from the reference beyond the tolerance."""


def _sums(problem: Problem) -> tuple[Array, float, Array, float, Array, float]:
    """(dw, db, scale of dw, scale of db, atol of dw, atol of db) in float64, in one pass over X
    by blocks of examples: the lesson's formula summed block by block, on the problem's values
    exactly (float32 inputs too), with no float64 copy of X held whole (X may fill the memory)."""
    n, m = problem.n, problem.m
    w, b = problem.w.astype(np.float64), float(problem.b)
    # One product gives |w|.T |x_i| (the rounding scale) and sum_k |x_ki| (the flush count g_i).
    abs_w_and_ones = np.vstack([np.abs(w).T, np.ones((1, n))])
    g_of_w = float(np.abs(w).sum()) + 2 * n + 2
    dw, scale_dw, flush_dw = np.zeros((n, 1)), np.zeros((n, 1)), np.zeros((n, 1))
    db = scale_db = flush_db = 0.0
    block = max(1, _BLOCK_BYTES // (8 * n))
    for start in range(0, m, block):
        X_block = problem.X[:, start : start + block].astype(np.float64)
        Y_block = problem.Y[:, start : start + block].astype(np.float64)
        A = sigmoid(w.T @ X_block + b)
        dZ = A - Y_block
        dw += X_block @ dZ.T
        db += float(dZ.sum())
        abs_X, abs_Y = np.abs(X_block), np.abs(Y_block)
        magnitude, abs_x_sum = abs_w_and_ones @ abs_X
        scale = A + abs_Y + A * (1.0 - A) * (magnitude + abs(b))
        flush = (abs_x_sum + g_of_w) / (4 * m) + 4  # f_i, in units of tiny
        summed = abs_X @ np.vstack([scale, flush]).T  # (n, 2): both sums in one read of |X|
        scale_dw += summed[:, :1]
        flush_dw += summed[:, 1:] + float((abs_Y + 3).sum())
        scale_db += float(scale.sum())
        flush_db += float((flush + 1).sum())
    return (
        dw / m,
        db / m,
        scale_dw / m,
        scale_db / m,
        _TINY * (flush_dw + 1),
        _TINY * (flush_db + 1),
    )


def error_scale(problem: Problem) -> tuple[Array, float]:
    """(scale of dw, shape (n, 1); scale of db): the magnitudes the gradient sums, over m."""
    _, _, scale_dw, scale_db, _, _ = _sums(problem)
    return scale_dw, scale_db


@dataclass(frozen=True)
class Reference:
    """The reference gradient of one problem, its error scale and its allowance for flushed
    subnormals (atol_dw (n, 1), atol_db), computed once, checked often."""

    dw: Array
    db: float
    scale_dw: Array
    scale_db: float
    atol_dw: Array
    atol_db: float

    @classmethod
    def of(cls, problem: Problem) -> Reference:
        """The float64 gradient of `problem`'s values (of float32 inputs, exactly) and its
        error bounds, in one blocked pass that shares no code with any backend."""
        return cls(*_sums(problem))

    def check(self, name: str, got: tuple[Array, float], *, rtol: float = RTOL_FLOAT64) -> None:
        """Raise DisagreementError unless `got` = (dw, db) is this reference gradient."""
        dw, db = got
        if not isinstance(dw, np.ndarray) or dw.shape != self.dw.shape:
            shape = getattr(dw, "shape", type(dw).__name__)
            raise DisagreementError(
                f"{name}: dw must be an array of shape {self.dw.shape}; got {shape}"
            )
        # `<=` rather than a ratio: a zero scale then allows only the flush allowance, NaN nothing.
        dw_ok = np.abs(dw - self.dw) <= rtol * self.scale_dw + self.atol_dw
        db_ok = abs(db - self.db) <= rtol * self.scale_db + self.atol_db
        if not (np.all(dw_ok) and db_ok):
            j = int(np.argmin(dw_ok))  # the first bad component, or 0 if only db is off
            raise DisagreementError(
                f"{name} disagrees with the reference gradient beyond rtol={rtol:g} (relative to "
                f"the summed magnitudes, plus flushed subnormals): dw[{j}] = {dw[j, 0]!r} vs "
                f"{self.dw[j, 0]!r}, db = {db!r} vs {self.db!r}"
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
