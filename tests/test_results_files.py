"""Result files are written whole or not at all, and a failed write says so and keeps the rest."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest

from loopvec.grid import Cell
from loopvec.results import (
    REFERENCE_RUN,
    ResultsWriteError,
    newest_run,
    read_cells,
    write_json_atomic,
)


def test_written_file_reads_back(tmp_path: Path) -> None:
    path = tmp_path / "cells" / "a.json"
    cell = Cell("numba_loops", 1, 2, 1)
    write_json_atomic(path, {"cell_id": "a", "median_s": 1.5e-6, "cell": cell})
    assert json.loads(path.read_text())["cell"]["backend"] == "numba_loops"
    assert read_cells(path.parent) == ({path: json.loads(path.read_text())}, [])


def test_damaged_cell_files_are_named_and_the_rest_read(tmp_path: Path) -> None:
    good = {"cell_id": "good", "median_s": 1.0}
    write_json_atomic(tmp_path / "good.json", good)
    (tmp_path / "truncated.json").write_text('{"cell_id": "trunc')
    (tmp_path / "garbled.json").write_bytes(b"\xff\xfe\x00garbage")
    (tmp_path / "foreign.json").write_text("[1, 2, 3]")
    cells, damaged = read_cells(tmp_path)
    assert cells == {tmp_path / "good.json": good}
    assert {path.name: why.split(":")[0] for path, why in damaged} == {
        "foreign.json": "ValueError",
        "garbled.json": "UnicodeDecodeError",
        "truncated.json": "JSONDecodeError",
    }


def test_full_disk_raises_clearly_and_keeps_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "cell.json"
    write_json_atomic(path, {"version": 1})

    def full_disk(src: str, dst: str) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "replace", full_disk)
    with pytest.raises(ResultsWriteError, match=r"cannot write .*cell.json: No space left"):
        write_json_atomic(path, {"version": 2})
    assert json.loads(path.read_text()) == {"version": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["cell.json"]  # no temporary left


def test_unwritable_folder_raises_clearly(tmp_path: Path) -> None:
    blocker = tmp_path / "results"
    blocker.write_text("a file where a folder should be")
    with pytest.raises(ResultsWriteError, match=r"cannot write .*results/vm-quick/x.json"):
        write_json_atomic(blocker / "vm-quick" / "x.json", {})


def test_nan_is_refused_not_written(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="Out of range float"):
        write_json_atomic(tmp_path / "x.json", {"median_s": float("nan")})
    assert list(tmp_path.iterdir()) == []


def test_the_newest_run_is_never_the_reference_even_when_it_was_written_last(
    tmp_path: Path,
) -> None:
    for name in ("vm-epyc-2c-quick-01234567", REFERENCE_RUN):  # the reference written last
        write_json_atomic(tmp_path / name / "machine.json", {"fingerprint": name})
        os.utime(tmp_path / name / "machine.json", (1e9, 1e9 + len(name)))
    assert newest_run(tmp_path) == tmp_path / "vm-epyc-2c-quick-01234567"
    (tmp_path / "vm-epyc-2c-quick-01234567" / "machine.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"the reference run is .*: name it to use it"):
        newest_run(tmp_path)
