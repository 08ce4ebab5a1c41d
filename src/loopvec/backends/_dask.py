"""What the Dask backends share: X and Y on the cluster, chunked by examples, and the chunk work.

The lesson's gradient is a sum over examples, so it splits over chunks of examples: each chunk's
partial sums (X_c dZ_c.T and sum dZ_c, or the loss terms' sum) are added by a tree reduction, and
only those n + 1 floats travel back to the client. X is chunked along examples only (a chunk holds
every feature of its examples), and Y alike.

numpy inputs are moved to the cluster once, before any timing (`to_native`: scattered to the
workers chunk by chunk); dask arrays (from Zarr, for example) are used as they are and never
loaded whole.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

import dask.array as da
import numpy as np
from dask.delayed import delayed
from distributed import Future, wait
from numpy.typing import NDArray

from loopvec.backends._blocked import accumulate
from loopvec.cluster import get_client
from loopvec.problem import tiny_problem

#: Bytes of X per chunk: a task's work (about 10 ms at memory speed) stays far above its
#: scheduling overhead (about 1 ms), while every worker still gets several chunks.
CHUNK_BYTES = 64 * 2**20


def chunk_examples(n: int, m: int, itemsize: int, workers: int) -> int:
    """Examples per chunk: about CHUNK_BYTES of X, and at least one chunk per worker."""
    by_bytes = max(1, CHUNK_BYTES // (n * itemsize))
    return max(1, min(by_bytes, math.ceil(m / max(workers, 1))))


def example_chunks(X: NDArray[Any]) -> tuple[int, ...]:
    """The chunks of examples a numpy X (n, m) is split into on the cluster (`chunk_examples`
    examples each, the last one shorter)."""
    n, m = X.shape
    workers = len(get_client().scheduler_info()["workers"])
    size = chunk_examples(n, m, X.dtype.itemsize, workers)
    return tuple(min(size, m - start) for start in range(0, m, size))


def by_examples(X: Any, Y: Any) -> tuple[Any, Any]:
    """X (n, m) and Y (1, m) as dask arrays chunked alike along examples only: X's own chunks
    of examples, or for numpy X `example_chunks`."""
    if isinstance(X, da.Array):
        X = X.rechunk({0: -1})
    else:
        X = da.from_array(X, ((X.shape[0],), example_chunks(X)))
    Y = (Y if isinstance(Y, da.Array) else da.from_array(Y)).rechunk((1, X.chunks[1]))
    return X, Y


#: Share of the workers' memory that dask inputs may fill when persisted: beyond it they are
#: streamed from their store at every gradient (out of core).
PERSIST_SHARE = 0.5


def to_native(w: Any, b: float, X: Any, Y: Any) -> tuple[Any, float, Any, Any]:
    """numpy X and Y scattered to the workers chunk by chunk (done before timing); dask arrays
    rechunked by examples only and persisted on the workers where they fit in PERSIST_SHARE of
    their memory, else left in their store (read at every gradient: out of core)."""
    if isinstance(X, da.Array) or isinstance(Y, da.Array):
        X_chunked, Y_chunked = by_examples(X, Y)
        client = get_client()
        memory = sum(w["memory_limit"] for w in client.scheduler_info()["workers"].values())
        if X_chunked.nbytes + Y_chunked.nbytes <= PERSIST_SHARE * memory:
            X_chunked, Y_chunked = client.persist([X_chunked, Y_chunked])
            wait([X_chunked, Y_chunked])
    else:
        chunks = example_chunks(X)
        X_chunked, Y_chunked = scattered(X, chunks), scattered(Y, chunks)
    return np.asarray(w), float(b), X_chunked, Y_chunked


@dataclass(frozen=True)
class Scattered:
    """A numpy (rows, m) array on the workers: one future per chunk of examples, in order."""

    futures: list[Future[Any]]
    shape: tuple[int, int]


def scatter(A: NDArray[Any], chunks: tuple[int, ...]) -> Scattered:
    """`A`'s chunks of examples sent to the workers (client.scatter), each a future."""
    starts = np.cumsum((0, *chunks))
    pieces = [np.ascontiguousarray(A[:, s:e]) for s, e in itertools.pairwise(starts)]
    futures = get_client().scatter(pieces, hash=False)  # same data, other keys: no races
    return Scattered(futures, (int(A.shape[0]), int(A.shape[1])))


def tree_sum(parts: list[Future[Any]], fan_in: int = 8) -> NDArray[np.float64]:
    """The sum of the arrays that `parts` hold, added on the workers fan_in at a time."""
    client = get_client()
    while len(parts) > 1:
        parts = [
            client.submit(_add, parts[i : i + fan_in], pure=False)
            for i in range(0, len(parts), fan_in)
        ]
    total: NDArray[np.float64] = parts[0].result()
    return total


def _add(arrays: list[NDArray[np.float64]]) -> NDArray[np.float64]:
    total: NDArray[np.float64] = np.sum(arrays, axis=0)
    return total


def scattered(A: NDArray[Any], chunks: tuple[int, ...]) -> Any:
    """A numpy (rows, m) array as a dask array whose `chunks` of examples already sit on the
    workers (client.scatter: the data travels once, not inside every task graph)."""
    futures = scatter(A, chunks).futures
    # delayed(future): the graph holds the future itself, so the data stays on the workers
    # for as long as the array lives.
    parts = [
        da.from_delayed(delayed(future), shape=(A.shape[0], size), dtype=A.dtype)
        for future, size in zip(futures, chunks, strict=True)
    ]
    return da.concatenate(parts, axis=1)


def to_numpy(result: tuple[NDArray[np.floating], float]) -> tuple[NDArray[np.floating], float]:
    return result  # computed on the cluster, brought back as numpy already


def compute(*collections: Any) -> Any:
    """The values of dask collections, computed on the cluster (`loopvec.cluster`)."""
    return get_client().compute(list(collections), sync=True)


def chunk_sums(
    X_chunk: NDArray[Any], Y_chunk: NDArray[Any], w: NDArray[Any], b: float
) -> NDArray[np.float64]:
    """One chunk's (sum_i x_i dz_i, sum_i dz_i) as an (n + 1, 1) column: numba_fused's single
    pass over the chunk (nogil, so a worker's threads and the event loop run beside it)."""
    n = X_chunk.shape[0]
    dw = np.zeros(n)
    db = accumulate(w, b, X_chunk, Y_chunk, 0, X_chunk.shape[1], dw)
    out = np.empty((n + 1, 1))
    out[:n, 0], out[n, 0] = dw, db
    return out


def chunk_loss(
    X_chunk: NDArray[Any], Y_chunk: NDArray[Any], w: NDArray[Any], b: float
) -> NDArray[np.float64]:
    """One chunk's sum of softplus(z) - y z (the cross-entropy terms), as a (1, 1) array."""
    z = w.T.astype(np.float64) @ X_chunk + b
    softplus = np.maximum(z, 0.0) + np.log1p(np.exp(-np.abs(z)))
    return np.array([[float(np.sum(softplus - Y_chunk * z))]])


def per_chunk(function: Any, X: Any, Y: Any, rows: int, **kwargs: Any) -> Any:
    """`function(X_chunk, Y_chunk, **kwargs)` for every chunk, each an (rows, 1) array, side by
    side as one (rows, chunks) dask array (sum it along axis 1: a tree reduction)."""
    chunks = ((rows,), (1,) * X.numblocks[1])
    return da.map_blocks(function, X, Y, chunks=chunks, dtype=np.float64, **kwargs)


def _check_chunk(X_chunk: Any, Y_chunk: Any, block_info: Any = None) -> Any:
    """X_chunk as it is, after checking it and Y_chunk's values: ValueError naming the chunk."""
    start, stop = block_info[0]["array-location"][1] if block_info else (0, X_chunk.shape[1])
    where = f"in the chunk of examples {start} to {stop - 1}"
    if not np.all(np.isfinite(X_chunk)):
        feature, example = np.argwhere(~np.isfinite(X_chunk))[0]
        value = X_chunk[feature, example]
        raise ValueError(
            f"X must be finite; got {value} at index ({feature}, {start + example}) {where}"
        )
    labels = Y_chunk[0]
    bad = ~((labels >= 0) & (labels <= 1))  # also NaN
    if np.any(bad):
        example = int(np.argmax(bad))
        raise ValueError(
            f"Y must hold labels in [0, 1]; got {labels[example]} at example {start + example} "
            f"{where}"
        )
    return X_chunk


def checked(X: Any, Y: Any) -> tuple[Any, Any]:
    """X and Y chunked by examples, X's chunks checking their values (and Y's) as they are read:
    the check costs no pass over the data of its own, and a bad value names its chunk."""
    X, Y = by_examples(X, Y)
    return da.map_blocks(_check_chunk, X, Y, dtype=X.dtype, chunks=X.chunks), Y


def warm_chunk_kernels() -> None:
    """Compile (or load from the cache) what a chunk runs, for float64 and float32, C and F."""
    for dtype in ("float64", "float32"):
        for layout in ("C", "F"):
            p = tiny_problem(dtype, layout)
            chunk_sums(p.X, p.Y, p.w, p.b)


def cross_entropy(w: NDArray[Any], b: float, X: Any, Y: Any) -> float:
    """Mean cross-entropy of dask X and Y, summed chunk by chunk on the cluster."""
    (total,) = compute(per_chunk(chunk_loss, X, Y, 1, w=w, b=b).sum())
    return float(total) / int(X.shape[1])
