"""Data a user brings, in the course layout: X (n, m) features x examples, Y (1, m) of 0 and 1.

    data = load_data("tumours.csv", label="diagnosis", standardize=True)
    loopvec.gradient(w, b, data.X, data.Y)

Users store examples as rows, so every source holds a rows array (m, n) and m labels:

- a ``.npz`` file: arrays ``X`` (m, n) and ``y`` (m,) or (m, 1);
- a ``.npy`` file: one 2-D array (m, n + 1) whose LAST column is the label;
- a ``.csv`` file: a header row, ``label=COLUMN`` naming the label column, every other column a
  numeric feature;
- a Zarr folder: arrays ``X`` (m, n) and ``y`` (m,) or (m, 1) (needs zarr: ``loopvec[dask]``);
- ``sklearn:NAME``: a dataset scikit-learn ships (``sklearn.datasets.load_NAME``), binary ones only.

X is the transpose of the rows array, not a copy (F-contiguous where the rows are C-contiguous): a
copy would double the memory a large data set takes, and the benchmark times X as it is stored.
Labels must all be 0 or 1, features finite; nothing is standardized unless asked.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import functools
import hashlib
import inspect
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.lib.format as fmt
import psutil
from numpy.typing import NDArray

from loopvec.datasets import _sklearn
from loopvec.problem import ExamplesAsColumns

#: The share of the available memory a data set's float64 arrays may take.
MEMORY_SHARE = 0.8
#: What `load_data` reads, as its errors say.
FORMS = ".npy, .npz or .csv file, a Zarr folder, or sklearn:NAME"
GB = 1e9
#: Entries checked for NaN at a time: the check's mask stays small beside X.
_CHECK_ENTRIES = 2**20
#: Distinct label values a label error shows.
_SHOWN = 5

Array = NDArray[np.float64]
#: What a reader returns: rows (m, n) and labels (m,) or (m, 1) as stored, and the column names.
_Read = tuple[NDArray[Any], NDArray[Any], list[str] | None]


@dataclass(frozen=True, eq=False)
class UserData(ExamplesAsColumns):
    """A user's data set in the course layout.

    X : ndarray of shape (n, m)   float64, the transpose of the (m, n) rows array (standardized
                                  rows where `standardized`)
    Y : ndarray of shape (1, m)   float64, 0.0 and 1.0
    sha256 : hex digest of the rows and labels as read (shapes, dtypes, bytes), before
             standardizing: the same file gives the same digest
    """

    name: str
    X: Array
    Y: Array
    sha256: str
    standardized: bool
    source: str

    def provenance(self) -> dict[str, Any]:
        """What a benchmark record says about the data it timed."""
        return {
            "data": self.name,
            "data_sha256": self.sha256,
            "data_shape": [self.m, self.n],
            "data_standardized": self.standardized,
        }


def load_data(
    source: str | os.PathLike[str],
    *,
    label: str | None = None,
    standardize: bool = False,
    available_bytes: int | None = None,
) -> UserData:
    """The data at `source`: a file, a Zarr folder or sklearn:NAME (see the module docstring).

    label : the label column of a CSV file (required there, refused elsewhere).
    standardize : subtract each feature's mean and divide by its standard deviation, into a new
        array (scikit-learn's StandardScaler: a feature with standard deviation 0 is only centred).
    available_bytes : the memory to compare with (default: psutil's available memory). A file
        whose float64 arrays would take more than MEMORY_SHARE of it is refused with a
        MemoryError before its data is read (scikit-learn's bundled datasets are small: not
        checked).
    """
    text, kind = os.fspath(source), "sklearn"
    path = Path(text)
    if not text.startswith("sklearn:"):
        if not path.exists():
            raise FileNotFoundError(errno.ENOENT, "no such data file or Zarr folder", text)
        kind = "zarr" if path.is_dir() else path.suffix.lower()
        if kind not in _READERS:
            raise ValueError(
                f"cannot read {text}: data must be a {FORMS}; got a "
                f"{path.suffix or 'file without an extension'} file"
            )
    if label is not None and kind != ".csv":
        raise ValueError(
            f"label= names the label column of a CSV file; {text} has its labels as its "
            f"{_LABELS[kind]}, got label={label!r}"
        )
    if kind == "sklearn":
        rows, labels, columns = _read_sklearn(text.removeprefix("sklearn:"))
    else:
        afford = functools.partial(
            _check_memory, text, standardize=standardize, available_bytes=available_bytes
        )
        rows, labels, columns = _READERS[kind](path, label, afford)
    where = f"column {label!r}" if kind == ".csv" else _LABELS[kind]
    m = _check_shapes(text, rows, labels, where)
    digest = _digest(rows, labels)
    _check_labels(labels, f"{text} {where}")
    rows = np.asarray(rows, dtype=np.float64)  # a copy only where stored in another dtype
    _check_finite(text, rows, columns)
    if standardize:
        rows = _sklearn("preprocessing").StandardScaler().fit_transform(rows)
    return UserData(
        name=text if kind == "sklearn" else path.name,
        X=rows.T,
        Y=np.asarray(labels, dtype=np.float64).reshape(1, m),
        sha256=digest,
        standardized=standardize,
        source=text,
    )


def _check_memory(
    text: str, values: int, *, standardize: bool, available_bytes: int | None
) -> None:
    """MemoryError if `values` float64 numbers would take more than MEMORY_SHARE of the memory
    available (three times as many to standardize: the new array and a temporary)."""
    needed = 8 * values * (3 if standardize else 1)
    available = psutil.virtual_memory().available if available_bytes is None else available_bytes
    if needed > MEMORY_SHARE * available:
        extra = ", three copies to standardize" if standardize else ""
        raise MemoryError(
            f"{text} needs about {_size(needed)} as float64 ({values:,} numbers{extra}) but "
            f"{_size(available)} of memory is available, of which at most {MEMORY_SHARE:.0%} may "
            "be used: --data loads it whole; write it to a Zarr store (loopvec.zarr_store) and "
            "compute on it with a Dask backend (dask_fused), which reads it a chunk at a time"
        )


def _size(nbytes: float) -> str:
    return f"{nbytes / GB:,.1f} GB" if nbytes >= GB / 10 else f"{nbytes / 1e6:,.3g} MB"


def _check_shapes(text: str, rows: NDArray[Any], labels: NDArray[Any], where: str) -> int:
    """m, or ValueError if the rows are not (m, n) real numbers with m labels."""
    if rows.ndim != 2 or 0 in rows.shape:
        raise ValueError(
            f"{text} must hold features X of shape (m, n), m >= 1 examples as rows, n >= 1; "
            f"got shape {rows.shape}"
        )
    if rows.dtype.kind not in "biuf":
        raise ValueError(f"{text}: features must be real numbers; got dtype {rows.dtype}")
    m = rows.shape[0]
    if labels.shape not in ((m,), (m, 1)):
        raise ValueError(
            f"{text}: its {where} must hold one label per row of X, shape ({m},) or ({m}, 1); "
            f"got shape {labels.shape}"
        )
    return int(m)


def _digest(rows: NDArray[Any], labels: NDArray[Any]) -> str:
    digest = hashlib.sha256()
    for array in (rows, labels):
        digest.update(f"{array.shape} {array.dtype.str};".encode())
        # hashlib reads C-contiguous buffers only: a copy where the rows are stored otherwise
        digest.update(np.ascontiguousarray(array).data)
    return digest.hexdigest()


def _check_labels(labels: NDArray[Any], where: str) -> None:
    """ValueError in one line naming the distinct values unless every label is 0 or 1."""
    values = np.unique(labels)
    if labels.dtype.kind in "biuf" and np.isin(values, (0, 1)).all():
        return
    shown = ", ".join(repr(v) if isinstance(v, str) else f"{v:g}" for v in values[:_SHOWN].tolist())
    more = f", ... ({values.size} distinct)" if values.size > _SHOWN else ""
    raise ValueError(f"labels must be 0 and 1; {where} holds {shown}{more}")


def _check_finite(text: str, rows: Array, columns: list[str] | None) -> None:
    """ValueError at the first entry that is not finite, checking a block of rows at a time."""
    step = max(1, _CHECK_ENTRIES // rows.shape[1])
    for start in range(0, rows.shape[0], step):
        bad = np.argwhere(~np.isfinite(rows[start : start + step]))
        if bad.size:
            i, j = start + int(bad[0, 0]), int(bad[0, 1])
            column = repr(columns[j]) if columns else str(j)
            raise ValueError(
                f"{text}: features must be finite numbers; got {rows[i, j]} at row {i}, "
                f"column {column} (counting from 0)"
            )


def _read_npz(path: Path, label: str | None, afford: Callable[[int], None]) -> _Read:
    with np.load(path) as archive:  # an NpzFile: a member is read where it is indexed
        if not {"X", "y"} <= set(archive.files):
            raise ValueError(
                f"{path} must hold arrays X (m, n) and y (m,); it holds "
                f"{', '.join(archive.files) or 'none'}"
            )
        values = 0
        for key in ("X", "y"):  # the shapes in the members' headers: no data is read
            with archive.zip.open(f"{key}.npy") as member:
                version = fmt.read_magic(member)
                header = fmt.read_array_header_1_0 if version == (1, 0) else None
                values += int(np.prod((header or fmt.read_array_header_2_0)(member)[0]))
        afford(values)
        return archive["X"], archive["y"], None


def _read_npy(path: Path, label: str | None, afford: Callable[[int], None]) -> _Read:
    table = np.load(path, mmap_mode="r")  # only the header is read here
    if table.ndim != 2 or table.shape[1] < 2:
        raise ValueError(
            f"{path} must hold one 2-D array (m, n + 1) whose last column is the label; got "
            f"shape {table.shape}"
        )
    afford(table.size)
    # Copied out of the map into (m, n) C order: without the label the rows are not contiguous.
    return np.array(table[:, :-1], order="C"), np.array(table[:, -1]), None


def _read_csv(path: Path, label: str | None, afford: Callable[[int], None]) -> _Read:
    with path.open(newline="", encoding="utf-8-sig") as file:
        columns = [name.strip() for name in next(csv.reader(file), [])]
    if label is None or label not in columns:
        said = "give label=COLUMN" if label is None else f"it has no column {label!r}"
        raise ValueError(
            f"{path}: name its label column ({said}); its columns are "
            f"{', '.join(map(repr, columns))}"
        )
    with path.open("rb") as file:  # a first pass: the lines, for the memory needed
        lines = sum(block.count(b"\n") for block in iter(lambda: file.read(2**20), b""))
    afford(lines * len(columns))
    where = columns.index(label)
    features = [j for j in range(len(columns)) if j != where]
    read = functools.partial(np.loadtxt, path, delimiter=",", skiprows=1, quotechar='"')
    try:
        rows = read(usecols=features, ndmin=2, encoding="utf-8")
    except ValueError as error:
        _find_non_numeric(path, columns, features)
        raise ValueError(f"{path}: {error}") from None
    labels = read(usecols=[where], dtype=str, encoding="utf-8")
    with contextlib.suppress(ValueError):  # words ('yes', 'M') are kept for the error to name
        labels = labels.astype(np.float64)
    return rows, labels.reshape(-1), [columns[j] for j in features]


def _find_non_numeric(path: Path, columns: list[str], features: list[int]) -> None:
    """ValueError naming the first feature field of the CSV file that is not a number."""
    with path.open(newline="", encoding="utf-8-sig") as file:
        for line, fields in enumerate(csv.reader(file), start=1):
            if line == 1 or not fields:
                continue
            if len(fields) != len(columns):
                raise ValueError(
                    f"{path}: line {line} has {len(fields)} fields; the header has {len(columns)}"
                )
            for j in features:
                try:
                    float(fields[j])
                except ValueError:
                    raise ValueError(
                        f"{path}: column {columns[j]!r} must hold numbers (every column but the "
                        f"label is a feature); line {line} holds {fields[j]!r}"
                    ) from None


def _read_zarr(path: Path, label: str | None, afford: Callable[[int], None]) -> _Read:
    import zarr  # noqa: PLC0415 (zarr is optional: pip install 'loopvec[dask]')

    try:
        root = zarr.open_group(str(path), mode="r")
    except Exception as error:  # Zarr raises several kinds, none of them a clear answer
        raise ValueError(
            f"{path} is a folder but no Zarr store ({type(error).__name__}: {error}); data must "
            f"be a {FORMS}"
        ) from None
    X, y = root.get("X"), root.get("y")
    if not (isinstance(X, zarr.Array) and isinstance(y, zarr.Array)):
        ours = " (a loopvec problem store: open it with open_problem)" if "Y" in root else ""
        raise ValueError(
            f"the Zarr store {path} must hold arrays X (m, n) and y (m,); it holds "
            f"{', '.join(sorted(root.array_keys())) or 'none'}{ours}"
        )
    afford(int(np.prod(X.shape)) + int(np.prod(y.shape)))
    return np.asarray(X[...]), np.asarray(y[...]), None


def _read_sklearn(name: str) -> _Read:
    datasets = _sklearn("datasets")
    loaders = {  # the bundled datasets: load_files, load_sample_image and others are not
        key.removeprefix("load_"): load
        for key, load in vars(datasets).items()
        if key.startswith("load_") and "return_X_y" in inspect.signature(load).parameters
    }
    if name not in loaders:
        raise ValueError(
            f"sklearn:NAME must name a dataset scikit-learn ships (sklearn.datasets.load_NAME), "
            f"one of {', '.join(sorted(loaders))}; got {name!r}"
        )
    rows, labels = loaders[name](return_X_y=True)
    return np.asarray(rows), np.asarray(labels), None


#: Each file form by its suffix ("zarr" for a folder): a reader that calls `afford` with the
#: number of values before reading them.
_READERS: dict[str, Callable[[Path, str | None, Callable[[int], None]], _Read]] = {
    ".npz": _read_npz,
    ".npy": _read_npy,
    ".csv": _read_csv,
    "zarr": _read_zarr,
}
#: Where each form keeps its labels, as errors say.
_LABELS = {".npz": "array y", ".npy": "last column", "zarr": "array y", "sklearn": "target"}
