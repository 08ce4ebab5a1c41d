"""Bad input gets a clear error that names the argument, never a wrong answer."""

from __future__ import annotations

import numpy as np
import pytest

import loopvec

W, B, X, Y = [[1.0], [2.0]], 2.0, [[1.0, 2.0, -1.0], [3.0, 4.0, -3.2]], [[1.0, 0.0, 1.0]]
GOOD = {"w": W, "b": B, "X": X, "Y": Y}

CASES = {
    # argument: (bad value, error type, what the message must say)
    "X 1-D": (
        "X",
        [1.0, 2.0, 3.0],
        ValueError,
        r"X must be a 2-D array .* got a 1-D array of shape \(3,\)",
    ),
    "X 3-D": ("X", np.ones((2, 3, 1)), ValueError, r"X must be a 2-D .* got a 3-D"),
    "X no examples": ("X", np.ones((2, 0)), ValueError, r"X must have at least one .* m = 0"),
    "X no features": ("X", np.ones((0, 3)), ValueError, r"X must have at least one .* n = 0"),
    "X NaN": (
        "X",
        [[1.0, np.nan, 0.0], [1.0, 1.0, 1.0]],
        ValueError,
        r"X must be finite; got nan at index \(0, 1\)",
    ),
    "X inf": (
        "X",
        [[1.0, 2.0, 0.0], [1.0, 1.0, -np.inf]],
        ValueError,
        r"X must be finite; got -inf",
    ),
    "X complex": (
        "X",
        np.ones((2, 3), dtype=complex),
        TypeError,
        r"X must hold real numbers .* complex128",
    ),
    "X object": (
        "X",
        np.array([[1, None, 2], [1, 2, 3]], dtype=object),
        TypeError,
        r"X must hold real numbers .* object",
    ),
    "X strings": (
        "X",
        [["a", "b", "c"], ["d", "e", "f"]],
        TypeError,
        r"X must hold real numbers .* <U1",
    ),
    "X ragged": ("X", [[1.0, 2.0], [1.0]], ValueError, r"X must be a rectangular array"),
    "Y 1-D": (
        "Y",
        [1.0, 0.0, 1.0],
        ValueError,
        r"Y must be a 2-D array of shape \(1, m\) = \(1, 3\)",
    ),
    "Y wrong m": (
        "Y",
        [[1.0, 0.0]],
        ValueError,
        r"Y must have shape \(1, m\) = \(1, 3\) .* dimension 1 must be m = 3, got shape \(1, 2\)",
    ),
    "Y two rows": (
        "Y",
        [[1.0, 0.0, 1.0]] * 2,
        ValueError,
        r"Y .* dimension 0 must be 1, got shape \(2, 3\)",
    ),
    "Y above 1": ("Y", [[1.0, 2.0, 1.0]], ValueError, r"Y must hold values in \[0, 1\]; got 2.0"),
    "Y negative": (
        "Y",
        [[1.0, -0.5, 1.0]],
        ValueError,
        r"Y must hold values in \[0, 1\]; got -0.5",
    ),
    "Y NaN": ("Y", [[1.0, np.nan, 1.0]], ValueError, r"Y must be finite"),
    "Y strings": ("Y", [["1", "0", "1"]], TypeError, r"Y must hold real numbers"),
    "w 1-D": (
        "w",
        [1.0, 2.0],
        ValueError,
        r"w must be a 2-D array of shape \(n, 1\) = \(2, 1\); got a 1-D",
    ),
    "w wrong n": (
        "w",
        [[1.0], [2.0], [3.0]],
        ValueError,
        r"w must have shape \(n, 1\) = \(2, 1\); dimension 0 must be n = 2, .* got shape \(3, 1\)",
    ),
    "w row": (
        "w",
        [[1.0, 2.0]],
        ValueError,
        r"w must have shape \(n, 1\) = \(2, 1\); dimension 0 must be n = 2",
    ),
    "w two columns": (
        "w",
        [[1.0, 1.0], [2.0, 2.0]],
        ValueError,
        r"w .* dimension 1 must be 1, got shape \(2, 2\)",
    ),
    "w inf": ("w", [[np.inf], [2.0]], ValueError, r"w must be finite; got inf at index \(0, 0\)"),
    "w complex": ("w", [[1j], [2.0]], TypeError, r"w must hold real numbers"),
    "b array": (
        "b",
        np.array([1.0, 2.0]),
        TypeError,
        r"b must be a real scalar .* got ndarray of shape \(2,\)",
    ),
    "b list": ("b", [2.0], TypeError, r"b must be a real scalar .* got list"),
    "b complex": ("b", 1 + 2j, TypeError, r"b must be a real scalar .* got complex"),
    "b string": ("b", "2.0", TypeError, r"b must be a real scalar .* got str"),
    "b None": ("b", None, TypeError, r"b must be a real scalar .* got NoneType"),
    "b bool": ("b", True, TypeError, r"b must be a real scalar .* got bool"),
    "b NaN": ("b", float("nan"), ValueError, r"b must be finite; got nan"),
    "b inf": ("b", np.float64(np.inf), ValueError, r"b must be finite; got inf"),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
@pytest.mark.parametrize("front_door", ["gradient", "loss"])
def test_bad_input_raises_naming_the_argument(case: tuple, front_door: str) -> None:
    argument, value, error, message = case
    with pytest.raises(error, match=message):
        getattr(loopvec, front_door)(**{**GOOD, argument: value})


def test_unknown_backend_lists_the_valid_names() -> None:
    with pytest.raises(
        ValueError, match=r"backend must be one of python_loops, .*numba_loops.*; got 'numpy'"
    ):
        loopvec.gradient(W, B, X, Y, backend="numpy")


@pytest.mark.parametrize("b", [2, np.int32(2), np.float32(2.0), np.array(2.0), 2.0])
def test_any_real_scalar_b_is_accepted(b: object) -> None:
    _, db = loopvec.gradient(W, b, X, Y)
    np.testing.assert_allclose(db, 0.00145557813678, rtol=1e-11)


def test_dtype_must_be_float64_or_float32() -> None:
    with pytest.raises(ValueError, match=r"dtype must be one of float64, float32; got 'float16'"):
        loopvec.gradient(W, B, X, Y, dtype="float16")
    for wrong in (np.int64, None, "x"):
        with pytest.raises(ValueError, match=r"dtype must be one of float64, float32; got"):
            loopvec.gradient(W, B, X, Y, dtype=wrong)


@pytest.mark.parametrize("dtype", ["float32", "f4", np.float32, np.dtype("float32")])
def test_dtype_is_any_spelling_numpy_reads(dtype: object) -> None:
    dw, _ = loopvec.gradient(W, B, X, Y, dtype=dtype)
    assert dw.dtype == np.float32


def test_values_that_overflow_float32_are_refused_not_made_inf() -> None:
    with pytest.raises(ValueError, match=r"X does not fit in float32: .* 1e\+300 overflows"):
        loopvec.gradient(W, B, [[1e300, 2.0, -1.0], [3.0, 4.0, -3.2]], Y, dtype="float32")
