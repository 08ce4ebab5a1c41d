"""Input checks for the public front doors, in one place, so kernels can trust their inputs.

Every error names the argument, what was expected and what was given. Valid inputs come back as
float64 arrays, or float32 where asked for (a copy only when the dtype changes: inputs are never
modified), and b as a float.
"""

from __future__ import annotations

import math
import numbers
import operator
import sys
from typing import Any

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.float64]

# Booleans, signed and unsigned integers and floats are real numbers; complex ('c'), objects ('O'),
# strings ('U', 'S'), raw bytes ('V') and dates ('M', 'm') are not.
_REAL_KINDS = frozenset("biuf")


def _as_real_array(name: str, value: Any) -> Array:
    """`value` as a float64 ndarray, or TypeError/ValueError naming `name`."""
    try:
        array = np.asarray(value)
    except ValueError as error:  # ragged nested lists
        raise ValueError(f"{name} must be a rectangular array of real numbers; {error}") from None
    if array.dtype.kind not in _REAL_KINDS:
        raise TypeError(
            f"{name} must hold real numbers (bool, int or float); "
            f"got an array of dtype {array.dtype} ({type(value).__name__})"
        )
    return np.asarray(array, dtype=np.float64)


def _check_2d(name: str, array: Array, expected: str) -> None:
    if array.ndim != 2:
        raise ValueError(
            f"{name} must be a 2-D array of shape {expected}; "
            f"got a {array.ndim}-D array of shape {array.shape}"
        )


#: Entries checked at a time: the check's temporary (a bool each) stays small beside X.
_CHECK_ENTRIES = 2**20


def _check_finite(name: str, array: Array) -> None:
    """ValueError at the first entry that is not finite, checking slices along the last axis
    so that no temporary of the array's size is made."""
    if array.ndim == 0:
        array = array.reshape(1)
    step = max(1, _CHECK_ENTRIES * array.shape[-1] // max(array.size, 1))
    for start in range(0, array.shape[-1], step):
        part = array[..., start : start + step]
        if not np.all(np.isfinite(part)):
            bad = np.argwhere(~np.isfinite(part))[0]
            index = (*(int(i) for i in bad[:-1]), start + int(bad[-1]))
            raise ValueError(f"{name} must be finite; got {part[tuple(bad)]} at index {index}")


def validate_bias(b: Any, name: str = "b") -> float:
    """b as a Python float: a finite real scalar (Python or numpy number, or 0-d array); errors
    call it `name` (the caller's name for it, b0 say)."""
    if isinstance(b, bool | np.bool_) or not (
        isinstance(b, numbers.Real) or (isinstance(b, np.ndarray) and b.ndim == 0)
    ):
        shape = f" of shape {b.shape}" if isinstance(b, np.ndarray) else ""
        raise TypeError(
            f"{name} must be a real scalar (int or float); got {type(b).__name__}{shape}"
        )
    b_array = _as_real_array(name, b)
    _check_finite(name, b_array)
    return float(b_array)


def validate_features(X: Any) -> Array:
    """X (n, m) as float64, finite, with n >= 1 features and m >= 1 examples."""
    array = _as_real_array("X", X)
    _check_2d("X", array, "(n, m): features x examples")
    n, m = array.shape
    if n == 0 or m == 0:
        raise ValueError(
            f"X must have at least one feature and one example (n >= 1, m >= 1); "
            f"got shape {array.shape}, n = {n}, m = {m}"
        )
    _check_finite("X", array)
    return array


def validate_labels(Y: Any, m: int) -> Array:
    """Y (1, m) as float64 with every value in [0, 1]."""
    array = _as_real_array("Y", Y)
    _check_2d("Y", array, f"(1, m) = (1, {m})")
    if array.shape != (1, m):
        dimension = (
            "dimension 0 must be 1" if array.shape[0] != 1 else f"dimension 1 must be m = {m}"
        )
        raise ValueError(
            f"Y must have shape (1, m) = (1, {m}) to match X; {dimension}, got shape {array.shape}"
        )
    _check_finite("Y", array)
    outside = (array < 0) | (array > 1)
    if np.any(outside):
        raise ValueError(f"Y must hold values in [0, 1]; got {array[outside][0]}")
    return array


def validate_weights(w: Any, n: int, name: str = "w") -> Array:
    """w (n, 1) as float64, finite; errors call it `name` (the caller's name for it)."""
    array = _as_real_array(name, w)
    _check_2d(name, array, f"(n, 1) = ({n}, 1)")
    if array.shape != (n, 1):
        dimension = (
            f"dimension 0 must be n = {n}, the number of rows of X"
            if array.shape[0] != n
            else "dimension 1 must be 1"
        )
        raise ValueError(
            f"{name} must have shape (n, 1) = ({n}, 1); {dimension}, got shape {array.shape}"
        )
    _check_finite(name, array)
    return array


#: The dtypes a computation can be asked for; results are float64 unless float32 is asked for.
DTYPES = ("float64", "float32")


def validate_dtype(dtype: Any) -> np.dtype[Any]:
    """'float32', np.float32 or np.dtype('float32') (any spelling numpy reads) as a dtype."""
    try:
        name = np.dtype(dtype).name if dtype is not None else None
    except TypeError:
        name = None
    if name not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}; got {dtype!r}")
    chosen: np.dtype[Any] = np.dtype(name)
    return chosen


def _narrowed(name: str, array: Array, dtype: np.dtype[Any]) -> NDArray[Any]:
    """`array` in `dtype`, or ValueError if a finite value would overflow it."""
    largest = float(np.max(np.abs(array)))
    if largest > float(np.finfo(dtype).max):
        raise ValueError(
            f"{name} does not fit in {dtype}: its largest magnitude {largest:g} overflows; "
            f"use dtype='float64'"
        )
    return array.astype(dtype, copy=False)


def validate_problem(
    w: Any, b: Any, X: Any, Y: Any, *, dtype: Any = "float64"
) -> tuple[NDArray[Any], float, NDArray[Any], NDArray[Any]]:
    """All four inputs of a gradient or loss, checked against each other, in `dtype`.

    Shapes: X (n, m) features x examples, Y (1, m) in [0, 1], w (n, 1), b a real scalar.
    """
    target = validate_dtype(dtype)
    X = validate_features(X)
    n, m = X.shape
    w, b, Y = validate_weights(w, n), validate_bias(b), validate_labels(Y, m)
    if target == np.float64:
        return w, b, X, Y
    return _narrowed("w", w, target), b, _narrowed("X", X, target), _narrowed("Y", Y, target)


def validate_positive_int(name: str, value: Any, *, allow_zero: bool = False) -> int:
    """`value` as an int >= 1 (>= 0 with allow_zero; any integer type, not bool);
    TypeError/ValueError naming it."""
    expected = "an integer >= 0" if allow_zero else "a positive integer"
    if isinstance(value, bool | np.bool_):
        raise TypeError(f"{name} must be {expected}; got bool {value}")
    try:
        number = operator.index(value)
    except TypeError:
        raise TypeError(
            f"{name} must be {expected}; got {type(value).__name__} {value!r}"
        ) from None
    if number < (0 if allow_zero else 1):
        raise ValueError(f"{name} must be {expected}; got {number}")
    return int(number)


def validate_rate(name: str, value: Any, *, allow_zero: bool = False) -> float:
    """`value` as a finite float > 0 (>= 0 with allow_zero), or TypeError/ValueError naming it."""
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number; got {type(value).__name__} {value!r}")
    number = float(value)
    if not math.isfinite(number) or number < 0 or (number == 0 and not allow_zero):
        expected = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be a finite number {expected}; got {number!r}")
    return number


def is_dask_array(value: Any) -> bool:
    """Whether `value` is a dask array (without importing dask where nobody has)."""
    module = sys.modules.get("dask.array")
    return module is not None and isinstance(value, module.Array)


def validate_lazy_data(X: Any, Y: Any, *, dtype: Any = "float64") -> tuple[Any, Any]:
    """X (n, m) and Y (1, m) as dask arrays in `dtype` (either may come as numpy or nested
    lists), without computing them: shapes and dtypes are checked here; their values where the
    gradient reads them (`loopvec.backends._dask.checked`), and whether X fits in float32 as
    each chunk is cast (`_fits`)."""
    import dask.array as da  # noqa: PLC0415 (dask is optional)

    target = validate_dtype(dtype)
    X, Y = (
        a if is_dask_array(a) else da.from_array(_as_real_array(name, a))  # type: ignore[no-untyped-call]
        for name, a in (("X", X), ("Y", Y))
    )
    for name, array, expected in (("X", X, "(n, m)"), ("Y", Y, "(1, m)")):
        if array.dtype.kind not in _REAL_KINDS:
            raise TypeError(
                f"{name} must hold real numbers (bool, int or float); got a dask array of "
                f"dtype {array.dtype}"
            )
        if array.ndim != 2 or any(math.isnan(side) for side in array.shape):
            raise ValueError(
                f"{name} must be a 2-D array of shape {expected} with known chunk sizes; got a "
                f"dask array of shape {array.shape}"
            )
    n, m = X.shape
    if n < 1 or m < 1:
        raise ValueError(f"X must have at least one feature and one example; got shape {X.shape}")
    if Y.shape != (1, m):
        raise ValueError(f"Y must have shape (1, {m}) to match X; got {Y.shape}")
    if target == np.float64:
        return X.astype(target), Y.astype(target)
    return X.map_blocks(_fits, "X", target, dtype=target), Y.astype(target)


def _fits(chunk: NDArray[Any], name: str, dtype: np.dtype[Any], block_info: Any = None) -> Any:
    """A chunk of a dask array cast to `dtype`, or ValueError at its first finite value that
    would overflow it (naming the value's index and its chunk's examples; not-finite values
    are left to the value check, which names them as such)."""
    overflows = np.isfinite(chunk) & (np.abs(chunk) > float(np.finfo(dtype).max))
    if np.any(overflows):
        row, column = (int(i) for i in np.argwhere(overflows)[0])
        start = block_info[0]["array-location"][1][0] if block_info else 0
        raise ValueError(
            f"{name} does not fit in {dtype}: {chunk[row, column]:g} at index ({row}, "
            f"{start + column}) in the chunk of examples {start} to "
            f"{start + chunk.shape[1] - 1} overflows; use dtype='float64'"
        )
    return chunk.astype(dtype)


def validate_lazy_problem(
    w: Any, b: Any, X: Any, Y: Any, *, dtype: Any = "float64"
) -> tuple[NDArray[Any], float, Any, Any]:
    """`validate_problem` for X and Y as dask arrays (`validate_lazy_data`), w and b in memory,
    all in `dtype`."""
    target = validate_dtype(dtype)
    X, Y = validate_lazy_data(X, Y, dtype=target)
    w, b = validate_weights(w, X.shape[0]), validate_bias(b)
    return (w if target == np.float64 else _narrowed("w", w, target)), b, X, Y
