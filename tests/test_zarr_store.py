"""Zarr stores: what write_problem refuses to write over, and what open_problem refuses to read
(not a store, incomplete, a chunk missing or torn, a bad b), each with a one-line error.

The gradients on stores are test_dask's; these tests stay in this process, without a cluster.
"""

from __future__ import annotations

import pickle
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

dask_array = pytest.importorskip("dask.array", reason="the [dask] extra is not installed")
zarr = pytest.importorskip("zarr", reason="zarr is not installed")
zarr_store = pytest.importorskip("loopvec.zarr_store", reason="zarr is not installed")


def small_store(path: Path, seed: int = 3) -> Path:
    """9,500 examples of 4 features in chunks of 3000 (the last one partial)."""
    return zarr_store.write_problem(path, 9_500, 4, seed=seed, chunk_examples=3000)


def legacy_store(path: Path) -> Path:
    """A store as loopvec wrote them before marking them: fill value 0, all-zero chunks left
    out, no "loopvec" attribute; the same values as `small_store`'s."""
    new = zarr_store.open_problem(small_store(path.with_name("values.zarr")))
    root = zarr.open_group(str(path), mode="w")
    for name in ("X", "Y"):
        array = np.asarray(getattr(new, name))
        stored = root.create_array(
            name, shape=array.shape, chunks=(array.shape[0], 3000), dtype=array.dtype,
            compressors=None,
        )  # fmt: skip
        stored[:] = array
    root.create_array("w", data=new.w)
    root.attrs["b"] = new.b
    return path


def damaged(path: Path) -> str:
    """The start of every message about a damaged store at `path`."""
    return f"the store {re.escape(str(path))} is damaged: "


# 1. Writing over what is not a loopvec store


def test_a_folder_holding_other_files_is_refused_and_keeps_them(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(
        ValueError,
        match=rf"^path {re.escape(str(tmp_path))} is a folder that is not a loopvec problem "
        r"store and holds other files \(notes.txt\): refusing to overwrite it; nothing was "
        r"written \(choose a new or empty folder\)$",
    ):
        zarr_store.write_problem(tmp_path, 10, 2)
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_a_file_at_the_path_is_refused_and_kept(tmp_path: Path) -> None:
    file = tmp_path / "problem.zarr"
    file.write_text("mine")
    with pytest.raises(ValueError, match=r"is a file, not a folder: .* nothing was written$"):
        zarr_store.write_problem(file, 10, 2)
    assert file.read_text() == "mine"


def test_a_loopvec_store_holding_a_file_of_someone_else_is_refused(tmp_path: Path) -> None:
    path = small_store(tmp_path / "p.zarr")
    (path / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match=r"holds other files \(notes.txt\): refusing"):
        zarr_store.write_problem(path, 10, 2)
    assert (path / "notes.txt").read_text() == "mine"
    assert zarr_store.open_problem(path).X.shape == (4, 9500)


def test_an_empty_folder_and_a_loopvec_store_old_or_new_are_written(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    assert zarr_store.open_problem(zarr_store.write_problem(empty, 10, 2)).X.shape == (2, 10)
    for path in (small_store(tmp_path / "new.zarr"), legacy_store(tmp_path / "old.zarr")):
        zarr_store.write_problem(path, 10, 2, seed=7)
        got = zarr_store.open_problem(path)
        assert got.X.shape == (2, 10)
        assert sorted(p.name for p in path.iterdir()) == ["X", "Y", "w", "zarr.json"]
    mark = zarr.open_group(str(empty), mode="r").attrs["loopvec"]
    assert mark == {
        "format": 1, "m": 10, "n": 2, "seed": 0, "chunk_examples": 10, "dtype": "float64"
    }  # fmt: skip


def test_the_same_seed_and_chunking_give_the_same_store_and_old_stores_still_open(
    tmp_path: Path,
) -> None:
    a = zarr_store.open_problem(small_store(tmp_path / "a.zarr"))
    b = zarr_store.open_problem(small_store(tmp_path / "b.zarr"))
    old = zarr_store.open_problem(legacy_store(tmp_path / "old.zarr"))
    for got in (b, old):
        np.testing.assert_array_equal(np.asarray(got.X), np.asarray(a.X))
        np.testing.assert_array_equal(np.asarray(got.Y), np.asarray(a.Y))
        np.testing.assert_array_equal(got.w, a.w)
        assert got.b == a.b
    assert a.X.chunks == ((4,), (3000, 3000, 3000, 500))
    assert a.Y.chunks == ((1,), (3000, 3000, 3000, 500))


# 2. A chunk missing


@pytest.mark.parametrize("name", ["X", "Y"])
@pytest.mark.parametrize("make", [small_store, legacy_store], ids=["marked", "legacy"])
def test_a_missing_chunk_is_named_when_the_store_is_opened(
    tmp_path: Path, name: str, make: Callable[[Path], Path]
) -> None:
    path = make(tmp_path / "p.zarr")
    (path / name / "c" / "0" / "1").unlink()
    with pytest.raises(
        ValueError,
        match=f"^{damaged(path)}the chunk of {name} holding examples 3000 to 5999 is missing; "
        r"write the store again with write_problem$",
    ):
        zarr_store.open_problem(path)


def test_every_chunk_is_written_even_all_zero_labels_and_a_lost_one_reads_as_nan(
    tmp_path: Path,
) -> None:
    path = zarr_store.write_problem(tmp_path / "p.zarr", 40, 2, seed=1, chunk_examples=1)
    labels = np.asarray(zarr_store.open_problem(path).Y)
    assert (labels == 0).any()  # chunks Zarr would not have written
    assert len(list((path / "Y" / "c" / "0").iterdir())) == 40
    (path / "X" / "c" / "0" / "5").unlink()
    (path / "X" / "c" / "0" / "6").unlink()
    with pytest.raises(ValueError, match=r"examples 5 to 5 is missing \(and 1 more chunks\)"):
        zarr_store.open_problem(path)
    assert np.isnan(zarr.open_array(str(path), path="X", mode="r")[0, 5])


def test_a_chunk_lost_after_opening_is_named_where_it_is_read(tmp_path: Path) -> None:
    path = small_store(tmp_path / "p.zarr")
    lazy = zarr_store.open_problem(path)
    (path / "X" / "c" / "0" / "3").unlink()
    with pytest.raises(
        ValueError, match=f"^{damaged(path)}the chunk of X holding examples 9000 to 9499 is missing"
    ):
        lazy.X.sum().compute(scheduler="sync")


def test_w_missing_is_named(tmp_path: Path) -> None:
    path = small_store(tmp_path / "p.zarr")
    (path / "w" / "c" / "0" / "0").unlink()
    with pytest.raises(ValueError, match="the chunk of w holding examples 0 to 0 is missing"):
        zarr_store.open_problem(path)


# 3. A chunk torn


def test_a_truncated_chunk_names_the_store_array_and_examples_even_from_another_process(
    tmp_path: Path,
) -> None:
    path = small_store(tmp_path / "p.zarr")
    lazy = zarr_store.open_problem(path)
    chunk = path / "Y" / "c" / "0" / "1"
    chunk.write_bytes(chunk.read_bytes()[:100])
    message = (
        f"^{damaged(path)}the chunk of Y holding examples 3000 to 5999 cannot be read "
        r"\(\w+: .+\); write the store again with write_problem$"
    )
    with pytest.raises(ValueError, match=message):
        lazy.Y.sum().compute(scheduler="sync")
    # Read in a worker process: the reader and its error both travel by pickle.
    with pytest.raises(ValueError, match=message):
        lazy.Y.sum().compute(scheduler="processes", num_workers=1)
    np.testing.assert_array_equal(
        pickle.loads(pickle.dumps(lazy.X)).compute(scheduler="sync"), np.asarray(lazy.X)
    )


def test_the_dask_names_are_the_stores_not_the_readers(tmp_path: Path) -> None:
    a, b = small_store(tmp_path / "a.zarr"), small_store(tmp_path / "b.zarr", seed=4)
    assert zarr_store.open_problem(a).X.name == zarr_store.open_problem(a).X.name
    assert zarr_store.open_problem(a).X.name != zarr_store.open_problem(b).X.name
    assert zarr_store.open_problem(a).X.name != zarr_store.open_problem(a).Y.name


# 4. Not a store, not a problem, a bad b


@pytest.mark.parametrize("b", [3, 2.5])
def test_b_may_be_any_real_number(tmp_path: Path, b: float) -> None:
    path = small_store(tmp_path / "p.zarr")
    zarr.open_group(str(path), mode="r+").attrs["b"] = b
    got = zarr_store.open_problem(path).b
    assert (got, type(got)) == (b, float)


@pytest.mark.parametrize(
    ("b", "error", "said"),
    [
        (True, TypeError, "b must be a real scalar (int or float); got bool"),
        ("0.5", TypeError, "b must be a real scalar (int or float); got str"),
        ([0.5], TypeError, "b must be a real scalar (int or float); got list"),
        (None, TypeError, "b must be a real scalar (int or float); got NoneType"),
        (float("nan"), ValueError, "b must be finite; got nan"),
    ],
)
def test_a_bad_b_names_the_store(tmp_path: Path, b: object, error: type, said: str) -> None:
    path = small_store(tmp_path / "p.zarr")
    zarr.open_group(str(path), mode="r+").attrs["b"] = b
    with pytest.raises(error, match=f"^the store {re.escape(str(path))} holds a bad value: "):
        zarr_store.open_problem(path)
    with pytest.raises(error, match=re.escape(said)):
        zarr_store.open_problem(path)


def test_what_is_not_a_loopvec_store_is_named(tmp_path: Path) -> None:
    nowhere = tmp_path / "nowhere.zarr"
    with pytest.raises(ValueError, match=r"^no loopvec problem store at .*nowhere.zarr: the path"):
        zarr_store.open_problem(nowhere)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"empty is not a Zarr store holding a loopvec problem"):
        zarr_store.open_problem(tmp_path / "empty")
    other = zarr.open_group(str(tmp_path / "other.zarr"), mode="w")
    other.create_array("X", data=np.ones((2, 3)))
    with pytest.raises(
        ValueError,
        match=r"other.zarr is not a complete loopvec problem store: it has no Y, w, attribute b "
        r"\(a loopvec store holds arrays X, Y, w and attribute b \(see write_problem\)\)$",
    ):
        zarr_store.open_problem(tmp_path / "other.zarr")


def test_a_store_whose_writing_did_not_finish_is_named(tmp_path: Path) -> None:
    path = small_store(tmp_path / "p.zarr")
    del zarr.open_group(str(path), mode="r+").attrs["b"]
    with pytest.raises(ValueError, match=r"it has no attribute b \(writing it did not finish; "):
        zarr_store.open_problem(path)
    zarr_store.write_problem(path, 10, 2)  # and it may be written again


# 5. Arguments


@pytest.mark.parametrize(
    ("argument", "error", "said"),
    [
        ({"seed": -1}, ValueError, "seed must be an integer >= 0; got -1"),
        ({"seed": True}, TypeError, "seed must be an integer >= 0; got bool True"),
        ({"seed": 1.5}, TypeError, "seed must be an integer >= 0; got float 1.5"),
        ({"chunk_examples": 0}, ValueError, "chunk_examples must be a positive integer; got 0"),
        ({"chunk_examples": -5}, ValueError, "chunk_examples must be a positive integer; got -5"),
        ({"dtype": "int8"}, ValueError, "dtype must be one of float64, float32; got 'int8'"),
        ({"m": 0}, ValueError, "m must be a positive integer; got 0"),
    ],
)
def test_bad_arguments_are_named_before_anything_is_written(
    tmp_path: Path, argument: dict[str, object], error: type, said: str
) -> None:
    path = tmp_path / "p.zarr"
    with pytest.raises(error, match=f"^{re.escape(said)}$"):
        zarr_store.write_problem(path, **{"m": 10, "n": 2, **argument})  # type: ignore[arg-type]
    assert not path.exists()


# 6. Disk space


def test_a_store_larger_than_the_free_disk_is_refused_before_anything_is_written(
    tmp_path: Path,
) -> None:
    path = tmp_path / "new" / "huge.zarr"
    with pytest.raises(
        ValueError,
        match=rf"^the store at {re.escape(str(path))} would take 16,000,000\.\d GB but "
        rf"{re.escape(str(tmp_path))} has [\d,.]+ GB free: nothing was written",
    ):
        zarr_store.write_problem(path, 10**15, 1)
    assert list(tmp_path.iterdir()) == []
