"""Where results live and how they are written: one JSON file per finished cell, atomically.

    results/cells/<host>-<grid>/<cell_id>.json   one per timed, skipped or failed cell
    results/cells/<host>-<grid>/machine.json     the machine record of the run
    results/raw/<date>-<host>-<grid>.json        pytest-benchmark's own JSON of each session

A cell file is complete or absent: it is written to a temporary file in the same folder, flushed
to disk, then renamed over the target (os.replace is atomic on POSIX and Windows), so an
interrupted run or a full disk never leaves a half-written cell behind.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from pathlib import Path
from typing import Any

CELLS = "cells"
RAW = "raw"
MACHINE_FILE = "machine.json"


class ResultsWriteError(OSError):
    """A result could not be written; what was written before is intact."""


def _plain(value: Any) -> Any:
    """JSON for the few non-JSON values results carry: dataclasses (a Cell in test params)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def write_json_atomic(path: Path, data: Any) -> None:
    """Write `data` as JSON to `path` all at once, or raise ResultsWriteError and leave it be."""
    path = Path(path)
    temporary: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            json.dump(data, file, indent=1, sort_keys=True, allow_nan=False, default=_plain)
            file.write("\n")
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException as error:  # an interrupt mid-write must not leave a temporary behind
        if temporary is not None and os.path.exists(temporary):
            os.unlink(temporary)
        if isinstance(error, OSError):
            raise ResultsWriteError(
                f"cannot write {path}: {error.strerror or error}; files written before are intact"
            ) from error
        raise


def run_dir(results_dir: Path, host: str, grid: str) -> Path:
    """The folder of one run's cell files: one per host and grid, so reruns resume there."""
    return Path(results_dir) / CELLS / f"{host}-{grid}"


def read_cells(folder: Path) -> list[dict[str, Any]]:
    """Every cell record in a run folder, in file-name order (the machine record excluded)."""
    return [
        json.loads(path.read_text(encoding="utf-8"))
        for path in sorted(Path(folder).glob("*.json"))
        if path.name != MACHINE_FILE
    ]
