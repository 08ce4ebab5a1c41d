"""The agreement check itself: it must pass the reference and catch what is wrong."""

from __future__ import annotations

import exact
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import loopvec
from loopvec import Problem
from loopvec.agreement import DisagreementError, Reference, check_gradient, error_scale
from loopvec.backends import get_kernel


@settings(max_examples=40, deadline=None)
@given(m=st.integers(1, 60), n=st.integers(1, 9), seed=st.integers(0, 2**32 - 1))
def test_the_reference_is_the_exact_gradient(m: int, n: int, seed: int) -> None:
    p = loopvec.make_problem(m, n, seed=seed)
    reference = Reference.of(p)
    exact.gradient(p.w, p.b, p.X, p.Y).check((reference.dw, reference.db), rtol=1e-14)


def test_the_reference_sums_float32_values_exactly_in_float64() -> None:
    p = loopvec.make_problem(40, 5, seed=7).astype("float32")
    reference = Reference.of(p)
    assert reference.dw.dtype == np.float64
    exact.gradient(p.w, p.b, p.X, p.Y).check((reference.dw, reference.db), rtol=1e-14)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda dw, db: (dw * (1 + 1e-8), db), "disagrees"),
        (lambda dw, db: (dw, db + 1e-6), "disagrees"),
        (lambda dw, db: (np.full_like(dw, np.nan), db), "disagrees"),
        (lambda dw, db: (dw, float("nan")), "disagrees"),
        (lambda dw, db: (dw.ravel(), db), r"shape \(8, 1\)"),
        (lambda dw, db: (dw.T, db), r"shape \(8, 1\)"),
    ],
)
def test_catches_a_wrong_gradient(change, message: str) -> None:
    p = loopvec.make_problem(50, 8)
    wrong = change(*get_kernel("numpy_vectorized")(p.w, p.b, p.X, p.Y))
    with pytest.raises(DisagreementError, match=message):
        check_gradient("broken", wrong, p)


def test_scale_is_the_summed_magnitude() -> None:
    # z = 0 everywhere (w = 0, b = 0): a = 1/2, a (1 - a) = 1/4, so scale_i = 1/2 + |y_i|.
    X = np.array([[1.0, -2.0], [3.0, 0.0]])
    Y = np.array([[1.0, 0.0]])
    scale_dw, scale_db = error_scale(Problem(np.zeros((2, 1)), 0.0, X, Y))
    np.testing.assert_allclose(scale_dw, [[(1 * 1.5 + 2 * 0.5) / 2], [(3 * 1.5) / 2]])
    np.testing.assert_allclose(scale_db, (1.5 + 0.5) / 2)
