"""Results on disk and as tidy records: where they live, how they are written and read back.

    results/cells/<host>-<grid>/<cell_id>.json   one per timed, skipped or failed cell
                                                 (train-*.json: a training cell)
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
from collections.abc import Iterable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from loopvec.backends import backend_names

CELLS = "cells"
RAW = "raw"
MACHINE_FILE = "machine.json"


class ResultsWriteError(OSError):
    """A result could not be written; what was written before is intact."""


@dataclass(frozen=True)
class Record:
    """One cell of one run, tidy: timings in seconds, None where the cell was not timed."""

    backend: str
    m: int
    n: int
    threads: int
    dtype: str
    layout: str
    x_bytes: int
    host: str
    status: str  #: timed | skipped | failed
    reason: str | None = None
    median_s: float | None = None
    iqr_s: float | None = None
    q1_s: float | None = None
    q3_s: float | None = None
    min_s: float | None = None
    rounds: int | None = None
    compile_s: float | None = None
    predicted_s: float | None = None
    finished_at: str = ""

    @property
    def cell(self) -> tuple[str, int, int, int, str, str]:
        """What was measured, whatever the host: (backend, m, n, threads, dtype, layout)."""
        return (self.backend, self.m, self.n, self.threads, self.dtype, self.layout)

    @property
    def timed(self) -> bool:
        return self.status == "timed"


@dataclass(frozen=True)
class TrainingRecord:
    """One training cell of one run: seconds per whole run of `iterations` steps."""

    backend: str
    dataset: str
    m: int
    n: int
    iterations: int
    threads: int
    learning_rate: float
    host: str
    status: str  #: timed | skipped | failed
    record_every: int = 100
    reason: str | None = None
    median_s: float | None = None
    iqr_s: float | None = None
    q1_s: float | None = None
    q3_s: float | None = None
    min_s: float | None = None
    rounds: int | None = None
    compile_s: float | None = None  #: the first gradient call in the process
    predicted_s: float | None = None  #: iterations x one warm gradient call
    accuracy: float | None = None  #: training accuracy of the learned w, b
    final_cost: float | None = None
    finished_at: str = ""

    @property
    def problem(self) -> tuple[str, int, int, int]:
        """What was trained on: (dataset, m, n, iterations); speedups compare within one."""
        return (self.dataset, self.m, self.n, self.iterations)

    @property
    def cell(self) -> tuple[Any, ...]:
        """What was measured, whatever the host: the problem, then backend and threads."""
        return (*self.problem, self.backend, self.threads)

    @property
    def timed(self) -> bool:
        return self.status == "timed"


@dataclass(frozen=True)
class Results:
    """Records of one or more runs, merged, with the machine record of each host."""

    records: tuple[Record, ...]
    machines: dict[str, dict[str, Any]]
    training: tuple[TrainingRecord, ...] = ()

    def for_host(self, host: str) -> Results:
        return Results(
            tuple(r for r in self.records if r.host == host),
            {host: self.machines[host]},
            tuple(r for r in self.training if r.host == host),
        )

    @property
    def hosts(self) -> list[str]:
        return sorted({r.host for r in self.records} | {r.host for r in self.training})


def _plain(value: Any) -> Any:
    """JSON for the few non-JSON values results carry: dataclasses (a Cell in test params)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` all at once, or raise ResultsWriteError and leave `path` as it was."""
    path = Path(path)
    temporary: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        with os.fdopen(descriptor, "wb") as file:
            file.write(data)
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


def write_json_atomic(path: Path, data: Any) -> None:
    """`data` as indented JSON (no NaN: a NaN timing is a bug), written atomically."""
    text = json.dumps(data, indent=1, sort_keys=True, allow_nan=False, default=_plain)
    write_bytes_atomic(path, (text + "\n").encode("utf-8"))


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


def newest_run(results_dir: Path) -> Path:
    """The run folder under results_dir/cells whose machine record was written last."""
    machines = sorted(
        Path(results_dir).glob(f"{CELLS}/*/{MACHINE_FILE}"), key=lambda p: p.stat().st_mtime
    )
    if not machines:
        raise FileNotFoundError(f"no benchmark run under {Path(results_dir) / CELLS}")
    return machines[-1].parent


AnyRecord = Record | TrainingRecord
_FIELDS = {kind: {f.name for f in fields(kind)} for kind in (Record, TrainingRecord)}


def _record(data: dict[str, Any]) -> AnyRecord:
    """A cell file's or benchmark's fields as a Record, or a TrainingRecord if kind says so."""
    kind = TrainingRecord if data.get("kind") == "training" else Record
    return kind(**{key: value for key, value in data.items() if key in _FIELDS[kind]})


def _from_run_folder(folder: Path) -> tuple[list[AnyRecord], dict[str, dict[str, Any]]]:
    machine = json.loads((folder / MACHINE_FILE).read_text(encoding="utf-8"))
    return [_record(cell) for cell in read_cells(folder)], {machine["host"]: machine}


def _from_raw_json(path: Path) -> tuple[list[AnyRecord], dict[str, dict[str, Any]]]:
    """pytest-benchmark's JSON: timed cells only (skips live in cell files), stats in seconds."""
    raw = json.loads(Path(path).read_text(encoding="utf-8"))
    machine = raw["machine_info"].get("loopvec") or {"host": raw["machine_info"]["node"]}
    records = [
        _record(
            {
                **bench["extra_info"],
                **{f"{key}_s": bench["stats"][key] for key in ("median", "iqr", "q1", "q3", "min")},
                "rounds": bench["stats"]["rounds"],
                "host": machine["host"],
                "status": "timed",
                "finished_at": raw["datetime"],
            }
        )
        for bench in raw["benchmarks"]
    ]
    return records, {machine["host"]: machine}


def _read_any(path: Path) -> tuple[list[AnyRecord], dict[str, dict[str, Any]]]:
    """Records and machines from one path of any kind load_results takes; ValueError if foreign."""
    try:
        if path.is_file():
            return _from_raw_json(path)
        if (path / MACHINE_FILE).exists():
            return _from_run_folder(path)
        if (path / CELLS).is_dir():
            return _from_run_folder(newest_run(path))
    except (KeyError, TypeError, json.JSONDecodeError) as error:
        raise ValueError(
            f"{path} is not a loopvec benchmark result ({type(error).__name__}: {error})"
        ) from None
    raise FileNotFoundError(
        f"{path} is neither a run folder, a results folder nor a pytest-benchmark JSON"
    )


def load_results(paths: Iterable[Path]) -> Results:
    """Tidy records from run folders, results folders (their newest run) and raw JSON files.

    Several runs merge into one set; where two hold the same cell of the same host, the one
    that finished last wins.
    """
    newest: dict[tuple[str, str, tuple[Any, ...]], AnyRecord] = {}
    machines: dict[str, dict[str, Any]] = {}
    for path in map(Path, paths):
        if not path.exists():
            raise FileNotFoundError(
                f"{path} does not exist: run the benchmark first (nox -s bench)"
            )
        records, machine = _read_any(path)
        machines.update(machine)
        for record in records:
            key = (record.host, type(record).__name__, record.cell)
            if key not in newest or record.finished_at >= newest[key].finished_at:
                newest[key] = record
    registry = {name: index for index, name in enumerate(backend_names())}

    def order(r: AnyRecord) -> tuple[Any, ...]:
        """Host, then (dataset for training cells) smallest problem first, registry order."""
        dataset = r.dataset if isinstance(r, TrainingRecord) else ""
        backend = (registry.get(r.backend, len(registry)), r.backend)
        return (r.host, dataset, r.m * r.n, r.m, *backend, r.threads)

    ordered = sorted(newest.values(), key=order)
    return Results(
        tuple(r for r in ordered if isinstance(r, Record)),
        machines,
        tuple(r for r in ordered if isinstance(r, TrainingRecord)),
    )
