"""The loss is the mean cross-entropy, stable for any finite z; the gradient is its gradient."""

from __future__ import annotations

import exact
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose

import loopvec


def test_worked_example_cost() -> None:
    """The course prints 5.80154532; 60-digit arithmetic gives the rest of the digits."""
    p = loopvec.worked_example()
    cost = loopvec.loss(p.w, p.b, p.X, p.Y)
    assert cost == pytest.approx(5.80154532, rel=1e-9)
    assert cost == pytest.approx(float(exact.cost(p.w, p.b, p.X, p.Y)), rel=1e-15)


@settings(max_examples=30, deadline=None)
@given(m=st.integers(1, 50), n=st.integers(1, 6), seed=st.integers(0, 2**32 - 1))
def test_loss_is_the_exact_mean_cross_entropy(m: int, n: int, seed: int) -> None:
    p = loopvec.make_problem(m, n, seed=seed)
    expected = float(exact.cost(p.w, p.b, p.X, p.Y))
    assert loopvec.loss(p.w, p.b, p.X, p.Y) == pytest.approx(expected, rel=1e-13)


@pytest.mark.parametrize(
    ("z", "y", "expected"),
    [
        (1e6, 0.0, 1e6),  # -log(1 - a) = z for large z
        (-1e6, 1.0, 1e6),  # -log(a) = -z for very negative z
        (1e6, 1.0, 0.0),
        (-1e6, 0.0, 0.0),
        (1000.0, 0.0, 1000.0),
        (0.0, 1.0, np.log(2.0)),
    ],
)
def test_loss_is_finite_and_exact_at_extreme_z(z: float, y: float, expected: float) -> None:
    got = loopvec.loss([[z]], 0.0, [[1.0]], [[y]])
    assert_allclose(got, expected, rtol=1e-15, atol=1e-300)


@pytest.mark.parametrize("seed", range(5))
def test_gradient_is_the_finite_difference_gradient_of_the_loss(seed: int) -> None:
    p = loopvec.make_problem(40, 6, seed=seed)
    w = p.w + np.random.default_rng(seed).standard_normal(p.w.shape)  # away from w ~ 0
    step = 1e-6
    expected_dw = np.empty_like(w)
    for j in range(w.shape[0]):
        e = np.zeros_like(w)
        e[j] = step
        expected_dw[j] = (
            loopvec.loss(w + e, p.b, p.X, p.Y) - loopvec.loss(w - e, p.b, p.X, p.Y)
        ) / (2 * step)
    expected_db = (
        loopvec.loss(w, p.b + step, p.X, p.Y) - loopvec.loss(w, p.b - step, p.X, p.Y)
    ) / (2 * step)
    dw, db = loopvec.gradient(w, p.b, p.X, p.Y)
    # Central differences are accurate to O(step^2) ~ 1e-12 plus rounding eps * J / step ~ 1e-10.
    assert_allclose(dw, expected_dw, rtol=1e-6, atol=1e-8)
    assert_allclose(db, expected_db, rtol=1e-6, atol=1e-8)
