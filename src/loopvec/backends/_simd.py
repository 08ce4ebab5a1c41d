"""Eight float64 lanes as one value in numba code, for loops LLVM cannot vectorize on its own.

In Fortran order with few features a column of X is shorter than LLVM's vector loop (n = 10: one
4-lane vector and two scalar steps an example), so the column walks spent their time per column,
not per byte. Here a column of up to 16 features is two `Lanes` values (the lanes past n hold 0),
and dw's 16 sums stay in two registers for a whole block: at (1e5, 10), one thread, a Zen 4 (21
rounds, 256 KiB blocks), the dw pass 2.29x [2.28, 2.30] and the z pass 2.31x [2.30, 2.32] faster
than the walks (1.55x than z's 8-column walk).

`Lanes` is a numba type whose LLVM value is <8 x double>; the functions below are numba
intrinsics, each a few LLVM instructions, inlined where they are called (so cached as any kernel).
Where a CPU has fewer lanes (AVX2: 4), LLVM splits each operation in two.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, models, register_model

LANES = 8
_VECTOR = ir.VectorType(ir.DoubleType(), LANES)
_I32, _I64 = ir.IntType(32), ir.IntType(64)
#: The additions of `lane_sums` are reassociated, as the kernels' sums are (`_jit.REASSOCIATE`).
_REASSOCIATE = ("reassoc", "contract", "nsz")


def _intrinsic(codegen_of: Callable[..., Any]) -> Any:
    """numba's `intrinsic`, typed for mypy as what it is to the kernels: a function called from
    compiled code with the arguments after `typingctx`."""
    return intrinsic(codegen_of)


class LanesType(types.Type):
    """Eight float64 values in one SIMD register (or two, or four, where a CPU's are narrower)."""

    def __init__(self) -> None:
        super().__init__(name="Lanes")


lanes_type = LanesType()


@register_model(LanesType)
class _LanesModel(models.PrimitiveModel):
    def __init__(self, dmm: Any, fe_type: Any) -> None:
        super().__init__(dmm, fe_type, _VECTOR)  # type: ignore[no-untyped-call]


def _constant_vector(element: ir.Type, values: list[Any]) -> ir.Constant:
    return ir.Constant(ir.VectorType(element, LANES), values)


def _splat(builder: ir.IRBuilder, scalar: ir.Value) -> ir.Value:
    """The vector whose lanes are all `scalar`."""
    vector_type = ir.VectorType(scalar.type, LANES)
    one = builder.insert_element(ir.Constant(vector_type, ir.Undefined), scalar, _I32(0))
    return builder.shuffle_vector(one, one, _constant_vector(_I32, [0] * LANES))


def vector_call(builder: ir.IRBuilder, name: str, *operands: ir.Value) -> ir.Value:
    """LLVM's intrinsic `name` (fma, floor, fabs, ...) on Lanes operands: llvm.<name>.v8f64."""
    function = cgutils.get_or_insert_function(  # type: ignore[no-untyped-call]
        builder.module,
        ir.FunctionType(_VECTOR, [_VECTOR] * len(operands)),
        f"llvm.{name}.v{LANES}f64",
    )
    return builder.call(function, list(operands))


def _as_lanes(context: Any, builder: ir.IRBuilder, value: ir.Value, value_type: Any) -> ir.Value:
    """A Lanes value as it is; a number as 8 copies of it, as float64."""
    if value_type == lanes_type:
        return value
    return _splat(builder, context.cast(builder, value, value_type, types.float64))


@_intrinsic
def zeros(typingctx: Any) -> Any:
    """Eight 0.0."""

    def codegen(context: Any, builder: ir.IRBuilder, signature: Any, args: Any) -> ir.Value:
        return ir.Constant(_VECTOR, [0.0] * LANES)

    return lanes_type(), codegen


def _column_loader(X: Any, *, masked: bool) -> Any:
    """The signature and code of `load_column` (a whole load) or `load_column_masked`."""
    floats = (types.float64, types.float32)
    if not (isinstance(X, types.Array) and X.ndim == 2 and X.dtype in floats):
        return None

    def codegen(context: Any, builder: ir.IRBuilder, signature: Any, args: Any) -> ir.Value:
        array = context.make_array(X)(context, builder, args[0])
        column, first, count = args[1:]
        value_type = context.get_data_type(X.dtype)
        itemsize = context.get_abi_sizeof(value_type)
        offset = builder.add(
            builder.mul(column, builder.extract_value(array.strides, 1)),
            builder.mul(first, _I64(itemsize)),
        )
        address = builder.gep(builder.bitcast(array.data, ir.IntType(8).as_pointer()), [offset])
        lanes = _constant_vector(_I64, list(range(LANES)))
        mask = builder.icmp_signed("<", lanes, _splat(builder, count))
        loaded_type = ir.VectorType(value_type, LANES)
        zero = ir.Constant(loaded_type, [0.0] * LANES)
        if masked:
            suffix = "f64" if X.dtype == types.float64 else "f32"
            masked_load = cgutils.get_or_insert_function(  # type: ignore[no-untyped-call]
                builder.module,
                ir.FunctionType(loaded_type, [address.type, _I32, mask.type, loaded_type]),
                f"llvm.masked.load.v{LANES}{suffix}.p0",
            )
            loaded = builder.call(masked_load, [address, _I32(itemsize), mask, zero])
        else:
            whole = builder.load(builder.bitcast(address, loaded_type.as_pointer()), align=1)
            loaded = builder.select(mask, whole, zero)
        return loaded if X.dtype == types.float64 else builder.fpext(loaded, _VECTOR)

    return lanes_type(X, types.intp, types.intp, types.intp), codegen


@_intrinsic
def load_column(typingctx: Any, X: Any, column: Any, first: Any, count: Any) -> Any:
    """X[first:first+count, column] as float64 in lanes 0..count-1 (count <= 8), the other lanes
    0.0. X is 2-d, float64 or float32, its columns contiguous (the caller checks). The 8 values
    from X[first, column] on are read whole and those past count set to 0: what they read (the
    next column, a view's gap) never reaches a sum, whatever it holds. The caller makes sure they
    lie within X (`_blocked.columns_read_whole`). (For AVX-512 LLVM makes the load and the select
    one masked load; AVX2 reads all 8.)"""
    return _column_loader(X, masked=False)


@_intrinsic
def load_column_masked(typingctx: Any, X: Any, column: Any, first: Any, count: Any) -> Any:
    """`load_column` by a masked load, which reads nothing past X[first+count-1, column]: for
    X's last columns. (Not everywhere: AVX2's masked load, vmaskmovpd, took the z pass at
    (1e7, 10) from 28 to 86 ms on a Zen 4, where AVX-512's cost nothing.)"""
    return _column_loader(X, masked=True)


@_intrinsic
def fma(typingctx: Any, x: Any, y: Any, addend: Any) -> Any:
    """x * y + addend lane by lane, rounded once; each may be a number (in every lane)."""

    def codegen(context: Any, builder: ir.IRBuilder, signature: Any, args: Any) -> ir.Value:
        operands = [
            _as_lanes(context, builder, value, value_type)
            for value, value_type in zip(args, signature.args, strict=True)
        ]
        return vector_call(builder, "fma", *operands)

    if not all(t == lanes_type or isinstance(t, types.Number) for t in (x, y, addend)):
        return None
    return lanes_type(x, y, addend), codegen


@_intrinsic
def lane(typingctx: Any, vector: Any, k: Any) -> Any:
    """Lane k of a Lanes value, as a float64."""

    def codegen(context: Any, builder: ir.IRBuilder, signature: Any, args: Any) -> ir.Value:
        return builder.extract_element(args[0], args[1])

    return types.float64(lanes_type, types.intp), codegen


@_intrinsic
def gather(typingctx: Any, array: Any, first: Any, step: Any) -> Any:
    """array[first + k * step] in lane k, as float64: array 1-d, float64 or float32."""

    def codegen(context: Any, builder: ir.IRBuilder, signature: Any, args: Any) -> ir.Value:
        source = context.make_array(array)(context, builder, args[0])
        first, step = args[1:]
        vector = ir.Constant(_VECTOR, ir.Undefined)
        for k in range(LANES):
            index = builder.add(first, builder.mul(step, _I64(k)))
            pointer = cgutils.get_item_pointer(context, builder, array, source, [index])  # type: ignore[no-untyped-call]
            value = builder.load(pointer)
            value = context.cast(builder, value, array.dtype, types.float64)
            vector = builder.insert_element(vector, value, _I32(k))
        return vector

    if not (isinstance(array, types.Array) and array.ndim == 1):
        return None
    return lanes_type(array, types.intp, types.intp), codegen


@_intrinsic
def lane_total(typingctx: Any, vector: Any) -> Any:
    """The sum of a Lanes value's 8 lanes, in any order (reassociated, as the kernels' sums)."""

    def codegen(context: Any, builder: ir.IRBuilder, signature: Any, args: Any) -> ir.Value:
        double = ir.DoubleType()
        reduce = cgutils.get_or_insert_function(  # type: ignore[no-untyped-call]
            builder.module,
            ir.FunctionType(double, [double, _VECTOR]),
            f"llvm.vector.reduce.fadd.v{LANES}f64",
        )
        return builder.call(reduce, [ir.Constant(double, 0.0), args[0]], fastmath=_REASSOCIATE)

    return types.float64(lanes_type), codegen


@_intrinsic
def store(typingctx: Any, array: Any, index: Any, vector: Any) -> Any:
    """array[index:index+8] = vector, array 1-d contiguous float64."""

    def codegen(context: Any, builder: ir.IRBuilder, signature: Any, args: Any) -> Any:
        target = context.make_array(signature.args[0])(context, builder, args[0])
        address = builder.bitcast(builder.gep(target.data, [args[1]]), _VECTOR.as_pointer())
        builder.store(args[2], address, align=8)
        return context.get_dummy_value()

    if not (isinstance(array, types.Array) and array.ndim == 1 and array.dtype == types.float64):
        return None
    return types.none(array, types.intp, lanes_type), codegen


def _halving_masks(width: int) -> tuple[ir.Constant, ir.Constant]:
    """Shuffles of two vectors a, b that put, in each block of `width` lanes, the first halves of
    a's and b's blocks side by side (the first mask) and their second halves (the second)."""
    half = width // 2
    first, second = [], []
    for position in range(LANES):
        block, within = divmod(position, width)
        source, offset = (0, within) if within < half else (LANES, within - half)
        first.append(source + block * width + offset)
        second.append(source + block * width + half + offset)
    return _constant_vector(_I32, first), _constant_vector(_I32, second)


#: Three halving rounds leave vector k's sum in lane bit-reversed(k): the vectors go in so.
_BIT_REVERSED = (0, 4, 2, 6, 1, 5, 3, 7)


@_intrinsic
def lane_sums(
    typingctx: Any, v0: Any, v1: Any, v2: Any, v3: Any, v4: Any, v5: Any, v6: Any, v7: Any
) -> Any:
    """The Lanes value whose lane k is the sum of vk's 8 lanes: 8 horizontal sums in 3 rounds of
    two shuffles and an add per pair (14 shuffles and 7 adds, where 8 reductions take 24 and 24)."""

    def codegen(context: Any, builder: ir.IRBuilder, signature: Any, args: Any) -> ir.Value:
        vectors, width = [args[k] for k in _BIT_REVERSED], LANES
        while width > 1:
            first, second = _halving_masks(width)
            vectors = [
                builder.fadd(
                    builder.shuffle_vector(a, b, first),
                    builder.shuffle_vector(a, b, second),
                    flags=_REASSOCIATE,
                )
                for a, b in zip(vectors[0::2], vectors[1::2], strict=True)
            ]
            width //= 2
        return vectors[0]

    return lanes_type(*[lanes_type] * LANES), codegen
