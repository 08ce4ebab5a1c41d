"""The single-pass gradient that numba_fused and numba_parallel share: X is read once.

The vectorized formula reads X twice (w.T X, then X dZ.T). Here the examples are taken in blocks
small enough that a block of X (n x B entries) is still in cache when it is read the second time,
so X comes from memory once:

    for each block of B examples:
        z   = b + w.T X[:, block]             (X read from memory)
        dz  = sigmoid(z) - y[block]           (vectorized exp, below)
        dw += X[:, block] dz                  (X read again, from cache)
        db += sum(dz)

In C order (the course layout, a row per feature) the inner loops run along rows, 8 rows at a
time so that each loaded z or dz feeds 8 multiply-adds; below a number of features the passes are
pipelined: the dw pass of each block is made in the z pass of the next, so that the memory keeps
streaming while the cache is read (at (1e6, 100) on a 2-core Xeon, 6 % faster: from 80 to 86 % of
the read bandwidth). In Fortran order (a column per example) they either walk the columns (8 at a
time, or in the z pass one at a time: 8 short streams side by side halved the speed from memory
on a Zen 4; or 8 side by side in `_simd.Lanes`, 8 features a register, in both passes or in the
dw pass only: on an Emerald Rapids Xeon LLVM's loops ran 4 lanes wide and summed each column's
lanes one by one, on a Zen 4 compiled for AVX-512 their dw pass read 79 GB/s from L2 where Lanes
read 98), or copy the block into a C-order buffer that stays in cache and run the row loops on
it; X itself is never copied. Which way, and the block sizes, is a `KernelPlan`, measured on each
machine (`loopvec.tuning`). Columns of at most 16 features, shorter than LLVM's vector loops, are
read as two SIMD vectors each (`_simd`), whatever the plan: at (1e5, 10) on a Zen 4 that took
Fortran order from 1.6x C order's time to 1.01x to 1.08x. Sums are reassociated (REASSOCIATE) so
that LLVM spreads them over SIMD lanes.

The sigmoid's exp is written out, 8 examples at a time (`_exp`).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
from numba.extending import overload
from numpy.typing import NDArray

from loopvec.backends._exp import sigmoid_lanes, sigmoid_minus_y
from loopvec.backends._jit import REASSOCIATE, jit
from loopvec.backends._simd import (
    LANES,
    fma,
    gather,
    lane,
    lane_sums,
    lane_total,
    load_column,
    load_column_masked,
    store,
    zeros,
)

#: float64 or float32 arrays: the kernels compile once per dtype and memory layout.
Floats = NDArray[np.floating]

_ROWS = 8  # rows of X per pass in C order (registers hold 8 accumulators)
_COLUMNS = 8  # columns (examples) of X per pass in Fortran order, for the same reason
#: Fortran order up to this many features: each column read as two `_simd.Lanes` values.
SHORT_COLUMN_MAX_N = 2 * LANES
#: Bytes of X a step of `_stream_walk` reads from memory before it reads them again (from L1).
#: A step's columns are read again after up to 1.6 steps of other columns: at 32 KiB, more than
#: a 48 KiB L1 holds. On an Ice Lake Xeon (L1 48 KiB), one thread, X in new arrays each round,
#: 16 KiB took 0.94x [0.91, 0.95] the time of 32 KiB at (1000, 100) (15 rounds), 0.91x at
#: (1000, 64), 0.95x at (1000, 200), 0.88x at (5000, 200), a tie from memory at (1e6, 100)
#: (0.98x [0.95, 1.04], two threads). Smaller steps (12 KiB) were no better.
_STEP_BYTES = 16 * 2**10


class KernelPlan(NamedTuple):
    """The choices that decide the kernels' speed on a machine, measured there
    (`loopvec.tuning`) and passed to the kernels as an argument, so their compiled code does not
    depend on them."""

    c_block_bytes: int  #: bytes of X per block in C order
    f_block_bytes: int  #: bytes of X per block in any other layout (Fortran order)
    #: Fortran order below this many features: each block copied into a C-order buffer in cache
    #: and read by the C-order loops; at and above it, the block's columns are walked. (Up to
    #: SHORT_COLUMN_MAX_N features, neither: the short-column kernels.)
    f_transpose_below_n: int
    #: C order below this many features: each block's dw pass is made in the walk over the next
    #: block's rows (`_z_dw_rows`), so that the memory streams while the cache is read; at and
    #: above it, the two passes of a block one after the other.
    c_pipeline_below_n: int = 0
    #: Fortran order's z pass walks this many columns side by side: 8 (each w[j] loaded feeds 8
    #: multiply-adds) or 1 (each column one stream from memory, which a CPU's prefetcher may
    #: follow better: on a Zen 4, 1.7x faster at (1e6, 100)).
    f_columns_per_walk: int = _COLUMNS
    #: 1: Fortran order's walked columns are read in `_simd.Lanes`, 8 features a register, in
    #: both passes (`_z_lane_columns`, `_dw_lane_columns`), or with `f_columns_per_walk` 1 in the
    #: dw pass only (the z pass one column at a time: on a Zen 4, from L2, the dw pass read 98
    #: GB/s in Lanes, 79 by LLVM's loops compiled for AVX-512, 95 for AVX2); 0: by LLVM's vector
    #: loops, which on an Emerald Rapids Xeon use 4-lane registers and finish each column's sum
    #: one lane at a time. The walk of `f_columns_per_walk` when 0. 2: in Lanes, in one pass of
    #: 8 streams side by side (`_stream_walk`): no blocks, f_block_bytes unused.
    f_lanes: int = 0
    #: Fortran order's X of at most this many bytes (the last-level cache's size where the plan
    #: was measured; 0: none) is walked as the next two fields say, in place of the two above:
    #: the walk that keeps the memory streaming need not be the one with the fewest instructions
    #: (on a Zen 4 with 32 MiB of L3, at n = 100: the one pass 0.83x to 0.96x C order's time up
    #: to 23 MB of X, columns one at a time 0.96x to 1.21x; from 76 MB 0.88x to 0.92x, and 0.81x
    #: to 0.87x).
    f_cache_bytes: int = 0
    f_cache_columns_per_walk: int = _COLUMNS
    f_cache_lanes: int = 0
    #: Fortran order's X beyond f_cache_bytes with at least this many features (0: none) is
    #: walked as the next two fields say: the walk that streams 100 columns from memory need not
    #: stream 1000 (on a Zen 3, one thread, 8 columns side by side took 0.84x the time of z one
    #: column at a time with dw in Lanes at (1e5, 1000), and 1.43x it at (1e6, 100)).
    f_wide_from_n: int = 0
    f_wide_columns_per_walk: int = _COLUMNS
    f_wide_lanes: int = 0


#: The constants measured on the reference machine (Zen 5, AVX-512), used where no plan is:
#: C order 8 MiB (n = 10 to 1000: 1024 to 4096 examples per block beat 256 to 512 by up to
#: 25 %); Fortran order walks columns in 256 KiB blocks, so the second read comes from L2 (at
#: (1e6, 100), 2 threads: 64 KiB 79 %, 256 KiB 97 %, 1 MiB 43 % of the read bandwidth).
DEFAULT_PLAN = KernelPlan(8 * 2**20, 256 * 2**10, 0)


@jit
def block_examples(n: int, itemsize: int, block_bytes: int) -> int:
    """Examples per block: about block_bytes of X, a multiple of 64, from 64 to 4096."""
    examples = block_bytes // (itemsize * n)
    return max(64, min(4096, examples // 64 * 64))


@jit(fastmath=REASSOCIATE)
def _z_rows(w: Floats, b: float, X: Floats, start: int, size: int, z: Floats) -> None:
    """z[:size] = b + w.T X[:, start:start+size], walking rows (C order), 8 at a time."""
    n = X.shape[0]
    for i in range(size):
        z[i] = b
    j = 0
    while j + _ROWS <= n:
        w0, w1, w2, w3 = w[j, 0], w[j + 1, 0], w[j + 2, 0], w[j + 3, 0]
        w4, w5, w6, w7 = w[j + 4, 0], w[j + 5, 0], w[j + 6, 0], w[j + 7, 0]
        r0, r1 = X[j, start : start + size], X[j + 1, start : start + size]
        r2, r3 = X[j + 2, start : start + size], X[j + 3, start : start + size]
        r4, r5 = X[j + 4, start : start + size], X[j + 5, start : start + size]
        r6, r7 = X[j + 6, start : start + size], X[j + 7, start : start + size]
        for i in range(size):
            z[i] += (w0 * r0[i] + w1 * r1[i] + w2 * r2[i] + w3 * r3[i]) + (
                w4 * r4[i] + w5 * r5[i] + w6 * r6[i] + w7 * r7[i]
            )
        j += _ROWS
    for jj in range(j, n):
        wj, row = w[jj, 0], X[jj, start : start + size]
        for i in range(size):
            z[i] += wj * row[i]


@jit(fastmath=REASSOCIATE)
def _dw_rows(X: Floats, start: int, size: int, dz: Floats, dw: Floats) -> None:
    """dw += X[:, start:start+size] dz[:size], walking rows (C order), 8 at a time."""
    n = X.shape[0]
    j = 0
    while j + _ROWS <= n:
        r0, r1 = X[j, start : start + size], X[j + 1, start : start + size]
        r2, r3 = X[j + 2, start : start + size], X[j + 3, start : start + size]
        r4, r5 = X[j + 4, start : start + size], X[j + 5, start : start + size]
        r6, r7 = X[j + 6, start : start + size], X[j + 7, start : start + size]
        a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = 0.0
        for i in range(size):
            d = dz[i]
            a0 += r0[i] * d
            a1 += r1[i] * d
            a2 += r2[i] * d
            a3 += r3[i] * d
            a4 += r4[i] * d
            a5 += r5[i] * d
            a6 += r6[i] * d
            a7 += r7[i] * d
        dw[j] += a0
        dw[j + 1] += a1
        dw[j + 2] += a2
        dw[j + 3] += a3
        dw[j + 4] += a4
        dw[j + 5] += a5
        dw[j + 6] += a6
        dw[j + 7] += a7
        j += _ROWS
    for jj in range(j, n):
        row = X[jj, start : start + size]
        total = 0.0
        for i in range(size):
            total += row[i] * dz[i]
        dw[jj] += total


@jit(fastmath=REASSOCIATE)
def _z_dw_rows(
    w: Floats, b: float, X: Floats, start: int, previous: int, size: int, z: Floats, dz: Floats,
    dw: Floats,
) -> None:  # fmt: skip
    """`_z_rows` of the block at start and `_dw_rows` of the block at previous (with its dz),
    both of size examples, in one walk over the rows, 8 at a time: the first comes from memory
    while the second, read a moment ago, comes from cache. The loops of `_z_rows` and `_dw_rows`,
    written out again in one: a call to each would be two walks."""
    n = X.shape[0]
    for i in range(size):
        z[i] = b
    j = 0
    while j + _ROWS <= n:
        w0, w1, w2, w3 = w[j, 0], w[j + 1, 0], w[j + 2, 0], w[j + 3, 0]
        w4, w5, w6, w7 = w[j + 4, 0], w[j + 5, 0], w[j + 6, 0], w[j + 7, 0]
        r0, r1 = X[j, start : start + size], X[j + 1, start : start + size]
        r2, r3 = X[j + 2, start : start + size], X[j + 3, start : start + size]
        r4, r5 = X[j + 4, start : start + size], X[j + 5, start : start + size]
        r6, r7 = X[j + 6, start : start + size], X[j + 7, start : start + size]
        end = previous + size
        p0, p1 = X[j, previous:end], X[j + 1, previous:end]
        p2, p3 = X[j + 2, previous:end], X[j + 3, previous:end]
        p4, p5 = X[j + 4, previous:end], X[j + 5, previous:end]
        p6, p7 = X[j + 6, previous:end], X[j + 7, previous:end]
        a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = 0.0
        for i in range(size):
            z[i] += (w0 * r0[i] + w1 * r1[i] + w2 * r2[i] + w3 * r3[i]) + (
                w4 * r4[i] + w5 * r5[i] + w6 * r6[i] + w7 * r7[i]
            )
            d = dz[i]
            a0 += p0[i] * d
            a1 += p1[i] * d
            a2 += p2[i] * d
            a3 += p3[i] * d
            a4 += p4[i] * d
            a5 += p5[i] * d
            a6 += p6[i] * d
            a7 += p7[i] * d
        dw[j] += a0
        dw[j + 1] += a1
        dw[j + 2] += a2
        dw[j + 3] += a3
        dw[j + 4] += a4
        dw[j + 5] += a5
        dw[j + 6] += a6
        dw[j + 7] += a7
        j += _ROWS
    for jj in range(j, n):  # the last n % 8 rows, one pass after the other
        wj, row = w[jj, 0], X[jj, start : start + size]
        for i in range(size):
            z[i] += wj * row[i]
        row = X[jj, previous : previous + size]
        total = 0.0
        for i in range(size):
            total += row[i] * dz[i]
        dw[jj] += total


@jit(fastmath=REASSOCIATE)
def _z_columns(w: Floats, b: float, X: Floats, start: int, size: int, z: Floats) -> None:
    """z[:size] = b + w.T X[:, start:start+size], walking columns (Fortran order), 8 at a time:
    each w[j] loaded feeds 8 multiply-adds, and 8 sums are reduced across SIMD lanes together.
    w is (n,) contiguous."""
    n = X.shape[0]
    i = 0
    while i + _COLUMNS <= size:
        c0, c1, c2, c3 = (
            X[:, start + i],
            X[:, start + i + 1],
            X[:, start + i + 2],
            X[:, start + i + 3],
        )
        c4, c5, c6, c7 = (
            X[:, start + i + 4],
            X[:, start + i + 5],
            X[:, start + i + 6],
            X[:, start + i + 7],
        )
        s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = 0.0
        for j in range(n):
            wj = w[j]
            s0 += wj * c0[j]
            s1 += wj * c1[j]
            s2 += wj * c2[j]
            s3 += wj * c3[j]
            s4 += wj * c4[j]
            s5 += wj * c5[j]
            s6 += wj * c6[j]
            s7 += wj * c7[j]
        z[i], z[i + 1], z[i + 2], z[i + 3] = b + s0, b + s1, b + s2, b + s3
        z[i + 4], z[i + 5], z[i + 6], z[i + 7] = b + s4, b + s5, b + s6, b + s7
        i += _COLUMNS
    _z_each_column(w, b, X, start + i, size - i, z[i:])


@jit(fastmath=REASSOCIATE)
def _z_each_column(w: Floats, b: float, X: Floats, start: int, size: int, z: Floats) -> None:
    """z[:size] = b + w.T X[:, start:start+size], one column after the other (Fortran order):
    each column one stream from memory. w is (n,) contiguous. A function of its own: as the
    tail of `_z_columns`' loop, LLVM compiled this loop 1.45x slower."""
    n = X.shape[0]
    for i in range(size):
        column = X[:, start + i]
        total = 0.0
        for j in range(n):
            total += w[j] * column[j]
        z[i] = b + total


@jit(fastmath=REASSOCIATE)
def _dw_columns(X: Floats, start: int, size: int, dz: Floats, dw: Floats) -> None:
    """dw += X[:, start:start+size] dz[:size], walking columns (Fortran order), 8 at a time:
    dw is loaded and stored once per 8 examples, not once per example."""
    n = X.shape[0]
    i = 0
    while i + _COLUMNS <= size:
        c0, c1, c2, c3 = (
            X[:, start + i],
            X[:, start + i + 1],
            X[:, start + i + 2],
            X[:, start + i + 3],
        )
        c4, c5, c6, c7 = (
            X[:, start + i + 4],
            X[:, start + i + 5],
            X[:, start + i + 6],
            X[:, start + i + 7],
        )
        d0, d1, d2, d3 = dz[i], dz[i + 1], dz[i + 2], dz[i + 3]
        d4, d5, d6, d7 = dz[i + 4], dz[i + 5], dz[i + 6], dz[i + 7]
        for j in range(n):
            dw[j] += (c0[j] * d0 + c1[j] * d1 + c2[j] * d2 + c3[j] * d3) + (
                c4[j] * d4 + c5[j] * d5 + c6[j] * d6 + c7[j] * d7
            )
        i += _COLUMNS
    for ii in range(i, size):
        column = X[:, start + ii]
        d = dz[ii]
        for j in range(n):
            dw[j] += column[j] * d


@jit
def columns_read_whole(X: Floats, rows: int = 2 * LANES) -> int:
    """How many of X's first columns can be read `rows` values from their start (16: two Lanes)
    without reading past X's last element: all but the last few where rows > n (X's columns
    contiguous)."""
    column_stride = X.strides[1]
    slack = (X.shape[1] - 1) * column_stride + (X.shape[0] - rows) * X.itemsize
    return 0 if slack < 0 else min(X.shape[1], slack // column_stride + 1)


@jit
def _lane_rows(n: int) -> int:
    """Rows a column of n features spans in whole Lanes: n rounded up to a multiple of 8."""
    return (n + LANES - 1) // LANES * LANES


@jit
def _z_lane_columns(w: Floats, b: float, X: Floats, start: int, size: int, z: Floats) -> None:
    """z[:size] = b + w.T X[:, start:start+size], X's columns contiguous: 8 columns side by
    side, each read 8 features a Lanes value (the last Lanes of a column masked to n), their 8
    sums made at once (`lane_sums`); X's last columns, whose last Lanes would read past X's
    end, one at a time. w is (`_lane_rows(n)`,), 0 past n."""
    n = X.shape[0]
    w_column = w.reshape(w.size, 1)
    whole = max(0, min(size, columns_read_whole(X, _lane_rows(n)) - start))
    i = 0
    while i + LANES <= whole:
        c = start + i
        s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = zeros()
        for j in range(0, n, LANES):
            wj, count = load_column(w_column, 0, j, LANES), min(LANES, n - j)
            s0 = fma(load_column(X, c, j, count), wj, s0)
            s1 = fma(load_column(X, c + 1, j, count), wj, s1)
            s2 = fma(load_column(X, c + 2, j, count), wj, s2)
            s3 = fma(load_column(X, c + 3, j, count), wj, s3)
            s4 = fma(load_column(X, c + 4, j, count), wj, s4)
            s5 = fma(load_column(X, c + 5, j, count), wj, s5)
            s6 = fma(load_column(X, c + 6, j, count), wj, s6)
            s7 = fma(load_column(X, c + 7, j, count), wj, s7)
        store(z, i, fma(lane_sums(s0, s1, s2, s3, s4, s5, s6, s7), 1.0, b))
        i += LANES
    _z_each_column(w, b, X, start + i, size - i, z[i:])


@jit(fastmath=REASSOCIATE)
def _dw_lane_columns(X: Floats, start: int, size: int, dz: Floats, dw_lanes: Floats) -> None:
    """dw_lanes[:n] += X[:, start:start+size] dz[:size], X's columns contiguous: 8 columns at a
    time, each 8 features of dw one Lanes value, loaded, updated by two chains of 4 multiply-adds
    (half the latency of one) and stored. dw_lanes is (`_lane_rows(n)`,): its last Lanes
    whole; X's last columns one at a time."""
    n = X.shape[0]
    whole = max(0, min(size, columns_read_whole(X, _lane_rows(n)) - start))
    dw_column = dw_lanes.reshape(dw_lanes.size, 1)
    i = 0
    while i + LANES <= whole:
        c = start + i
        d0, d1, d2, d3 = dz[i], dz[i + 1], dz[i + 2], dz[i + 3]
        d4, d5, d6, d7 = dz[i + 4], dz[i + 5], dz[i + 6], dz[i + 7]
        for j in range(0, n, LANES):
            count = min(LANES, n - j)
            even = fma(load_column(X, c, j, count), d0, load_column(dw_column, 0, j, LANES))
            odd = fma(load_column(X, c + 1, j, count), d1, 0.0)
            even = fma(load_column(X, c + 2, j, count), d2, even)
            odd = fma(load_column(X, c + 3, j, count), d3, odd)
            even = fma(load_column(X, c + 4, j, count), d4, even)
            odd = fma(load_column(X, c + 5, j, count), d5, odd)
            even = fma(load_column(X, c + 6, j, count), d6, even)
            odd = fma(load_column(X, c + 7, j, count), d7, odd)
            store(dw_lanes, j, fma(even, 1.0, odd))
        i += LANES
    for ii in range(i, size):
        column = X[:, start + ii]
        d = dz[ii]
        for j in range(n):
            dw_lanes[j] += column[j] * d


@jit
def _lanes_product(X: Floats, column: int, low: int, high: int, w_low: Any, w_high: Any) -> Any:
    """X[:, column] * w lane by lane, the column's first `low` features in w_low's lanes and the
    next `high` in w_high's, added: a Lanes value whose 8 lanes sum to the column's dot product."""
    product = fma(load_column(X, column, 0, low), w_low, 0.0)
    return fma(load_column(X, column, LANES, high), w_high, product)


@jit
def _z_short_columns(w: Floats, b: float, X: Floats, start: int, size: int, z: Floats) -> None:
    """z[:size] = b + w.T X[:, start:start+size] for n <= 16 features, X's columns contiguous:
    each column is two Lanes, and 8 columns' sums are made at once (`lane_sums`), not one
    reduction a column; X's last columns one at a time. w is (n,) contiguous."""
    n = X.shape[0]
    low, high = min(n, LANES), max(n - LANES, 0)
    w_column = w.reshape(n, 1)
    w_low = load_column_masked(w_column, 0, 0, low)
    w_high = load_column_masked(w_column, 0, LANES, high)
    whole = max(0, min(size, columns_read_whole(X) - start))
    i = 0
    while i + LANES <= whole:
        c = start + i
        sums = lane_sums(
            _lanes_product(X, c, low, high, w_low, w_high),
            _lanes_product(X, c + 1, low, high, w_low, w_high),
            _lanes_product(X, c + 2, low, high, w_low, w_high),
            _lanes_product(X, c + 3, low, high, w_low, w_high),
            _lanes_product(X, c + 4, low, high, w_low, w_high),
            _lanes_product(X, c + 5, low, high, w_low, w_high),
            _lanes_product(X, c + 6, low, high, w_low, w_high),
            _lanes_product(X, c + 7, low, high, w_low, w_high),
        )
        store(z, i, fma(sums, 1.0, b))
        i += LANES
    _z_each_column(w, b, X, start + i, size - i, z[i:])


@jit
def _dw_short_columns(X: Floats, start: int, size: int, dz: Floats, dw: Floats) -> None:
    """dw += X[:, start:start+size] dz[:size] for n <= 16 features, X's columns contiguous: dw's
    sums stay in two Lanes (registers) for the whole block."""
    n = X.shape[0]
    low, high = min(n, LANES), max(n - LANES, 0)
    whole = max(0, min(size, columns_read_whole(X) - start))
    sums_low, sums_high = zeros(), zeros()
    for i in range(whole):
        d = dz[i]
        sums_low = fma(load_column(X, start + i, 0, low), d, sums_low)
        sums_high = fma(load_column(X, start + i, LANES, high), d, sums_high)
    for i in range(whole, size):  # X's last columns: nothing read past its end
        d = dz[i]
        sums_low = fma(load_column_masked(X, start + i, 0, low), d, sums_low)
        sums_high = fma(load_column_masked(X, start + i, LANES, high), d, sums_high)
    for j in range(low):
        dw[j] += lane(sums_low, j)
    for j in range(high):
        dw[LANES + j] += lane(sums_high, j)


@jit
def _transpose_block(X: Floats, start: int, size: int, buffer: Floats) -> None:
    """buffer[:, :size] = X[:, start:start+size] (X in Fortran order), 8 columns at a time: each
    row of the buffer gets 8 adjacent values, one vector store."""
    n = X.shape[0]
    i = 0
    while i + _COLUMNS <= size:
        for j in range(n):
            for k in range(_COLUMNS):
                buffer[j, i + k] = X[j, start + i + k]
        i += _COLUMNS
    for ii in range(i, size):
        for j in range(n):
            buffer[j, ii] = X[j, start + ii]


@jit(fastmath=REASSOCIATE)
def accumulate(
    w: Floats, b: float, X: Floats, Y: Floats, lo: int, hi: int, dw: Floats, plan: KernelPlan
) -> float:
    """Add the unnormalized gradient of examples lo..hi to dw (n,); return their sum of dz.

    dw and the return value are float64 whatever the dtype of X (float32 X is read as such).
    `plan` sets the block sizes, whether a block of X in Fortran order is transposed or how
    its columns are walked (8 or one side by side, in Lanes or by LLVM's loops; one way for X
    in the last-level cache, another from memory), and whether C order's passes are pipelined.
    """
    return _by_layout(w, b, X, Y, lo, hi, dw, plan)


def _by_layout(
    w: Floats, b: float, X: Floats, Y: Floats, lo: int, hi: int, dw: Floats, plan: KernelPlan
) -> float:
    """`_rows` or `_columns`, chosen by X's type where it tells (compiled code only)."""
    raise TypeError("_by_layout is called from compiled code only")


@overload(_by_layout)
def _by_layout_of_type(w, b, X, Y, lo, hi, dw, plan):  # type: ignore[no-untyped-def]
    # (numba matches the implementation's parameters to these, annotations included: none)
    # X typed C order (its rows contiguous) or Fortran order (its columns, n >= 2: a single row
    # is typed C) is walked one way only: the other walks are not compiled for it at all, which
    # halves the compilation of a C-order kernel (10 s instead of 24 on a Zen 3). An overload's
    # implementation is a Python function, not a compiled one: hence the lambdas.
    if X.layout == "C":
        return lambda w, b, X, Y, lo, hi, dw, plan: _rows(w, b, X, Y, lo, hi, dw, plan)  # noqa: PLW0108
    if X.layout == "F":
        return lambda w, b, X, Y, lo, hi, dw, plan: _columns(w, b, X, Y, lo, hi, dw, plan)  # noqa: PLW0108
    return lambda w, b, X, Y, lo, hi, dw, plan: (  # any view: by its strides
        _rows(w, b, X, Y, lo, hi, dw, plan) if X.strides[1] <= X.strides[0]
        else _columns(w, b, X, Y, lo, hi, dw, plan)
    )  # fmt: skip


@jit(fastmath=REASSOCIATE)
def _rows(
    w: Floats, b: float, X: Floats, Y: Floats, lo: int, hi: int, dw: Floats, plan: KernelPlan
) -> float:
    """`accumulate` for X whose rows are contiguous (C order, or a view like it)."""
    n = X.shape[0]
    block = min(block_examples(n, X.itemsize, plan.c_block_bytes), max(hi - lo, 1))
    z = np.empty(block)
    dz = np.empty(block)
    if n < plan.c_pipeline_below_n:
        return _pipelined_rows(w, b, X, Y[0], lo, hi, block, dw, z, dz)
    y = Y[0]
    db = 0.0
    for start in range(lo, hi, block):
        size = min(block, hi - start)
        _z_rows(w, b, X, start, size, z)
        db += sigmoid_minus_y(z, y[start : start + size], size, dz)
        _dw_rows(X, start, size, dz, dw)
    return db


@jit(fastmath=REASSOCIATE)
def _columns(
    w: Floats, b: float, X: Floats, Y: Floats, lo: int, hi: int, dw: Floats, plan: KernelPlan
) -> float:
    """`accumulate` for X whose rows are not contiguous (Fortran order, or another view)."""
    n = X.shape[0]
    columns_contiguous = X.strides[0] == X.itemsize
    short_columns = columns_contiguous and n <= SHORT_COLUMN_MAX_N
    transpose = not short_columns and n < plan.f_transpose_below_n
    in_cache = n * X.shape[1] * X.itemsize <= plan.f_cache_bytes
    wide = not in_cache and 0 < plan.f_wide_from_n <= n
    f_lanes, per_walk = (
        (plan.f_cache_lanes, plan.f_cache_columns_per_walk) if in_cache
        else (plan.f_wide_lanes, plan.f_wide_columns_per_walk) if wide
        else (plan.f_lanes, plan.f_columns_per_walk)
    )  # fmt: skip
    lanes = columns_contiguous and not short_columns and not transpose and f_lanes >= 1
    # The one pass (f_lanes 2) has no blocks, and buffers of its own: none of a block's here.
    unblocked = lanes and f_lanes == 2
    block = (
        1 if unblocked
        else min(block_examples(n, X.itemsize, plan.f_block_bytes), max(hi - lo, 1))
    )  # fmt: skip
    z = np.empty(block)
    dz = np.empty(block)
    w_vector = np.ascontiguousarray(w[:, 0])  # whatever w's strides: the column loops vectorize
    if lanes:
        return (
            _stream_walk(w_vector, b, X, Y[0], lo, hi, dw) if unblocked
            else _lane_walk(w_vector, b, X, Y[0], lo, hi, block, per_walk == 1, dw, z, dz)
        )  # fmt: skip
    buffer = np.empty((n if transpose else 0, block), X.dtype)
    y = Y[0]
    db = 0.0
    for start in range(lo, hi, block):
        size = min(block, hi - start)
        if transpose:
            _transpose_block(X, start, size, buffer)
            _z_rows(w, b, buffer, 0, size, z)
        elif short_columns:
            _z_short_columns(w_vector, b, X, start, size, z)
        elif per_walk == 1:
            _z_each_column(w_vector, b, X, start, size, z)
        else:
            _z_columns(w_vector, b, X, start, size, z)
        db += sigmoid_minus_y(z, y[start : start + size], size, dz)
        if transpose:
            _dw_rows(buffer, 0, size, dz, dw)
        elif short_columns:
            _dw_short_columns(X, start, size, dz, dw)
        else:
            _dw_columns(X, start, size, dz, dw)
    return db


@jit(fastmath=REASSOCIATE)
def _lane_walk(
    w: Floats, b: float, X: Floats, y: Floats, lo: int, hi: int, block: int,
    z_one_at_a_time: bool, dw: Floats, z: Floats, dz: Floats,
) -> float:  # fmt: skip
    """`accumulate` in Fortran order with the columns walked in Lanes (w (n,) contiguous), in
    the dw pass and, unless z_one_at_a_time, in the z pass: w and dw's sums in buffers of whole
    Lanes, 0 past n, dw's added to dw at the end. Returns the sum of dz."""
    n = X.shape[0]
    w_lanes = np.zeros(_lane_rows(n))
    w_lanes[:n] = w
    dw_lanes = np.zeros(_lane_rows(n))
    db = 0.0
    for start in range(lo, hi, block):
        size = min(block, hi - start)
        if z_one_at_a_time:
            _z_each_column(w, b, X, start, size, z)
        else:
            _z_lane_columns(w_lanes, b, X, start, size, z)
        db += sigmoid_minus_y(z, y[start : start + size], size, dz)
        _dw_lane_columns(X, start, size, dz, dw_lanes)
    for j in range(n):
        dw[j] += dw_lanes[j]
    return db


@jit
def _stream_steps(n: int, itemsize: int) -> int:
    """Columns of each stream a step of `_stream_walk`: about _STEP_BYTES of X, 1 to 8."""
    return max(1, min(8, _STEP_BYTES // (LANES * n * itemsize)))


@jit(fastmath=REASSOCIATE)
def _stream_walk(  # noqa: PLR0915
    w: Floats, b: float, X: Floats, y: Floats, lo: int, hi: int, dw: Floats
) -> float:  # fmt: skip
    """`accumulate` in Fortran order in one pass, X's columns contiguous (w (n,) contiguous):
    examples lo..hi as 8 streams of `apart` adjacent columns read side by side, 8 features a
    Lanes value (columns c, c + apart, ..., c + 7 apart at once, as `_z_lane_columns` reads 8
    adjacent ones), a few columns of each stream a step: their z, then dz, and their dw in the
    walk over the next step's columns (pipelined, as `_pipelined_rows`), so that the next
    columns' loads from memory are in flight while these are read again from L1. X's last
    columns (whose last Lanes would read past its end) and the few left over one at a time.
    Returns the sum of dz. The loops of `_z_lane_columns` and `_dw_lane_columns` written out
    again, in this one function: on an Ice Lake Xeon, with a step of 8 columns a function that
    both walks call, both ran 1.5x to 1.9x slower in cache (inlined or not); with each kind of
    step a function of its own, this walk took 1.06x [1.00, 1.13] its time at (1e6, 100) and
    1.12x [1.10, 1.15] at (2000, 100) (two threads, 9 rounds)."""
    n = X.shape[0]
    w_lanes = np.zeros(_lane_rows(n))
    w_lanes[:n] = w
    w_column = w_lanes.reshape(w_lanes.size, 1)
    dw_lanes = np.zeros(_lane_rows(n))
    dw_column = dw_lanes.reshape(dw_lanes.size, 1)
    steps = _stream_steps(n, X.itemsize)
    dz, dz_next = np.empty(steps * LANES), np.empty(steps * LANES)
    whole = max(lo, min(hi, columns_read_whole(X, _lane_rows(n))))
    apart = (whole - lo) // LANES
    dz_sums = zeros()
    previous, previous_count = lo, 0
    # One step more than the columns need: its count 0, it makes the last step's dw.
    for first in range(lo, lo + apart + steps, steps):
        count = max(0, min(steps, lo + apart - first))
        if count == previous_count:
            for u in range(count):
                c, p, at = first + u, previous + u, u * LANES
                d0, d1, d2, d3 = dz[at], dz[at + 1], dz[at + 2], dz[at + 3]
                d4, d5, d6, d7 = dz[at + 4], dz[at + 5], dz[at + 6], dz[at + 7]
                s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = zeros()
                for j in range(0, n, LANES):
                    wj, rows = load_column(w_column, 0, j, LANES), min(LANES, n - j)
                    s0 = fma(load_column(X, c, j, rows), wj, s0)
                    s1 = fma(load_column(X, c + apart, j, rows), wj, s1)
                    s2 = fma(load_column(X, c + 2 * apart, j, rows), wj, s2)
                    s3 = fma(load_column(X, c + 3 * apart, j, rows), wj, s3)
                    even = fma(load_column(X, p, j, rows), d0, load_column(dw_column, 0, j, LANES))
                    odd = fma(load_column(X, p + apart, j, rows), d1, 0.0)
                    even = fma(load_column(X, p + 2 * apart, j, rows), d2, even)
                    odd = fma(load_column(X, p + 3 * apart, j, rows), d3, odd)
                    s4 = fma(load_column(X, c + 4 * apart, j, rows), wj, s4)
                    s5 = fma(load_column(X, c + 5 * apart, j, rows), wj, s5)
                    s6 = fma(load_column(X, c + 6 * apart, j, rows), wj, s6)
                    s7 = fma(load_column(X, c + 7 * apart, j, rows), wj, s7)
                    even = fma(load_column(X, p + 4 * apart, j, rows), d4, even)
                    odd = fma(load_column(X, p + 5 * apart, j, rows), d5, odd)
                    even = fma(load_column(X, p + 6 * apart, j, rows), d6, even)
                    odd = fma(load_column(X, p + 7 * apart, j, rows), d7, odd)
                    store(dw_lanes, j, fma(even, 1.0, odd))
                z_streams = fma(lane_sums(s0, s1, s2, s3, s4, s5, s6, s7), 1.0, b)
                dz_streams = fma(gather(y, c, apart), -1.0, sigmoid_lanes(z_streams))
                store(dz_next, at, dz_streams)
                dz_sums = fma(dz_streams, 1.0, dz_sums)
        else:  # the first step, the last (shorter), the one after it: their passes apart
            for u in range(previous_count):
                p, at = previous + u, u * LANES
                d0, d1, d2, d3 = dz[at], dz[at + 1], dz[at + 2], dz[at + 3]
                d4, d5, d6, d7 = dz[at + 4], dz[at + 5], dz[at + 6], dz[at + 7]
                for j in range(0, n, LANES):
                    rows = min(LANES, n - j)
                    even = fma(load_column(X, p, j, rows), d0, load_column(dw_column, 0, j, LANES))
                    odd = fma(load_column(X, p + apart, j, rows), d1, 0.0)
                    even = fma(load_column(X, p + 2 * apart, j, rows), d2, even)
                    odd = fma(load_column(X, p + 3 * apart, j, rows), d3, odd)
                    even = fma(load_column(X, p + 4 * apart, j, rows), d4, even)
                    odd = fma(load_column(X, p + 5 * apart, j, rows), d5, odd)
                    even = fma(load_column(X, p + 6 * apart, j, rows), d6, even)
                    odd = fma(load_column(X, p + 7 * apart, j, rows), d7, odd)
                    store(dw_lanes, j, fma(even, 1.0, odd))
            for u in range(count):
                c, at = first + u, u * LANES
                s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = zeros()
                for j in range(0, n, LANES):
                    wj, rows = load_column(w_column, 0, j, LANES), min(LANES, n - j)
                    s0 = fma(load_column(X, c, j, rows), wj, s0)
                    s1 = fma(load_column(X, c + apart, j, rows), wj, s1)
                    s2 = fma(load_column(X, c + 2 * apart, j, rows), wj, s2)
                    s3 = fma(load_column(X, c + 3 * apart, j, rows), wj, s3)
                    s4 = fma(load_column(X, c + 4 * apart, j, rows), wj, s4)
                    s5 = fma(load_column(X, c + 5 * apart, j, rows), wj, s5)
                    s6 = fma(load_column(X, c + 6 * apart, j, rows), wj, s6)
                    s7 = fma(load_column(X, c + 7 * apart, j, rows), wj, s7)
                z_streams = fma(lane_sums(s0, s1, s2, s3, s4, s5, s6, s7), 1.0, b)
                dz_streams = fma(gather(y, c, apart), -1.0, sigmoid_lanes(z_streams))
                store(dz_next, at, dz_streams)
                dz_sums = fma(dz_streams, 1.0, dz_sums)
        dz, dz_next = dz_next, dz
        previous, previous_count = first, count
    db: float = lane_total(dz_sums)
    z = np.empty(steps * LANES)
    for start in range(lo + LANES * apart, hi, steps * LANES):
        size = min(steps * LANES, hi - start)
        _z_each_column(w, b, X, start, size, z)
        db += sigmoid_minus_y(z, y[start : start + size], size, dz)
        _dw_columns(X, start, size, dz, dw_lanes)
    for j in range(n):
        dw[j] += dw_lanes[j]
    return db


@jit(fastmath=REASSOCIATE)
def _pipelined_rows(
    w: Floats, b: float, X: Floats, y: Floats, lo: int, hi: int, block: int, dw: Floats,
    z: Floats, dz: Floats,
) -> float:  # fmt: skip
    """`accumulate` in C order, each block's dw pass made in the walk over the next block's
    rows (`_z_dw_rows`); the last block's alone. Returns the sum of dz."""
    dz_next = np.empty(block)
    previous, previous_size = lo, min(block, hi - lo)
    _z_rows(w, b, X, previous, previous_size, z)
    db = sigmoid_minus_y(z, y[lo : lo + previous_size], previous_size, dz)
    for start in range(lo + block, hi, block):
        size = min(block, hi - start)
        if size == previous_size:
            _z_dw_rows(w, b, X, start, previous, size, z, dz, dw)
        else:  # the last block, shorter
            _dw_rows(X, previous, previous_size, dz, dw)
            _z_rows(w, b, X, start, size, z)
        db += sigmoid_minus_y(z, y[start : start + size], size, dz_next)
        previous, previous_size = start, size
        dz, dz_next = dz_next, dz
    _dw_rows(X, previous, previous_size, dz, dw)
    return db


@jit
def finish(dw: NDArray[np.float64], db: float, m: int) -> tuple[NDArray[np.float64], float]:
    """(dw / m as an (n, 1) column, db / m), dividing in place."""
    for j in range(dw.size):
        dw[j] /= m
    return dw.reshape(dw.size, 1), db / m
