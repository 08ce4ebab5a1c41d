"""Problems larger than memory: written to a Zarr store chunk by chunk, opened as dask arrays.

    write_problem("big.zarr", m=100_000_000, n=100)   # 80 GB, written a chunk at a time
    problem = open_problem("big.zarr")                  # X, Y dask arrays; w, b in memory
    loopvec.gradient(problem.w, problem.b, problem.X, problem.Y, backend="dask_fused")

The store holds X (n, m) and Y (1, m) chunked by examples, w (n, 1) and b. Its values follow
`make_problem`'s recipe (standard normal features, labels drawn from a logistic model with
true_w ~ N(0, 1/n)), each chunk from its own seeded generator: the same store for the same seed
and chunking, and never more than one chunk in memory.

A store is never trusted to be whole: every chunk is written (even an all-zero one) and a missing
one reads as NaN, not as Zarr's usual zeros; `open_problem` refuses a store with a chunk missing,
and a chunk that cannot be read is named (store, array, examples) where it is read.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
import zarr
from dask.base import tokenize

from loopvec.problem import Problem
from loopvec.sigmoid import sigmoid
from loopvec.validation import (
    validate_bias,
    validate_dtype,
    validate_positive_int,
    validate_weights,
)

#: Bytes of X per chunk of the store (and of the dask arrays read from it).
STORE_CHUNK_BYTES = 64 * 2**20

#: The version of the store's layout, in its group attribute "loopvec" (stores written before
#: the mark existed have none, and fill value 0: they are still read).
STORE_FORMAT = 1

#: What a loopvec store's folder holds: nothing else is deleted when it is written again.
_STORE_ENTRIES = frozenset({"zarr.json", "X", "Y", "w"})

GB = 1e9


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

    `path` must be new, an empty folder or a store loopvec wrote (replaced): anything else is
    refused before a byte is written, as is a store larger than the disk's free space.
    Uncompressed by default: random features do not compress, so a read costs I/O alone (pass
    zarr's `compressors`, e.g. "auto", to compress)."""
    m, n = validate_positive_int("m", m), validate_positive_int("n", n)
    seed = validate_positive_int("seed", seed, allow_zero=True)
    target = validate_dtype(dtype)
    if chunk_examples is not None:
        chunk_examples = validate_positive_int("chunk_examples", chunk_examples)
    path = Path(path)
    replaced_bytes = _writable(path)
    itemsize = target.itemsize
    size = chunk_examples or max(1, min(m, STORE_CHUNK_BYTES // (n * itemsize)))
    # Zarr stores every chunk whole, the last one padded: the bytes written (uncompressed).
    needed_bytes = (n + 1) * math.ceil(m / size) * size * itemsize + n * 8
    _check_free_space(path, needed_bytes, replaced_bytes)

    rng = np.random.default_rng([seed, 0])
    true_w, true_b = rng.standard_normal((n, 1)) / math.sqrt(n), float(rng.standard_normal())
    root = zarr.open_group(str(path), mode="w")
    # Marked first, so that a write cut short can be written again; b, written last, says the
    # store is complete.
    root.attrs["loopvec"] = {
        "format": STORE_FORMAT, "m": m, "n": n, "seed": seed, "chunk_examples": size,
        "dtype": target.name,
    }  # fmt: skip
    # Every chunk is written (an all-zero chunk of Y too, which Zarr would leave out) so that an
    # absent chunk is always damage, and NaN fills what is absent so it can never read as data.
    X, Y = (
        root.create_array(name, shape=(rows, m), chunks=(rows, size), dtype=target,
                          compressors=compressors, fill_value=np.nan,
                          config={"write_empty_chunks": True})
        for name, rows in (("X", n), ("Y", 1))
    )  # fmt: skip
    for k, start in enumerate(range(0, m, size)):
        chunk_rng = np.random.default_rng([seed, k + 1])
        X_chunk = chunk_rng.standard_normal((n, min(size, m - start)))
        labels = chunk_rng.random((1, X_chunk.shape[1])) < sigmoid(true_w.T @ X_chunk + true_b)
        X[:, start : start + X_chunk.shape[1]] = X_chunk.astype(target)
        Y[:, start : start + X_chunk.shape[1]] = labels.astype(target)
    root.create_array("w", data=0.01 * rng.standard_normal((n, 1)), fill_value=np.nan)
    root.attrs["b"] = 0.01 * float(rng.standard_normal())
    return path


def open_problem(path: Path | str) -> Problem:
    """The problem in the Zarr store at `path`: X (n, m) and Y (1, m) as dask arrays in the
    store's chunks (read lazily, chunk by chunk), w (n, 1) and b in memory.

    ValueError/TypeError naming the store if it is not a loopvec problem store, is incomplete,
    or has a chunk missing."""
    path = Path(path)
    root, arrays = _open_store(path)
    X, Y, w = arrays["X"], arrays["Y"], arrays["w"]
    for name, array in (("X", X), ("Y", Y), ("w", w)):
        _check_chunks_present(path, name, array)
    n, m = X.shape
    if Y.shape != (1, m):
        raise ValueError(
            f"the store {path} is damaged: Y must have shape (1, {m}) to match X; "
            f"got {Y.shape}; write the store again with write_problem"
        )
    try:
        b = validate_bias(root.attrs["b"])
        w_values = validate_weights(np.asarray(w[:]), n)
    except (TypeError, ValueError) as error:
        raise type(error)(f"the store {path} holds a bad value: {error}") from None
    return Problem(w=w_values, b=b, X=_lazy(path, "X", X), Y=_lazy(path, "Y", Y))


def _group_attributes(path: Path) -> dict[str, Any] | None:
    """The attributes of the Zarr (v3) group at `path`, or None if it holds none."""
    try:
        metadata = json.loads((path / "zarr.json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(metadata, dict) or metadata.get("node_type") != "group":
        return None
    attributes = metadata.get("attributes", {})
    return attributes if isinstance(attributes, dict) else None


def _writable(path: Path) -> int:
    """The bytes a write to `path` frees (those of the loopvec store it replaces), or ValueError
    if writing there would delete anything else (Zarr's mode "w" empties the folder)."""
    if not path.exists():
        return 0
    if not path.is_dir():
        raise ValueError(
            f"path {path} is a file, not a folder: refusing to replace it with a Zarr store; "
            f"nothing was written"
        )
    entries = sorted(entry.name for entry in path.iterdir())
    if not entries:
        return 0
    attributes = _group_attributes(path)
    # Stores written before the mark existed are known by their b.
    ours = attributes is not None and ("loopvec" in attributes or "b" in attributes)
    others = [entry for entry in entries if entry not in _STORE_ENTRIES]
    if not ours or others:
        shown = ", ".join((others or entries)[:5]) + (", ..." if len(others or entries) > 5 else "")
        raise ValueError(
            f"path {path} is a folder that is not a loopvec problem store and holds other files "
            f"({shown}): refusing to overwrite it; nothing was written (choose a new or empty "
            f"folder)"
        )
    return sum(file.stat().st_size for file in path.rglob("*") if file.is_file())


def _check_free_space(path: Path, needed_bytes: int, replaced_bytes: int) -> None:
    """ValueError if the store (`needed_bytes`) would not fit in the free space of `path`'s
    nearest existing folder (plus the `replaced_bytes` of the store it replaces)."""
    folder = path if path.is_dir() else path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    folder = folder.absolute()
    free_bytes = shutil.disk_usage(folder).free + replaced_bytes
    if needed_bytes > free_bytes:
        raise ValueError(
            f"the store at {path} would take {needed_bytes / GB:,.1f} GB but {folder} has "
            f"{free_bytes / GB:,.1f} GB free: nothing was written (choose a smaller m or n, or "
            f"another disk)"
        )


def _open_store(path: Path) -> tuple[zarr.Group, dict[str, zarr.Array[Any]]]:
    """The Zarr group at `path` and its arrays X, Y, w, or ValueError naming what makes it no
    loopvec problem store."""
    if not path.exists():
        raise ValueError(f"no loopvec problem store at {path}: the path does not exist")
    try:
        root = zarr.open_group(str(path), mode="r")
    except Exception as error:  # Zarr raises several kinds, none of them a clear answer
        raise ValueError(
            f"{path} is not a Zarr store holding a loopvec problem (write one with "
            f"write_problem): {type(error).__name__}: {error}"
        ) from None
    arrays = {name: root.get(name) for name in ("X", "Y", "w")}
    missing = [name for name, array in arrays.items() if not isinstance(array, zarr.Array)]
    missing += [f"attribute {key}" for key in ("b",) if key not in root.attrs]
    if missing:
        unfinished = (
            "writing it did not finish; write it again with write_problem"
            if "loopvec" in root.attrs
            else "a loopvec store holds arrays X, Y, w and attribute b (see write_problem)"
        )
        raise ValueError(
            f"the Zarr store {path} is not a complete loopvec problem store: it has no "
            f"{', '.join(missing)} ({unfinished})"
        )
    mark = root.attrs.get("loopvec")
    if mark is not None and (not isinstance(mark, dict) or mark.get("format") != STORE_FORMAT):
        raise ValueError(
            f"the store {path} has a loopvec mark this version cannot read: {mark!r} (expected "
            f"format {STORE_FORMAT}); write the store again with write_problem"
        )
    for name, expected in (("X", "(n, m)"), ("Y", "(1, m)"), ("w", "(n, 1)")):
        shape = arrays[name].shape  # type: ignore[union-attr]
        if len(shape) != 2 or (name == "Y" and shape[0] != 1) or (name == "w" and shape[1] != 1):
            raise ValueError(
                f"the store {path} is damaged: {name} must have shape {expected}; got {shape}; "
                f"write the store again with write_problem"
            )
    return root, arrays  # type: ignore[return-value]


def _grid(array: zarr.Array[Any]) -> tuple[int, ...]:
    """How many stored objects (chunks, or shards if sharded) `array` has along each axis."""
    step = array.shards or array.chunks
    return tuple(math.ceil(side / each) for side, each in zip(array.shape, step, strict=True))


def _examples_of(array: zarr.Array[Any], column: int) -> tuple[int, int]:
    """The first and last example of the stored objects at grid column `column`."""
    step = (array.shards or array.chunks)[1]
    return column * step, min(array.shape[1], (column + 1) * step) - 1


def _missing_columns(path: Path, name: str, array: zarr.Array[Any], columns: range) -> list[int]:
    """The grid columns among `columns` with a stored object of `array` absent from the store
    at `path` (Zarr would read it as its fill value without a word)."""
    rows = range(_grid(array)[0])
    return [
        column
        for column in columns
        if not all(
            (path / name / array.metadata.encode_chunk_key((row, column))).is_file() for row in rows
        )
    ]


def _check_chunks_present(path: Path, name: str, array: zarr.Array[Any]) -> None:
    """ValueError naming the first chunk of `array` that the store at `path` lacks."""
    missing = _missing_columns(path, name, array, range(_grid(array)[1]))
    if missing:
        first, last = _examples_of(array, missing[0])
        more = f" (and {len(missing) - 1} more chunks)" if len(missing) > 1 else ""
        raise ValueError(
            f"the store {path} is damaged: the chunk of {name} holding examples {first} to "
            f"{last} is missing{more}; write the store again with write_problem"
        )


class _StoreReader:
    """X or Y of a store as dask reads it: a chunk missing or unreadable is a ValueError naming
    the store, the array and the examples. It pickles (to Dask's worker processes) as its path
    and name; the zarr array is opened where it is read."""

    def __init__(self, path: Path, name: str, array: zarr.Array[Any]) -> None:
        # Read by its absolute path (a worker's working folder may differ), named as given.
        self.path, self.shown, self.name = path.absolute(), str(path), name
        self.shape: tuple[int, ...] = tuple(array.shape)
        self.ndim = len(self.shape)
        self.dtype = np.dtype(array.dtype)
        self._array: zarr.Array[Any] | None = array

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_array": None}

    def __getitem__(self, key: Any) -> Any:
        if self._array is None:
            self._array = zarr.open_array(str(self.path), path=self.name, mode="r")
        array = self._array
        start, stop = self._columns(key)
        step = (array.shards or array.chunks)[1]
        first, last = start // step, max(start, stop - 1) // step
        where = (
            f"the chunk of {self.name} holding examples {_examples_of(array, first)[0]} to "
            f"{_examples_of(array, last)[1]}"
        )
        if first != last:
            where = where.replace("the chunk", "the chunks", 1)
        if _missing_columns(self.path, self.name, array, range(first, last + 1)):
            raise ValueError(
                f"the store {self.shown} is damaged: {where} is missing; write the store again "
                f"with write_problem"
            )
        try:
            return array[key]
        except Exception as error:  # a torn or corrupt chunk fails in the codec, in its words
            said = " ".join(f"{type(error).__name__}: {error}".split())
            raise ValueError(
                f"the store {self.shown} is damaged: {where} cannot be read ({said}); write the "
                f"store again with write_problem"
            ) from error

    def _columns(self, key: Any) -> tuple[int, int]:
        """The examples [start, stop) that `key` (dask's tuple of slices) reads."""
        m = self.shape[1]
        columns = key[1] if isinstance(key, tuple) and len(key) > 1 else slice(None)
        if isinstance(columns, slice):
            start, stop, _ = columns.indices(m)
            return start, max(start + 1, stop)
        return 0, m


def _lazy(path: Path, name: str, array: zarr.Array[Any]) -> Any:
    """`array` as a dask array in its store's chunks, read through a `_StoreReader`; its name is
    the store's (path, metadata, attributes), so that opening a store twice gives the same keys."""
    reader = _StoreReader(path, name, array)
    metadata = json.dumps(array.metadata.to_dict(), sort_keys=True, default=str)
    token = tokenize(str(reader.path), name, metadata, _group_attributes(path))
    return da.from_array(
        reader,
        chunks=array.chunks,
        name=f"loopvec-zarr-{name}-{token}",
        meta=np.empty((0,) * array.ndim, dtype=reader.dtype),
    )
