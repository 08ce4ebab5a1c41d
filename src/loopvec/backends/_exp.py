"""The kernels' exp and sigmoid, written out as LLVM instructions on 8 float64s at once.

numba's exp is a scalar libm call that stops a loop from vectorizing, and numba's vector math
(SVML) needs a patched LLVM that PyPI's llvmlite does not ship. So exp(x), x <= 0, is made here
on a `_simd.Lanes` value: Cody-Waite range reduction, a degree-13 polynomial, scaling by 2^k
through the exponent bits. It is within 1 ulp of the exact exp (subnormal results included), the
sigmoid within 3 ulps (tests/test_sigmoid.py).

On Lanes the sigmoid needs no array: Fortran order's one pass (`_blocked._stream_walk`) takes 8
examples' z from their sums straight to dz in registers, where before each step of 40 examples
(n = 100) went through a loop over arrays whose setup cost 4 of its 14 cycles an example. The
other kernels run `sigmoid_minus_y` over their blocks' z, 8 at a time: 4 cycles an example where
the loop LLVM vectorized took 8 (640 at a time, an Ice Lake Xeon), with the same bits.

The instructions carry no fast-math flags, whatever the kernel that calls them: they are held by
functions compiled without fastmath (numba sets the flags of every instruction of a function it
compiles with fastmath; LLVM inlines a callee with its own). Reassociated, the two scale factors
were multiplied first, and exp(-745) rounded to 0 instead of 2^-1074.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from llvmlite import ir
from numpy.typing import NDArray

from loopvec.backends._jit import jit
from loopvec.backends._simd import (
    _I64,
    _VECTOR,
    LANES,
    _constant_vector,
    _intrinsic,
    fma,
    gather,
    lane,
    lane_total,
    lanes_type,
    load_column,
    load_column_masked,
    store,
    vector_call,
    zeros,
)

# exp(x) = 2^k exp(r), k = round(x / ln 2), r = x - k ln 2 with |r| <= ln 2 / 2. ln 2 is split in
# two (the high part has 21 trailing zero bits) so that k ln2_hi is exact for |k| < 2^21.
_INV_LN2 = 1.0 / math.log(2.0)
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
#: Taylor coefficients 1/k!, highest first: the truncation error r^14 / 14! < 5e-18 for
#: |r| <= 0.347.
_COEFFICIENTS = tuple(1.0 / math.factorial(k) for k in range(13, -1, -1))
#: exp(-1400) underflows to exactly 0 through the two scale factors below, as exp(-|z|) must.
_EXP_FLOOR = -1400.0
#: 2^52 + 2^51: k + this holds the integer k in its low bits (|k| < 2^51), no conversion needed.
_INTEGER_MAGIC = 6755399441055744.0
_I64_VECTOR = ir.VectorType(_I64, LANES)


def _doubles(value: float) -> ir.Constant:
    return _constant_vector(ir.DoubleType(), [value] * LANES)


def _integers(value: int) -> ir.Constant:
    return _constant_vector(_I64, [value] * LANES)


def _exp_instructions(builder: ir.IRBuilder, x: ir.Value) -> ir.Value:
    """exp(max(x, _EXP_FLOOR)) lane by lane, for x <= 0."""
    x = builder.select(builder.fcmp_ordered("<", x, _doubles(_EXP_FLOOR)), _doubles(_EXP_FLOOR), x)
    k = vector_call(
        builder, "floor", vector_call(builder, "fma", x, _doubles(_INV_LN2), _doubles(0.5))
    )
    r = vector_call(builder, "fma", k, _doubles(-_LN2_HI), x)
    r = vector_call(builder, "fma", k, _doubles(-_LN2_LO), r)
    polynomial = _doubles(_COEFFICIENTS[0])
    for coefficient in _COEFFICIENTS[1:]:
        polynomial = vector_call(builder, "fma", polynomial, r, _doubles(coefficient))
    magic_bits = int(np.float64(_INTEGER_MAGIC).view(np.int64))
    k_bits = builder.bitcast(builder.fadd(k, _doubles(_INTEGER_MAGIC)), _I64_VECTOR)
    k_int = builder.sub(k_bits, _integers(magic_bits))
    # 2^k as two factors 2^(k>>1) 2^(k - k>>1), each a normal number down to k = -2044, so
    # results between 2^-1074 and 2^-1022 come out subnormal instead of wrong.
    half = builder.ashr(k_int, _integers(1))
    scales = [
        builder.bitcast(builder.shl(builder.add(part, _integers(1023)), _integers(52)), _VECTOR)
        for part in (half, builder.sub(k_int, half))
    ]
    return builder.fmul(builder.fmul(polynomial, scales[0]), scales[1])


@_intrinsic
def _exp_of(typingctx: Any, x: Any) -> Any:
    def codegen(context: Any, builder: ir.IRBuilder, signature: Any, args: Any) -> ir.Value:
        return _exp_instructions(builder, args[0])

    return lanes_type(lanes_type), codegen


@_intrinsic
def _sigmoid_of(typingctx: Any, z: Any) -> Any:
    def codegen(context: Any, builder: ir.IRBuilder, signature: Any, args: Any) -> ir.Value:
        z = args[0]
        magnitude = vector_call(builder, "fabs", z)
        e = _exp_instructions(builder, builder.fsub(_doubles(-0.0), magnitude))  # exp(-|z|)
        inverse = builder.fdiv(_doubles(1.0), builder.fadd(_doubles(1.0), e))
        positive = builder.fcmp_ordered(">=", z, _doubles(0.0))
        return builder.select(positive, inverse, builder.fmul(e, inverse))

    return lanes_type(lanes_type), codegen


@jit
def exp_lanes(x: Any) -> Any:
    """exp(x) of a Lanes value of x <= 0; exactly 0 below -1400."""
    return _exp_of(x)


@jit
def sigmoid_lanes(z: Any) -> Any:
    """sigmoid(z) of a Lanes value, stably: only exp(-|z|) is taken."""
    return _sigmoid_of(z)


@jit
def exp_nonpositive(x: NDArray[np.float64]) -> NDArray[np.float64]:
    """exp(x) of a 1-d array of x <= 0 by the kernels' method (for tests and the curious)."""
    size = x.size
    result = np.empty(size)
    column = np.ascontiguousarray(x).reshape(size, 1)
    for i in range(0, size, LANES):
        e = exp_lanes(load_column_masked(column, 0, i, min(LANES, size - i)))
        for k in range(min(LANES, size - i)):
            result[i + k] = lane(e, k)
    return result


@jit
def sigmoid_minus_y(
    z: NDArray[np.floating], y: NDArray[np.floating], size: int, dz: NDArray[np.floating]
) -> float:
    """dz[:size] = sigmoid(z) - y, 8 at a time; returns sum(dz). z and dz are 1-d contiguous
    float64, y 1-d float64 or float32, any stride (read one value at a time: a label is 1/n of
    the bytes the kernels read)."""
    z_column = z.reshape(z.size, 1)
    whole = size // LANES * LANES
    total = zeros()
    for i in range(0, whole, LANES):
        a = sigmoid_lanes(load_column(z_column, 0, i, LANES))
        d = fma(gather(y, i, 1), -1.0, a)
        store(dz, i, d)
        total = fma(d, 1.0, total)
    dz_sum: float = lane_total(total)
    if whole < size:  # the last few: a masked load reads nothing past size
        a = sigmoid_lanes(load_column_masked(z_column, 0, whole, size - whole))
        for k in range(size - whole):
            dz[whole + k] = lane(a, k) - y[whole + k]
            dz_sum += dz[whole + k]
    return dz_sum
