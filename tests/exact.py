"""Expected values by exact arithmetic: Python's decimal at 60 digits, rounded to float64 once.

Nothing here uses loopvec or numpy's arithmetic, so a test that compares with these can fail
whatever the code under test does. A float64 converts to Decimal exactly and a Decimal to the
nearest float64 (subnormals included), so `float(exp(x))` is exp(x) correctly rounded.
"""

from __future__ import annotations

import math
from contextlib import AbstractContextManager
from dataclasses import dataclass
from decimal import MAX_EMAX, MIN_EMIN, Context, Decimal, localcontext

import numpy as np
from numpy.typing import NDArray

DIGITS = 60
#: The smallest normal float64, 2.2e-308.
TINY = Decimal(float(np.finfo(np.float64).tiny))


def _context() -> AbstractContextManager[Context]:
    """60 digits and exponents far beyond float64's: exp(-1e308) is a tiny Decimal, not 0."""
    return localcontext(prec=DIGITS, Emax=MAX_EMAX, Emin=MIN_EMIN)


def exp(x: float) -> Decimal:
    with _context():
        return Decimal(float(x)).exp()


def sigmoid(z: float | Decimal) -> Decimal:
    """1 / (1 + e^-z) to 60 digits (as e^z / (1 + e^z) below 0, where e^-z could overflow)."""
    with _context():
        z = Decimal(z) if isinstance(z, Decimal) else Decimal(float(z))
        if z >= 0:
            return 1 / (1 + (-z).exp())
        e = z.exp()
        return e / (1 + e)


def ulps(got: float, exact: Decimal) -> float:
    """|got - exact| in units in the last place of the float64 nearest to `exact`."""
    with _context():
        return float(abs(Decimal(float(got)) - exact) / Decimal(math.ulp(float(exact))))


@dataclass(frozen=True)
class Gradient:
    """dw (n values), db, the magnitudes they sum and the allowance for flushed subnormals (the
    agreement check's error scale and atol)."""

    dw: list[Decimal]
    db: Decimal
    scale_dw: list[Decimal]
    scale_db: Decimal
    atol_dw: list[Decimal]
    atol_db: Decimal

    def check(self, got: tuple[NDArray[np.floating], float], rtol: float) -> None:
        """Assert `got` = (dw (n, 1), db) is this gradient to `rtol` of the summed magnitudes,
        plus the allowance for subnormals flushed to 0 (or, unflushed, held to few digits)."""
        dw, db = got
        tolerance = Decimal(rtol)
        assert np.shape(dw) == (len(self.dw), 1)
        parts = zip(np.ravel(dw), self.dw, self.scale_dw, self.atol_dw, strict=True)
        for j, (value, want, scale, atol) in enumerate(parts):
            error = abs(Decimal(float(value)) - want)
            assert error <= tolerance * scale + atol, f"dw[{j}] = {value!r}, exact {float(want)!r}"
        error = abs(Decimal(float(db)) - self.db)
        assert error <= tolerance * self.scale_db + self.atol_db, (
            f"db = {db!r}, exact {float(self.db)!r}"
        )


def gradient(
    w: NDArray[np.floating], b: float, X: NDArray[np.floating], Y: NDArray[np.floating]
) -> Gradient:
    """The gradient of the mean cross-entropy of X (n, m), Y (1, m), w (n, 1), b, to 60 digits:

    z_i = b + sum_j w_j x_ji;  a_i = sigmoid(z_i);  dz_i = a_i - y_i
    dw_j = sum_i x_ji dz_i / m;  db = sum_i dz_i / m
    scale_i = |a_i| + |y_i| + a_i (1 - a_i) (sum_j |w_j x_ji| + |b|)   (see loopvec.agreement)
    f_i = (sum_k (|w_k| + |x_ki|) + 2n + 2) / (4m) + 4                  (the same)
    atol_dw_j = TINY (sum_i (|x_ji| f_i + |y_i| + 3) + 1);  atol_db = TINY (sum_i (f_i + 1) + 1)
    """
    n, m = X.shape
    rows = [[Decimal(float(v)) for v in X[j]] for j in range(n)]
    weights = [Decimal(float(v)) for v in np.ravel(w)]
    labels = [Decimal(float(v)) for v in np.ravel(Y)]
    bias = Decimal(float(b))
    with _context():
        dw, scale_dw, flush_dw = [Decimal(0)] * n, [Decimal(0)] * n, [Decimal(0)] * n
        db = scale_db = flush_db = Decimal(0)
        for i in range(m):
            z = bias + sum(weights[j] * rows[j][i] for j in range(n))
            a = sigmoid(z)
            dz = a - labels[i]
            magnitude = sum(abs(weights[j] * rows[j][i]) for j in range(n)) + abs(bias)
            scale = abs(a) + abs(labels[i]) + a * (1 - a) * magnitude
            g = sum(abs(weights[j]) + abs(rows[j][i]) for j in range(n)) + 2 * n + 2
            flush = g / (4 * m) + 4
            for j in range(n):
                dw[j] += rows[j][i] * dz
                scale_dw[j] += abs(rows[j][i]) * scale
                flush_dw[j] += abs(rows[j][i]) * flush + abs(labels[i]) + 3
            db += dz
            scale_db += scale
            flush_db += flush + 1
        return Gradient(
            [v / m for v in dw],
            db / m,
            [v / m for v in scale_dw],
            scale_db / m,
            [TINY * (v + 1) for v in flush_dw],
            TINY * (flush_db + 1),
        )


def cost(
    w: NDArray[np.floating],
    b: float,
    X: NDArray[np.floating],
    Y: NDArray[np.floating],
    l2_penalty: float = 0.0,
) -> Decimal:
    """J = -mean(y log a + (1 - y) log(1 - a)) + l2_penalty / (2 m) ||w||^2, to 60 digits."""
    n, m = X.shape
    weights = [Decimal(float(v)) for v in np.ravel(w)]
    with _context():
        total = Decimal(0)
        for i in range(m):
            z = Decimal(float(b)) + sum(weights[j] * Decimal(float(X[j, i])) for j in range(n))
            a, y = sigmoid(z), Decimal(float(Y[0, i]))
            total -= y * a.ln() + (1 - y) * (1 - a).ln()
        penalty = Decimal(float(l2_penalty)) / (2 * m) * sum(v * v for v in weights)
        return total / m + penalty
