"""The gradient on a Dask cluster, one pass over X: a compiled kernel per chunk of examples.

    for each chunk c of examples (a task on a worker):   (X_c dZ_c.T, sum dZ_c)   numba_fused's pass
    dw, db = tree sum of the chunks' partial sums / m                             a few floats back

numpy inputs are scattered to the workers once, before timing (`to_native`), and each gradient
submits one task per chunk straight to those futures, then a tree of sums: half the time of the
same work as a dask.array graph on small clusters, where each layer of a graph costs a round
trip. Dask arrays (from Zarr, say) go through a dask.array graph, read chunk by chunk. The chunk
kernel releases the GIL.
"""

from __future__ import annotations

from typing import Any

import dask.array as da
import numpy as np
from numpy.typing import NDArray

from loopvec.backends import _dask
from loopvec.backends._dask import Scattered, chunk_sums, compute, per_chunk, to_numpy
from loopvec.cluster import get_client

__all__ = ["gradient", "to_native", "to_numpy"]


def to_native(w: Any, b: float, X: Any, Y: Any) -> tuple[Any, float, Any, Any]:
    """numpy X and Y scattered to the workers as futures, a chunk of examples each; dask arrays
    as `_dask.to_native` leaves them (chunked by examples, persisted where they fit)."""
    if isinstance(X, da.Array) or isinstance(Y, da.Array):
        return _dask.to_native(w, b, X, Y)
    chunks = _dask.example_chunks(X)
    return np.asarray(w), float(b), _dask.scatter(X, chunks), _dask.scatter(Y, chunks)


def gradient(w: NDArray[Any], b: float, X: Any, Y: Any) -> tuple[NDArray[np.float64], float]:
    """dw (n, 1) float64 and db of the mean cross-entropy; X (n, m), Y (1, m) scattered chunks
    (`to_native`) or dask arrays."""
    n, m = X.shape
    if isinstance(X, Scattered):
        parts = get_client().map(chunk_sums, X.futures, Y.futures, w=w, b=b, pure=False)
        total = _dask.tree_sum(parts)[:, 0]
    else:
        (total,) = compute(per_chunk(chunk_sums, X, Y, n + 1, w=w, b=b).sum(axis=1))
    return (total[:n] / m).reshape(n, 1), float(total[n]) / m
