"""Problems larger than memory: written to a Zarr store chunk by chunk, opened as dask arrays.

    write_problem("big.zarr", m=100_000_000, n=100)   # 80 GB, written a chunk at a time
    problem = open_problem("big.zarr")                  # X, Y dask arrays; w, b in memory
    loopvec.gradient(problem.w, problem.b, problem.X, problem.Y, backend="dask_fused")

The store holds X (n, m) and Y (1, m) chunked by examples, w (n, 1) and b. Its values follow
`make_problem`'s recipe (standard normal features, labels drawn from a logistic model with
true_w ~ N(0, 1/n)), each chunk from its own seeded generator: the same store for the same seed
and chunking, and never more than one chunk in memory.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
import zarr

from loopvec.problem import Problem
from loopvec.sigmoid import sigmoid
from loopvec.validation import validate_positive_int

#: Bytes of X per chunk of the store (and of the dask arrays read from it).
STORE_CHUNK_BYTES = 64 * 2**20


def write_problem(
    path: Path | str,
    m: int,
    n: int,
    *,
    seed: int = 0,
    chunk_examples: int | None = None,
    dtype: str = "float64",
    compressors: Any = None,
) -> Path:
    """Write a seeded (n, m) problem to a Zarr store at `path`, one chunk at a time; the path.

    Uncompressed by default: random features do not compress, so a read costs I/O alone (pass
    zarr's `compressors`, e.g. "auto", to compress)."""
    m, n = validate_positive_int("m", m), validate_positive_int("n", n)
    itemsize = np.dtype(dtype).itemsize
    size = chunk_examples or max(1, min(m, STORE_CHUNK_BYTES // (n * itemsize)))
    rng = np.random.default_rng([seed, 0])
    true_w, true_b = rng.standard_normal((n, 1)) / math.sqrt(n), float(rng.standard_normal())
    root = zarr.open_group(str(path), mode="w")
    X, Y = (
        root.create_array(name, shape=(rows, m), chunks=(rows, size), dtype=dtype,
                          compressors=compressors)
        for name, rows in (("X", n), ("Y", 1))
    )  # fmt: skip
    for k, start in enumerate(range(0, m, size)):
        chunk_rng = np.random.default_rng([seed, k + 1])
        X_chunk = chunk_rng.standard_normal((n, min(size, m - start)))
        labels = chunk_rng.random((1, X_chunk.shape[1])) < sigmoid(true_w.T @ X_chunk + true_b)
        X[:, start : start + X_chunk.shape[1]] = X_chunk.astype(dtype)
        Y[:, start : start + X_chunk.shape[1]] = labels.astype(dtype)
    root.create_array("w", data=0.01 * rng.standard_normal((n, 1)))
    root.attrs["b"] = 0.01 * float(rng.standard_normal())
    return Path(path)


def open_problem(path: Path | str) -> Problem:
    """The problem in the Zarr store at `path`: X and Y as dask arrays (read lazily, chunk by
    chunk), w and b in memory."""
    root = zarr.open_group(str(path), mode="r")
    X = da.from_zarr(str(path), component="X")
    Y = da.from_zarr(str(path), component="Y")
    b = root.attrs["b"]
    assert isinstance(b, float)
    w = zarr.open_array(str(path), path="w", mode="r")
    return Problem(w=np.asarray(w[:]), b=b, X=X, Y=Y)
