"""exp and sigmoid against exact values over their whole range, to the accuracy they promise.

The compiled kernels write exp out by hand (`loopvec.backends._exp`); numpy_vectorized and
the loops use `loopvec.sigmoid`. A gradient test allows 1e-10 of error, far more than a broken
exp shows, so the functions are held here to their documented few ulps, subnormals included.
"""

from __future__ import annotations

import math
import warnings

import exact
import numpy as np
import pytest

from loopvec.backends._exp import exp_nonpositive, sigmoid_minus_y
from loopvec.sigmoid import sigmoid, sigmoid_scalar

#: The documented accuracy, in units in the last place of the correctly rounded value.
EXP_ULPS = 1.0
SIGMOID_ULPS = 3.0


def nonpositive_arguments() -> np.ndarray:
    """x <= 0 over every scale of magnitude, the edges of exp's range reduction and the
    subnormal results (exp(x) < 2^-1022 for x < -708.4), down to where exp(x) rounds to 0."""
    rng = np.random.default_rng(0)
    magnitudes = rng.uniform(0, 1, 4000) * 10.0 ** rng.uniform(-20, 3.2, 4000)
    subnormal = rng.uniform(708.39, 745.14, 1000)
    half_ln2 = math.log(2) / 2
    edges = [0.0, 5e-324, half_ln2, 3 * half_ln2, 708.396, 709.78, 744.44, 745.1332, 745.1333]
    edges += [746.0, 1399.0, 1400.0, 2000.0, 1e308]
    return -np.concatenate([magnitudes, subnormal, np.nextafter(edges, 0), edges])


X = nonpositive_arguments()


def test_the_kernels_exp_is_within_its_ulp_of_the_exact_value_subnormals_included() -> None:
    got = exp_nonpositive(X)
    worst = max(exact.ulps(g, exact.exp(x)) for x, g in zip(X, got, strict=True))
    assert worst <= EXP_ULPS, worst
    subnormal = (got > 0) & (got < np.finfo(np.float64).tiny)
    assert subnormal.sum() > 900  # the range 2^-1074 .. 2^-1022 is exercised
    assert exp_nonpositive(np.array([-745.2, -1400.0, -1e308, -np.inf])).tolist() == [0.0] * 4


def test_the_kernels_exp_agrees_with_math_exp() -> None:
    got = exp_nonpositive(X)
    for x, g in zip(X, got, strict=True):
        assert abs(g - math.exp(x)) <= math.ulp(math.exp(x)), x


def kernel_sigmoid(z: np.ndarray) -> np.ndarray:
    """sigmoid(z) as the fused kernels compute it: their sigmoid(z) - y with y = 0."""
    size = z.size
    dz = np.empty(size)
    sigmoid_minus_y(z, np.zeros(size), size, dz)
    return dz


Z = np.concatenate([X, -X])


@pytest.mark.parametrize(
    "function",
    [kernel_sigmoid, sigmoid, np.vectorize(sigmoid_scalar)],
    ids=["kernels", "numpy", "scalar"],
)
def test_sigmoid_is_within_a_few_ulps_of_the_exact_value_for_every_finite_z(function) -> None:  # type: ignore[no-untyped-def]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow, underflow or invalid warnings
        got = function(Z)
    worst = max(exact.ulps(g, exact.sigmoid(z)) for z, g in zip(Z, got, strict=True))
    assert worst <= SIGMOID_ULPS, worst
    assert function(np.array([-1e308, 1e308])).tolist() == [0.0, 1.0]


def test_the_kernels_sigmoid_minus_y_returns_the_sum_of_dz() -> None:
    z = np.linspace(-30, 30, 101)
    y = (np.arange(101) % 2).astype(np.float64)
    dz = np.empty(101)
    total = sigmoid_minus_y(z, y, 101, dz)
    expected = [exact.sigmoid(v) - int(label) for v, label in zip(z, y, strict=True)]
    assert dz.tolist() == pytest.approx([float(e) for e in expected], abs=4e-16)  # a ulp of a
    assert total == pytest.approx(float(sum(expected)), abs=1e-14)


@pytest.mark.parametrize("size", [1, 7, 8, 9, 16, 17])
@pytest.mark.parametrize("labels", ["float64", "float32", "every other"])
def test_sigmoid_minus_y_takes_labels_of_any_float_dtype_and_stride(size: int, labels: str) -> None:
    """8 at a time, and the few past the last 8 by masked loads; y of float32 X, or a view."""
    z = np.linspace(-40, 40, size)
    y_values = (np.arange(size) % 3 == 0).astype(np.float64)
    y = {
        "float64": y_values,
        "float32": y_values.astype(np.float32),
        "every other": np.repeat(y_values, 2)[::2],
    }[labels]
    dz = np.full(size + 8, np.nan)
    total = sigmoid_minus_y(z, y, size, dz)
    expected = [float(exact.sigmoid(v)) - label for v, label in zip(z, y_values, strict=True)]
    assert dz[:size].tolist() == pytest.approx(expected, abs=4e-16)
    assert np.isnan(dz[size:]).all()  # nothing written past size
    assert total == pytest.approx(sum(expected), abs=1e-14)
