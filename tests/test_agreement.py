"""The agreement check itself: it must pass the reference and catch what is wrong."""

from __future__ import annotations

import exact
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import loopvec
from loopvec import Problem
from loopvec.agreement import (
    RTOL_FLOAT64,
    DisagreementError,
    Reference,
    check_gradient,
    error_scale,
)
from loopvec.backends import call, get_kernel

TINY = float(np.finfo(np.float64).tiny)


def subnormal_label() -> Problem:
    """Drawn by hypothesis for test_backends.py: z = 14 x -50 = -700, a = 9.9e-305, and a
    subnormal label that XLA flushes to 0, moving dw by 50 x 2.2e-309 = 1.1e-307."""
    return Problem(np.array([[14.0]]), 0.0, np.array([[-50.0]]), np.array([[2.2e-309]]))


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


def test_the_flush_allowance_is_the_derived_bound() -> None:
    # g = |w| + |x| + 2n + 2 = 68 and f = g / (4m) + 4 = 21 (module docstring of loopvec.agreement);
    # atol_dw = tiny (|x| f + |y| + 3 + 1), atol_db = tiny (f + 1 + 1).
    p = subnormal_label()
    reference = Reference.of(p)
    np.testing.assert_allclose(reference.atol_dw, [[(50 * 21 + 4) * TINY]], rtol=1e-15)
    np.testing.assert_allclose(reference.atol_db, 23 * TINY, rtol=1e-15)
    want = exact.gradient(p.w, p.b, p.X, p.Y)
    np.testing.assert_allclose([float(v) for v in want.atol_dw], [(50 * 21 + 4) * TINY])
    np.testing.assert_allclose(float(want.atol_db), 23 * TINY)


def test_the_flush_allowance_is_negligible_for_ordinary_data() -> None:
    reference = Reference.of(loopvec.make_problem(2000, 10, seed=5))
    assert np.all(reference.atol_dw <= 1e-300 * reference.scale_dw)
    assert reference.atol_db <= 1e-300 * reference.scale_db


@pytest.mark.parametrize(("part", "off"), [("dw", 1), ("dw", -1), ("db", 1), ("db", -1)])
def test_a_flushed_label_passes_and_more_fails(part: str, off: int) -> None:
    p = subnormal_label()
    a = float(exact.sigmoid(-700.0))
    flushed = (np.array([[-50.0 * a]]), a)  # the gradient with y read as 0, by hand
    check_gradient("flushed", flushed, p)
    exact.gradient(p.w, p.b, p.X, p.Y).check(flushed, rtol=RTOL_FLOAT64)
    # Off by twice the derived bound (1054 tiny for dw, 23 tiny for db): beyond it either way.
    dw, db = flushed
    wrong = (dw + off * 2108 * TINY, db) if part == "dw" else (dw, db + off * 46 * TINY)
    with pytest.raises(DisagreementError, match="disagrees"):
        check_gradient("broken", wrong, p)
    with pytest.raises(AssertionError):
        exact.gradient(p.w, p.b, p.X, p.Y).check(wrong, rtol=RTOL_FLOAT64)


def test_catches_a_sigmoid_that_underflows_where_the_allowance_is_largest() -> None:
    # a = 9.9e-305 computed as 0 (as float32 would): dw off by 5e-303, 200 times its allowance.
    p = subnormal_label()
    wrong = (p.X @ (0.0 - p.Y).T, float(0.0 - p.Y[0, 0]))
    with pytest.raises(DisagreementError, match="disagrees"):
        check_gradient("a = 0", wrong, p)


@pytest.mark.parametrize("backend", ["jax_formula", "jax_grad"])
def test_xla_flushing_a_subnormal_label_agrees(backend: str) -> None:
    if backend not in loopvec.available_backends():
        pytest.skip(f"backend {backend} cannot run here: jax does not import")
    p = subnormal_label()
    got = call(backend, p.w, p.b, p.X, p.Y)
    check_gradient(backend, got, p)
    exact.gradient(p.w, p.b, p.X, p.Y).check(got, rtol=RTOL_FLOAT64)
