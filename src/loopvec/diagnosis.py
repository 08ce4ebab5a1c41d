"""Which known mistake a wrong gradient shows. Pure: arrays in, words out.

The mistakes people make when they vectorize the lesson's gradient change it in ways that can be
computed: a missing 1/m multiplies by m, dividing by m - 1 by m/(m-1), `Y - A` for `A - Y`
negates dZ, a forgotten bias computes Z without b. Each combination is computed exactly (the
blocked float64 reference with the mistake put in) and the got value is held to it with the
tolerance the reference check uses, scaled alike: dw and db are matched apart, since `db` summed
but `dw` averaged is its own mistake. Shapes are named (`describe_dw`, `describe_db`) because
a (1, n) dw or an (n, m) one says what went wrong before any value is read.

The problems are chosen so that each mistake shows: n != m (X and X.T cannot be confused without
an error), m prime (m, m - 1 and powers of two are far apart), b != 0, labels 0, 1 and fractional,
and for the sigmoid a second problem whose z runs from -1000 to 1000.
"""

from __future__ import annotations

import itertools
import numbers
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from loopvec.agreement import Reference
from loopvec.problem import Problem

#: The checks' problems: n features, m examples (small: a pure-Python double loop answers at
#: once), m prime and n != m.
CHECK_N, CHECK_M = 5, 37
#: z of the large-|z| problem runs over [-LARGE_Z, LARGE_Z]: past 709, where exp(-z) overflows,
#: and past 745, where exp(z) underflows to 0.
LARGE_Z = 1000.0
#: Matching a mistake is looser than the agreement check (1e-10): a mistaken formula is summed in
#: another order than the reference's, and m times the error comes with m times the value.
MATCH_RTOL = 1e-8


def check_problem(seed: int = 27) -> Problem:
    """n = 5 features x m = 37 examples, b = 0.75, z of order one, labels 0, 1 and fractional."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((CHECK_N, CHECK_M))
    w = rng.standard_normal((CHECK_N, 1)) / np.sqrt(CHECK_N)
    Y = (rng.random((1, CHECK_M)) < 0.5).astype(np.float64)
    Y[0, ::6] = [0.25, 0.5, 0.9, 0.1, 0.75, 0.4, 0.6][: len(Y[0, ::6])]
    return Problem(w=w, b=0.75, X=X, Y=Y)


def large_z_problem(seed: int = 28) -> Problem:
    """The same shapes with z = w.T X + b spread evenly over [-1000, 1000], in a shuffled order:
    the last feature row is solved for, so that every z is where it is meant to be."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((CHECK_N, CHECK_M))
    w = rng.standard_normal((CHECK_N, 1))
    w[-1, 0] = 1.0
    b = -0.5
    z = rng.permutation(np.linspace(-LARGE_Z, LARGE_Z, CHECK_M))
    X[-1] = z - b - (w[:-1].T @ X[:-1])[0]
    Y = (rng.random((1, CHECK_M)) < 0.5).astype(np.float64)
    return Problem(w=w, b=b, X=X, Y=Y)


@dataclass(frozen=True)
class Variant:
    """The lesson's formula with mistakes put in: the sign of dZ, what the sum is divided by
    ("m" is right, "1" is none, "m-1" the sample-variance habit), and whether b is in Z."""

    sign: int = 1
    divisor: str = "m"
    bias: bool = True

    @property
    def correct(self) -> bool:
        return self == Variant()

    def factor(self, m: int) -> float:
        """What the variant multiplies the right value by (bias aside)."""
        return self.sign * {"m": 1.0, "1": float(m), "m-1": m / (m - 1)}[self.divisor]


VARIANTS = [
    Variant(sign, divisor, bias)
    for sign, divisor, bias in itertools.product((1, -1), ("m", "1", "m-1"), (True, False))
]


@dataclass(frozen=True)
class Expected:
    """The reference gradient of a problem, and of the same problem with b = 0 (the bias left
    out), each with its error scale: what a variant's dw and db are computed from."""

    with_bias: Reference
    without_bias: Reference
    m: int

    @classmethod
    def of(cls, problem: Problem) -> Expected:
        unbiased = Problem(problem.w, 0.0, problem.X, problem.Y)
        return cls(Reference.of(problem), Reference.of(unbiased), problem.m)

    def dw(self, variant: Variant) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """(dw under `variant`, its error scale)."""
        ref = self.with_bias if variant.bias else self.without_bias
        factor = variant.factor(self.m)
        return factor * ref.dw, abs(factor) * (ref.scale_dw + ref.atol_dw)

    def db(self, variant: Variant) -> tuple[float, float]:
        ref = self.with_bias if variant.bias else self.without_bias
        factor = variant.factor(self.m)
        return factor * ref.db, abs(factor) * (ref.scale_db + ref.atol_db)


def matching(
    got: NDArray[np.float64] | float, candidates: list[tuple[Any, Any]], rtol: float
) -> list[int]:
    """Indices of the candidates (value, scale) that `got` equals within rtol of scale."""
    return [
        k
        for k, (value, scale) in enumerate(candidates)
        if np.all(np.abs(np.asarray(got) - value) <= rtol * scale)
    ]


def diagnose(
    dw: NDArray[np.float64], db: float, expected: Expected, rtol: float = MATCH_RTOL
) -> list[str]:
    """The known mistakes (dw, db) shows, one sentence each; empty if it shows none known.

    dw is (n, 1) float64 here (reshaped by the caller where it had n entries); rtol is the
    agreement check's: a part within it of the exact value is right, one only within
    MATCH_RTOL (or rtol, if looser) of a variant is that variant."""
    dw_match = _match(dw, [expected.dw(v) for v in VARIANTS], rtol)
    db_match = _match(db, [expected.db(v) for v in VARIANTS], rtol)
    if dw_match is None and db_match is None:
        return []
    return _words(dw_match, db_match, expected.m, rtol)


#: A part of the gradient and how it matched: (its variant, True if only to MATCH_RTOL).
Match = tuple[Variant, bool]


def _match(got: Any, candidates: list[tuple[Any, Any]], rtol: float) -> Match | None:
    if matching(got, candidates[:1], rtol):  # VARIANTS[0] is the lesson's formula
        return VARIANTS[0], False
    loose = matching(got, candidates, max(rtol, MATCH_RTOL))
    return (VARIANTS[loose[0]], True) if loose else None


def _words(dw_match: Match | None, db_match: Match | None, m: int, rtol: float) -> list[str]:
    """Sentences for the mistakes of dw's and db's matches (None: matched no variant)."""
    dw, db = (match[0] if match else None for match in (dw_match, db_match))
    words = []
    parts = [(name, v) for name, v in (("dw", dw), ("db", db)) if v is not None]
    if any(v.sign < 0 for _, v in parts):
        which = " and ".join(name for name, v in parts if v.sign < 0)
        words.append(
            f"the sign of dZ: {which} {'are' if ' and ' in which else 'is'} negated "
            "(dZ = Y - A where it is A - Y)"
        )
    divisors = {name: v.divisor for name, v in parts}
    if divisors.get("dw") == "1" and divisors.get("db") == "1":
        words.append(f"no 1/m: dw and db are sums, m = {m} times the mean (divide both by m)")
    elif divisors.get("dw") == "1":
        words.append(f"dw is not divided by m: it is m = {m} times too large")
    elif divisors.get("db") == "1":
        words.append(f"db is a sum, np.sum(dZ), not the mean: m = {m} times too large")
    if any(d == "m-1" for d in divisors.values()):
        which = " and ".join(name for name, d in divisors.items() if d == "m-1")
        words.append(
            f"{which} divided by m - 1 instead of m: off by a factor m/(m-1) = {m / (m - 1):.4g}"
        )
    if any(not v.bias for _, v in parts):
        words.append("the bias is ignored: Z = w.T X, where it is Z = w.T X + b")
    for name, match in (("dw", dw_match), ("db", db_match)):
        if match is None:
            words.append(f"{name} is wrong in a way no known mistake explains (see below)")
        elif match[0].correct and match[1]:
            words.append(
                f"{name} is close to the exact value but beyond the tolerance {rtol:g}: computed "
                "in float32 somewhere, or in a way that loses digits?"
            )
    return words


def first_disagreement(
    dw: NDArray[np.float64], db: float, reference: Reference, rtol: float
) -> str:
    """'dw[2] = 0.1 where the exact value is 0.3 (2 of 5 entries off)', then 'db is right' (a
    line each): the first entry beyond the tolerance, with expected and got."""
    bad = np.abs(dw - reference.dw) > rtol * reference.scale_dw + reference.atol_dw
    words = []
    if np.any(bad) or np.any(np.isnan(dw)):
        bad |= np.isnan(dw)
        j = int(np.argmax(bad[:, 0]))
        words.append(
            f"dw[{j}] = {float(dw[j, 0])!r} where the exact value is {float(reference.dw[j, 0])!r} "
            f"({int(bad.sum())} of {bad.size} entries off)"
        )
    else:
        words.append("dw is right")
    if not abs(db - reference.db) <= rtol * reference.scale_db + reference.atol_db:
        words.append(f"db = {db!r} where the exact value is {float(reference.db)!r}")
    else:
        words.append("db is right")
    return "\n".join(words)


def describe_dw(dw: Any, n: int, m: int) -> str | None:
    """Why `dw` is not an (n, 1) float array, in the words of the mistake; None if it is one."""
    if not isinstance(dw, np.ndarray):
        return f"dw is a {type(dw).__name__}, not a numpy array of shape (n, 1) = ({n}, 1)"
    if dw.shape == (n, 1):
        if np.issubdtype(dw.dtype, np.integer):
            return f"dw has dtype {dw.dtype}, not a float dtype (an integer gradient is rounded)"
        if not np.issubdtype(dw.dtype, np.floating):
            return f"dw has dtype {dw.dtype}, not a real float dtype"
        return None
    known = {
        (1, n): f"dw has shape (1, n) = (1, {n}), a row: it is the transpose of the column "
        f"(n, 1) = ({n}, 1) (use X @ dZ.T, or np.dot(X, dZ.T))",
        (n,): f"dw has shape (n,) = ({n},), a flat vector: keep it a column (n, 1) = ({n}, 1)",
        (n, m): f"dw has shape (n, m) = ({n}, {m}): a product broadcast where it should be "
        "summed over the examples (use the matrix product X @ dZ.T, not X * dZ)",
        (m, 1): f"dw has shape (m, 1) = ({m}, 1), one entry per example: X is used transposed "
        "(X is (n, m), features x examples)",
    }
    return known.get(dw.shape, f"dw has shape {dw.shape}, not (n, 1) = ({n}, 1)")


def describe_db(db: Any) -> str | None:
    """Why `db` is not a real number; None if it is one (a Python or numpy scalar)."""
    if isinstance(db, bool | np.bool_):
        return f"db is a bool ({db}), not a number"
    if isinstance(db, numbers.Real):
        return None
    if isinstance(db, np.ndarray):
        if db.ndim == 0 and np.issubdtype(db.dtype, np.floating):
            return None
        if db.size == 1:
            return (
                f"db is an array of shape {db.shape} holding one number, not a number: "
                "np.sum(dZ) / m gives the number itself (or use float(...))"
            )
        return f"db is an array of shape {db.shape}, not a number: sum dZ over all examples"
    return f"db is a {type(db).__name__}, not a real number"


def as_column(dw: Any, n: int) -> NDArray[np.float64] | None:
    """dw as an (n, 1) float64 column if it has n real entries (a row or a flat vector too),
    so that its values can be checked whatever its shape; None if it cannot be one."""
    values = _real(dw)
    return values.reshape(n, 1) if values is not None and values.size == n else None


def as_number(db: Any) -> float | None:
    """db as a float if it is one real number (a 1-element array too); None otherwise."""
    values = _real(db)
    return float(values.reshape(())) if values is not None and values.size == 1 else None


def _real(value: Any) -> NDArray[np.float64] | None:
    """`value` as a float64 array if it holds real numbers (of any array library); else None."""
    try:
        values = np.asarray(value)
    except Exception:  # a tensor that needs .detach(), an object numpy cannot read
        return None
    if values.dtype == object or not (
        np.issubdtype(values.dtype, np.floating) or np.issubdtype(values.dtype, np.integer)
    ):
        return None  # complex, str, bool and objects are not read as numbers
    return values.astype(np.float64)
