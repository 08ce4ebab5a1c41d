"""What the Dask backends share: X and Y on the cluster, chunked by examples, and the chunk work.

The lesson's gradient is a sum over examples, so it splits over chunks of examples: each chunk's
partial sums (X_c dZ_c.T and sum dZ_c, or the loss terms' sum) are added by a tree reduction, and
only those n + 1 floats travel back to the client. X is chunked along examples only (a chunk holds
every feature of its examples), and Y alike.

Inputs are moved to the cluster once, before any timing (`to_native`): numpy arrays scattered to
the workers chunk by chunk, dask arrays that fit persisted there; both are then held as futures,
one per chunk (`Scattered`). Dask arrays too large for the workers' memory stay in their store
and are read chunk by chunk at every gradient (out of core), never loaded whole.
"""

from __future__ import annotations

import itertools
import math
import uuid
from concurrent.futures import CancelledError
from dataclasses import dataclass
from typing import Any
from weakref import WeakSet

import dask.array as da
import numpy as np
from distributed import Future, futures_of, wait
from distributed.diagnostics.plugin import WorkerPlugin
from numpy.typing import NDArray

from loopvec import cluster
from loopvec.backends._blocked import DEFAULT_PLAN, KernelPlan, accumulate
from loopvec.backends._jit import compiling_alone
from loopvec.cluster import workers_of
from loopvec.problem import tiny_problem

#: Most bytes of X in one scattered chunk. A task costs about 1 ms of scheduling, and on a small
#: machine more, since the scheduler waits for a core that the workers' kernels hold: measured
#: here at m = 4e6, n = 100 on 2 workers, 48 chunks of 64 MiB took 246 ms a gradient, 12 of
#: 256 MiB 145 ms and 2 (one per worker) 110 ms, of which 90 ms was the kernels. So a numpy X is
#: split into one chunk per worker, or more of at most this size.
MAX_CHUNK_BYTES = 2**30


_warmed: WeakSet[Any] = WeakSet()  # clients whose workers have compiled the chunk kernels


class _Warm(WorkerPlugin):
    """On every worker, now and as it joins: compile (or load) the chunk kernels."""

    def setup(self, worker: Any) -> None:
        warm_chunk_kernels()


def get_client() -> Any:
    """The client of `loopvec.cluster.get_client`, the chunk kernels compiled (or loaded from the
    cache) on every worker before it is handed out, so that no timing ever includes a worker's
    compilation. Warmed once per client: a new client (a new cluster) is warmed again."""
    client = cluster.get_client()
    if client not in _warmed:
        client.register_plugin(_Warm(), name="loopvec-warm")  # runs on every worker, and joiners
        _warmed.add(client)
    return client


def example_chunks(n: int, m: int, itemsize: int, workers: int) -> tuple[int, ...]:
    """The chunks of examples (their sizes, in order) a numpy X (n, m) is scattered in: near
    equal, a multiple of `workers` of them, each at most MAX_CHUNK_BYTES (or one example)."""
    per_worker = math.ceil(n * m * itemsize / (max(workers, 1) * MAX_CHUNK_BYTES))
    count = min(m, max(workers, 1) * max(per_worker, 1))
    return tuple(len(part) for part in np.array_split(np.empty(m, dtype=np.bool_), count))


def by_examples(X: Any, Y: Any) -> tuple[Any, Any]:
    """X (n, m) and Y (1, m) dask arrays chunked alike along examples only (X's own chunks of
    examples: every feature of an example in one chunk)."""
    X = X.rechunk({0: -1})
    return X, Y.rechunk((1, X.chunks[1]))


#: What a gradient raises when chunks it needs went with a worker that died: scattered chunks
#: have no recipe to compute them again (persisted chunks of a store are read again by Dask).
LOST_DATA_ERRORS: tuple[type[BaseException], ...] = (CancelledError,)


#: Share of the workers' memory that dask inputs may fill when persisted: beyond it they are
#: streamed from their store at every gradient (out of core).
PERSIST_SHARE = 0.5


@dataclass(frozen=True)
class Scattered:
    """A (rows, m) array held on the workers: one future per chunk of examples, in order."""

    futures: list[Future[Any]]
    shape: tuple[int, int]
    chunks: tuple[int, ...]  #: examples per chunk
    dtype: np.dtype[Any]


def to_native(
    w: Any, b: float, X: Any, Y: Any, chunks: tuple[int, ...] | None = None
) -> tuple[Any, float, Any, Any]:
    """X and Y on the workers before any timing: numpy inputs scattered in `chunks` of examples
    (default `example_chunks`), each chunk of X beside its chunk of Y; dask arrays chunked by
    examples and persisted where they fit in PERSIST_SHARE of the workers' memory (their values
    checked there, once), else left in their store, read and checked at every gradient (out of
    core)."""
    client = get_client()
    if isinstance(X, da.Array) or isinstance(Y, da.Array):
        X, Y = by_examples(X, Y)
        memory = sum(w["memory_limit"] for w in client.scheduler_info()["workers"].values())
        if X.nbytes + Y.nbytes <= PERSIST_SHARE * memory:
            X, Y = persisted(X), persisted(Y)
            check_held(X, Y)  # once, before timing: the held chunks are the input's own
        else:
            X, Y = checked(X, Y)  # in the gradient's own pass over each chunk it streams
    else:
        n, m = X.shape
        workers = workers_of(client)
        chunks = chunks or example_chunks(n, m, X.dtype.itemsize, len(workers))
        X, Y = scatter(client, X, Y, chunks, workers)
    return np.asarray(w), float(b), X, Y


def scatter(
    client: Any, X: NDArray[Any], Y: NDArray[Any], chunks: tuple[int, ...], workers: list[str]
) -> tuple[Scattered, Scattered]:
    """X's and Y's chunks of examples sent to the workers in turn, a chunk of X and its chunk of
    Y to the same worker (no transfer at a gradient); one chunk copied at a time. Each chunk's
    key is a dask array's key, (name, 0, k), so that `as_dask_array` needs no task of its own."""
    starts = np.cumsum((0, *chunks))
    x_futures: list[Future[Any]] = []
    y_futures: list[Future[Any]] = []
    names = [f"loopvec-{label}-{uuid.uuid4().hex}" for label in ("X", "Y")]  # unique: no races
    for k, (start, stop) in enumerate(itertools.pairwise(starts)):
        where = [workers[k % len(workers)]]
        for A, name, futures in ((X, names[0], x_futures), (Y, names[1], y_futures)):
            piece = A[:, start:stop]  # of data.T (Fortran order), still Fortran: no reordering
            if not (piece.flags.c_contiguous or piece.flags.f_contiguous):
                piece = np.ascontiguousarray(piece)  # any other view: sent as one block
            futures.append(client.scatter({(name, 0, k): piece}, workers=where)[(name, 0, k)])
    return (
        Scattered(x_futures, X.shape, chunks, X.dtype),
        Scattered(y_futures, Y.shape, chunks, Y.dtype),
    )


def persisted(A: Any) -> Scattered:
    """A dask array chunked along examples only, computed onto the workers and held there as
    one future per chunk; an error in computing a chunk (a bad value) raises here."""
    client = get_client()
    (A,) = client.persist([A])
    futures = {future.key: future for future in futures_of(A)}
    ordered = [futures[key] for key in A.__dask_keys__()[0]]
    wait(ordered)
    for future in ordered:
        if future.status == "error":
            future.result()  # raises the chunk's error
    return Scattered(ordered, A.shape, A.chunks[1], A.dtype)


def tree_sum(parts: list[Future[Any]], fan_in: int = 8) -> NDArray[np.float64]:
    """The sum of the arrays that `parts` hold, added on the workers fan_in at a time; the last
    fan_in or fewer come back to the client (a few floats each) and are added there."""
    client = get_client()
    while len(parts) > fan_in:
        parts = [
            client.submit(_add, parts[i : i + fan_in], pure=False)
            for i in range(0, len(parts), fan_in)
        ]
    return _add(client.gather(parts))


def _add(arrays: list[NDArray[np.float64]]) -> NDArray[np.float64]:
    total: NDArray[np.float64] = np.sum(arrays, axis=0)
    return total


def as_dask_array(A: Any) -> Any:
    """A dask array of A, which may be `Scattered`: an array already persisted, its chunks the
    held futures themselves (no task, no copy)."""
    if not isinstance(A, Scattered):
        return A
    name = A.futures[0].key[0]  # type: ignore[index]  # keys (name, 0, k): a dask array's
    graph = {future.key: future for future in A.futures}
    return da.Array(graph, name, ((A.shape[0],), A.chunks), dtype=A.dtype)


def to_numpy(result: tuple[NDArray[np.floating], float]) -> tuple[NDArray[np.floating], float]:
    return result  # computed on the cluster, brought back as numpy already


def compute(*collections: Any) -> Any:
    """The values of dask collections, computed on the cluster (`loopvec.cluster`)."""
    return get_client().compute(list(collections), sync=True)


def chunk_sums(
    X_chunk: NDArray[Any], Y_chunk: NDArray[Any], w: NDArray[Any], b: float, plan: KernelPlan
) -> NDArray[np.float64]:
    """One chunk's (sum_i x_i dz_i, sum_i dz_i) as an (n + 1, 1) column: numba_fused's single
    pass over the chunk (nogil, so a worker's threads and the event loop run beside it), with
    the client's kernel plan: a worker never tunes, its measurements would disturb the others'."""
    n = X_chunk.shape[0]
    dw = np.zeros(n)
    db = accumulate(w, b, X_chunk, Y_chunk, 0, X_chunk.shape[1], dw, plan)
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


def summed(function: Any, X: Any, Y: Any, rows: int, **kwargs: Any) -> NDArray[np.float64]:
    """The sum over chunks of `function(X_chunk, Y_chunk, **kwargs)`, each an (rows, 1) array,
    as (rows,): a task per chunk and a tree of sums, on chunks held on the workers
    (`Scattered`: tasks submitted straight to their futures, no graph to build) or on dask
    arrays (a graph, each chunk read from its store as its task runs)."""
    if isinstance(X, Scattered):
        parts = get_client().map(function, X.futures, Y.futures, pure=False, **kwargs)
        return tree_sum(parts)[:, 0]
    chunks = ((rows,), (1,) * X.numblocks[1])
    per_chunk = da.map_blocks(function, X, Y, chunks=chunks, dtype=np.float64, **kwargs)
    (total,) = compute(per_chunk.sum(axis=1))
    return np.asarray(total, dtype=np.float64)


def _check_values(X_chunk: Any, Y_chunk: Any, start: int) -> None:
    """ValueError naming the chunk (its examples start at `start`) at its first bad value."""
    where = f"in the chunk of examples {start} to {start + X_chunk.shape[1] - 1}"
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


def _check_chunk(X_chunk: Any, Y_chunk: Any, block_info: Any = None) -> Any:
    """X_chunk as it is, after `_check_values` (where the chunk starts: from block_info)."""
    _check_values(X_chunk, Y_chunk, block_info[0]["array-location"][1][0] if block_info else 0)
    return X_chunk


def check_held(X: Scattered, Y: Scattered) -> None:
    """`_check_values` of every chunk held on the workers, a task each: the first bad value's
    ValueError raises here. (Checking in a persisted graph instead would store each chunk twice
    in Dask's accounting of the workers' memory, and make them spill.)"""
    client = get_client()
    starts = [int(start) for start in np.cumsum((0, *X.chunks[:-1]))]
    client.gather(client.map(_check_values, X.futures, Y.futures, starts, pure=False))


def checked(X: Any, Y: Any) -> tuple[Any, Any]:
    """X and Y chunked by examples, X's chunks checking their values (and Y's) as they are read
    (streamed data): the check costs no pass over the data of its own, and a bad value names
    its chunk."""
    X, Y = by_examples(X, Y)
    return da.map_blocks(_check_chunk, X, Y, dtype=X.dtype, chunks=X.chunks), Y


def warm_chunk_kernels() -> None:
    """Compile (or load from the cache) what a chunk runs, for float64 and float32, C and F
    (the plan's values are not part of the compiled code). One worker of the machine at a time:
    the first compiles, the others load what it wrote (CI's two clusters once compiled them in
    four workers at once, 310 s of CPU time; a cluster of 2 took 96 s, 61 s one at a time)."""
    with compiling_alone(accumulate.__module__):
        for dtype in ("float64", "float32"):
            for layout in ("C", "F"):
                p = tiny_problem(dtype, layout)
                chunk_sums(p.X, p.Y, p.w, p.b, DEFAULT_PLAN)


def cross_entropy(w: NDArray[Any], b: float, X: Any, Y: Any) -> float:
    """Mean cross-entropy of X and Y on the cluster (`Scattered` or dask arrays), summed chunk
    by chunk."""
    return float(summed(chunk_loss, X, Y, 1, w=w, b=b)[0]) / int(X.shape[1])
