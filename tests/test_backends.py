"""Every registered backend computes the reference gradient, on any shape and any finite input."""

from __future__ import annotations

import warnings

import exact
import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from numpy.testing import assert_allclose, assert_array_equal

import loopvec
from loopvec import Problem
from loopvec.agreement import RTOL_FLOAT32, RTOL_FLOAT64, Reference, check_gradient
from loopvec.backends import call

# Shapes from m = n = 1 up to a few hundred; values across magnitudes, exact zeros and repeats.
values = st.floats(min_value=-50, max_value=50, allow_nan=False, allow_subnormal=False)


@st.composite
def problems(draw: st.DrawFn, max_side: int = 40) -> Problem:
    n = draw(st.integers(1, max_side))
    m = draw(st.integers(1, max_side))
    X = draw(arrays(np.float64, (n, m), elements=values))
    w = draw(arrays(np.float64, (n, 1), elements=values))
    Y = draw(arrays(np.float64, (1, m), elements=st.floats(0, 1)))
    b = draw(values)
    return Problem(w=w, b=b, X=X, Y=Y)


@settings(max_examples=60, deadline=None)
@given(problem=problems())
def test_agrees_with_reference_on_drawn_values(backend: str, problem: Problem) -> None:
    got = call(backend, problem.w, problem.b, problem.X, problem.Y)
    check_gradient(backend, got, problem)


@settings(max_examples=20, deadline=None)
@given(problem=problems(max_side=12))
def test_is_the_exact_gradient_on_drawn_values(backend: str, problem: Problem) -> None:
    """Against 60-digit arithmetic (tests/exact.py): no code in common with any backend."""
    got = call(backend, problem.w, problem.b, problem.X, problem.Y)
    exact.gradient(problem.w, problem.b, problem.X, problem.Y).check(got, rtol=RTOL_FLOAT64)


@settings(max_examples=25, deadline=None)
@given(m=st.integers(1, 400), n=st.integers(1, 300), seed=st.integers(0, 2**32 - 1))
@example(m=400, n=300, seed=0).via("the largest shape")
@example(m=1, n=300, seed=1).via("one example")
@example(m=400, n=1, seed=2).via("one feature")
def test_agrees_with_reference_on_large_random_problems(
    backend: str, m: int, n: int, seed: int
) -> None:
    p = loopvec.make_problem(m, n, seed=seed)
    check_gradient(backend, call(backend, p.w, p.b, p.X, p.Y), p)


def test_worked_example(backend: str) -> None:
    p = loopvec.worked_example()
    dw, db = loopvec.gradient(p.w, p.b, p.X, p.Y, backend=backend)
    assert_allclose(dw, [[0.99845601], [2.39507239]], rtol=1e-8)
    assert_allclose(db, 0.00145557813678, rtol=1e-11)


def test_returns_float64_column_and_python_float(backend: str) -> None:
    p = loopvec.make_problem(7, 3)
    dw, db = loopvec.gradient(p.w, p.b, p.X, p.Y, backend=backend)
    assert dw.dtype == np.float64
    assert dw.shape == (3, 1)
    assert type(db) is float


@pytest.mark.parametrize("z", [-1e6, -1000.0, -745.5, -40.0, 0.0, 40.0, 745.5, 1000.0, 1e6])
def test_extreme_z_is_finite_and_matches_reference(backend: str, z: float) -> None:
    # One feature equal to 1 and w = z put exactly z into the sigmoid, for both labels.
    w, b, X, Y = np.array([[z]]), 0.0, np.ones((1, 2)), np.array([[0.0, 1.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        dw, db = loopvec.gradient(w, b, X, Y, backend=backend)
    a = 1.0 / (1.0 + np.exp(-z)) if z > -700 else 0.0  # exact where exp does not overflow
    assert np.all(np.isfinite(dw))
    assert_allclose(db, (2 * a - 1) / 2, rtol=1e-15)
    check_gradient(backend, (dw, db), Problem(w, b, X, Y))


def test_extreme_values_mixed_in_one_problem(backend: str) -> None:
    X = np.array([[1e6, -1e6, 1e3, -1e3, 0.5], [1.0, 1.0, 1.0, 1.0, 1.0]])
    w, b, Y = np.array([[1.0], [-2.0]]), 3.0, np.array([[1.0, 0.0, 0.0, 1.0, 0.5]])
    got = loopvec.gradient(w, b, X, Y, backend=backend)
    assert np.all(np.isfinite(got[0]))
    check_gradient(backend, got, Problem(w, b, X, Y))


def test_integer_and_float32_inputs_are_computed_in_float64(backend: str) -> None:
    p = loopvec.make_problem(20, 4, seed=3)
    X32, w32 = p.X.astype(np.float32), p.w.astype(np.float32)
    dw, db = loopvec.gradient(w32, np.float32(p.b), X32, p.Y.astype(np.int64), backend=backend)
    expected = loopvec.gradient(
        w32.astype(np.float64), float(np.float32(p.b)), X32.astype(np.float64), p.Y
    )
    assert dw.dtype == np.float64
    assert_allclose(dw, expected[0], rtol=1e-12)
    assert_allclose(db, expected[1], rtol=1e-12)
    dw_int, _ = loopvec.gradient([[1], [2]], 2, [[1, 2, -1], [3, 4, -3]], [[1, 0, 1]])
    assert dw_int.dtype == np.float64


def test_inputs_are_never_modified(backend: str) -> None:
    p = loopvec.make_problem(9, 5, seed=1)
    copies = [p.w.copy(), p.X.copy(), p.Y.copy()]
    loopvec.gradient(p.w, p.b, p.X, p.Y, backend=backend)
    for original, copy in zip([p.w, p.X, p.Y], copies, strict=True):
        assert_array_equal(original, copy)


@pytest.mark.parametrize("layout", ["fortran", "strided"])
def test_any_memory_layout_of_X(backend: str, layout: str) -> None:
    p = loopvec.make_problem(30, 6, seed=2)
    X = np.asfortranarray(p.X) if layout == "fortran" else np.repeat(p.X, 2, axis=1)[:, ::2]
    assert_array_equal(X, p.X)
    got = loopvec.gradient(p.w, p.b, X, p.Y, backend=backend)
    check_gradient(backend, got, p)


def test_float32_on_request_returns_float32_close_to_float64(backend: str) -> None:
    p = loopvec.make_problem(300, 20, seed=4)
    dw, db = loopvec.gradient(p.w, p.b, p.X, p.Y, backend=backend, dtype="float32")
    assert dw.dtype == np.float32
    assert type(db) is float
    same_values = p.astype("float32").astype("float64")  # the float32 inputs, exactly
    Reference.of(same_values).check(backend, (dw.astype(np.float64), db), rtol=RTOL_FLOAT32)
