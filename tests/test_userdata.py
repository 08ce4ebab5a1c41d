"""A user's data from .npz, .npy, .csv, Zarr and scikit-learn, in the course layout, with errors
that name the file, the value and where it is."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from test_runner import options

from loopvec import userdata
from loopvec.grid import GRIDS
from loopvec.runner.settings import SettingsError, make_settings
from loopvec.userdata import load_data

#: Four examples (rows) of three features, and their labels.
ROWS = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 7.0], [-1.0, 0.5, 2.0], [0.0, 8.0, 1.0]])
LABELS = np.array([0.0, 1.0, 1.0, 0.0])


def write_npz(folder: Path, rows: Any = ROWS, labels: Any = LABELS) -> Path:
    np.savez(folder / "data.npz", X=rows, y=labels)
    return folder / "data.npz"


def write_npy(folder: Path, rows: Any = ROWS, labels: Any = LABELS) -> Path:
    np.save(folder / "data.npy", np.column_stack([rows, labels]))
    return folder / "data.npy"


def write_csv(folder: Path, rows: Any = ROWS, labels: Any = LABELS) -> Path:
    """The label between the first feature and the others, as spreadsheets often have it."""
    lines = [
        "a,target,b,c",
        *(f"{r[0]},{t},{r[1]},{r[2]}" for r, t in zip(rows, labels, strict=True)),
    ]
    (folder / "data.csv").write_text("\n".join(lines) + "\n")
    return folder / "data.csv"


def write_zarr(folder: Path, rows: Any = ROWS, labels: Any = LABELS) -> Path:
    import zarr  # noqa: PLC0415 (optional)

    root = zarr.open_group(str(folder / "data.zarr"), mode="w")
    root.create_array("X", data=np.asarray(rows))
    root.create_array("y", data=np.asarray(labels))
    return folder / "data.zarr"


WRITERS: dict[str, Callable[..., Path]] = {
    "npz": write_npz,
    "npy": write_npy,
    "csv": write_csv,
    "zarr": write_zarr,
}
#: How each form is read: the CSV file names its label column.
LABEL = {"npz": None, "npy": None, "csv": "target", "zarr": None}


@pytest.fixture(params=list(WRITERS))
def form(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


def test_every_form_gives_the_same_data_in_the_course_layout(tmp_path: Path, form: str) -> None:
    data = load_data(WRITERS[form](tmp_path), label=LABEL[form])
    assert_array_equal(data.X, ROWS.T)
    assert_array_equal(data.Y, LABELS.reshape(1, 4))
    assert (data.n, data.m) == (3, 4)
    assert data.X.dtype == data.Y.dtype == np.float64
    assert data.X.flags.f_contiguous
    assert data.name == f"data.{form}"
    assert data.source == str(tmp_path / f"data.{form}")
    assert not data.standardized


def test_breast_cancer_from_scikit_learn() -> None:
    data = load_data("sklearn:breast_cancer")
    assert data.X.shape == (30, 569)
    assert data.Y.shape == (1, 569)
    assert int(data.Y.sum()) == 357
    assert data.X.flags.f_contiguous
    assert data.provenance() == {
        "data": "sklearn:breast_cancer",
        "data_sha256": data.sha256,
        "data_shape": [569, 30],
        "data_standardized": False,
    }


def test_X_is_the_transpose_of_the_rows_as_read_not_a_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    read: list[Any] = []

    def spy(*args: Any) -> Any:
        read.append(userdata._read_npz(*args))
        return read[-1]

    monkeypatch.setitem(userdata._READERS, ".npz", spy)
    data = load_data(write_npz(tmp_path))
    rows = read[0][0]
    assert rows.flags.c_contiguous
    assert np.shares_memory(data.X, rows)
    assert data.X.flags.f_contiguous
    assert_array_equal(data.X, rows.T)


@pytest.mark.parametrize(
    ("labels", "shown"),
    [([0, 1, 2, 2], "0, 1, 2"), ([0, -1, 1, 1], "-1, 0, 1"), ([0.5, 1, 0, 1], "0, 0.5, 1")],
    ids=["two", "minus-one", "half"],
)
def test_labels_other_than_0_and_1_are_named_in_one_line(
    tmp_path: Path, form: str, labels: list[float], shown: str
) -> None:
    where = {"npz": "array y", "npy": "last column", "csv": "column 'target'", "zarr": "array y"}
    path = WRITERS[form](tmp_path, labels=np.array(labels, dtype=float))
    with pytest.raises(ValueError, match="labels must be 0 and 1") as error:
        load_data(path, label=LABEL[form])
    assert str(error.value).endswith(f"data.{form} {where[form]} holds {shown}")
    assert "\n" not in str(error.value)


def test_many_distinct_labels_are_counted_not_all_listed(tmp_path: Path) -> None:
    rows = np.ones((7, 2))
    with pytest.raises(ValueError, match=r"holds 0, 1, 2, 3, 4, \.\.\. \(7 distinct\)$"):
        load_data(write_npz(tmp_path, rows, np.arange(7)))


def test_word_labels_in_a_csv_file_are_named(tmp_path: Path) -> None:
    path = write_csv(tmp_path, labels=["M", "B", "B", "M"])
    with pytest.raises(ValueError, match=r"column 'target' holds 'B', 'M'$"):
        load_data(path, label="target")


def test_a_dataset_with_three_classes_is_refused() -> None:
    with pytest.raises(ValueError, match=r"sklearn:iris target holds 0, 1, 2$"):
        load_data("sklearn:iris")


def test_nan_names_the_file_row_and_column(tmp_path: Path, form: str) -> None:
    rows = ROWS.copy()
    rows[2, 1] = np.nan
    column = "'b'" if form == "csv" else "1"
    with pytest.raises(ValueError, match=rf"data\.{form}: .* nan at row 2, column {column}"):
        load_data(WRITERS[form](tmp_path, rows), label=LABEL[form])


def test_infinity_is_refused(tmp_path: Path) -> None:
    rows = ROWS.copy()
    rows[3, 0] = -np.inf
    with pytest.raises(ValueError, match="finite numbers; got -inf at row 3, column 0"):
        load_data(write_npz(tmp_path, rows))


def test_a_missing_label_column_lists_the_columns(tmp_path: Path) -> None:
    path = write_csv(tmp_path)
    columns = "its columns are 'a', 'target', 'b', 'c'"
    with pytest.raises(ValueError, match=f"it has no column 'label'\\); {columns}"):
        load_data(path, label="label")
    with pytest.raises(ValueError, match=f"give label=COLUMN\\); {columns}"):
        load_data(path)


def test_a_non_numeric_feature_names_its_column_and_line(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_text("a,target,b\n1,0,2\n3,1,x\n")
    with pytest.raises(ValueError, match=r"column 'b' must hold numbers .* line 3 holds 'x'"):
        load_data(path, label="target")


def test_label_is_refused_where_the_form_fixes_the_labels(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"data\.npy has its labels as its last column"):
        load_data(write_npy(tmp_path), label="target")


def test_data_too_large_for_memory_is_refused(tmp_path: Path, form: str) -> None:
    with pytest.raises(MemoryError, match=r"needs about .* write it to a Zarr store") as error:
        load_data(WRITERS[form](tmp_path), label=LABEL[form], available_bytes=100)
    assert "Dask backend (dask_fused)" in str(error.value)
    load_data(WRITERS[form](tmp_path), label=LABEL[form], available_bytes=10**6)


def test_standardizing_is_asked_for_and_recorded(tmp_path: Path) -> None:
    rows = ROWS.copy()
    rows[:, 2] = 5.0  # a constant feature: centred only
    data = load_data(write_npz(tmp_path, rows), standardize=True)
    assert_allclose(data.X.mean(axis=1), 0, atol=1e-15)
    assert_allclose(data.X[:2].std(axis=1), 1, rtol=1e-15)
    assert_array_equal(data.X[2], 0)
    assert data.X.flags.f_contiguous
    assert data.standardized
    assert data.provenance()["data_standardized"] is True
    assert data.sha256 == load_data(tmp_path / "data.npz").sha256  # of the data as read


def test_the_digest_is_that_of_the_file(tmp_path: Path, form: str) -> None:
    first = load_data(WRITERS[form](tmp_path), label=LABEL[form]).sha256
    again = load_data(WRITERS[form](tmp_path), label=LABEL[form]).sha256
    rows = ROWS.copy()
    rows[1, 2] = 7.5
    changed = load_data(WRITERS[form](tmp_path, rows), label=LABEL[form]).sha256
    assert len(first) == 64
    assert first == again
    assert changed != first


def test_an_unknown_scikit_learn_dataset_names_valid_ones() -> None:
    with pytest.raises(ValueError, match=r"one of .*breast_cancer.*; got 'tumours'"):
        load_data("sklearn:tumours")


def test_an_unknown_extension_names_the_accepted_forms(tmp_path: Path) -> None:
    path = tmp_path / "data.txt"
    path.write_text("1,2\n")
    forms = r"\.npy, \.npz or \.csv file, a Zarr folder, or sklearn:NAME; got a \.txt file"
    with pytest.raises(ValueError, match=forms):
        load_data(path)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"absent\.csv"):
        load_data(tmp_path / "absent.csv", label="target")


# --data in the benchmark grid

BACKENDS = ["numpy_vectorized", "numba_fused"]


def _csv(path: Path, labels: list[float]) -> Path:
    rng = np.random.default_rng(0)
    rows = rng.standard_normal((len(labels), 4))
    lines = ["a,b,label,c"] + [
        f"{r[0]},{r[1]},{y:g},{r[2]}" for r, y in zip(rows, labels, strict=True)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_data_options_are_checked_once_by_the_settings(tmp_path: Path) -> None:
    good = _csv(tmp_path / "good.csv", [0, 1] * 30)
    settings = make_settings(options(data=str(good), label="label", standardize=True), BACKENDS)
    assert (settings.m_values, settings.n_values) == ((60,), (3,))
    assert settings.run_grid == f"data-{settings.data_sha256[:8]}-std"  # other data than raw
    assert settings.training_problems() == [("data", 60, 3, GRIDS["smoke"].training.iterations)]
    bad = _csv(tmp_path / "bad.csv", [0, 1, 2] * 20)
    with pytest.raises(SettingsError, match=r"--data .*bad.csv: labels must be 0 and 1"):
        make_settings(options(data=str(bad), label="label"), BACKENDS)
    with pytest.raises(SettingsError, match="leave out --m and --n"):
        make_settings(options(data=str(good), label="label", m=[10]), BACKENDS)
    with pytest.raises(SettingsError, match="--label and --standardize are options of --data"):
        make_settings(options(label="label"), BACKENDS)


@pytest.mark.usefixtures("as_a_user_runs_it")
def test_a_run_on_a_csv_times_its_shape_and_trains_on_it(tmp_path: Path) -> None:
    data = _csv(tmp_path / "mine.csv", [0, 1, 1] * 20)
    results = tmp_path / "results"
    command = [sys.executable, "-m", "pytest", str(Path(__file__).parents[1] / "bench")]
    command += ["-p", "no:cacheprovider", "--grid=smoke", f"--data={data}", "--label=label"]
    command += ["--standardize", "--threads=1", "--passes=2", "--blocks=2", "--no-bandwidth"]
    command += ["--backends=numpy_vectorized,numba_fused", "--dtypes=float64"]
    command += ["--benchmark-max-time=0.02", f"--results-dir={results}", "--report"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (run,) = list(results.iterdir())
    cells = {p.stem: json.loads(p.read_text()) for p in run.glob("*-m*.json")}
    assert set(cells) == {
        *(f"{b}-m60-n3-t1-float64-{o}" for b in ("numpy_vectorized", "numba_fused") for o in "CF"),
        "train-data-m60-n3-numpy_vectorized-t1",
        "train-data-m60-n3-numba_fused-t1",
        "train-data-m60-n3-numba_fused-t1-compiled",
    }
    for cell in cells.values():
        assert cell["status"] == "timed"
        assert (cell["data"], cell["data_shape"], cell["data_standardized"]) == (
            "mine.csv",
            [60, 3],
            True,
        )
    assert (
        "**Data.** `mine.csv`: 60 examples x 3 features, standardized"
        in (run / "REPORT.md").read_text()
    )
