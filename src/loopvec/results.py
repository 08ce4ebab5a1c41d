"""Results on disk and as tidy records: where they live, how they are written and read back.

    results/<run>/                  one run: one machine state, one grid (`loopvec.provenance`),
                                    e.g. results/vm-epyc-2c-default-3f9a1c2e/ (git-ignored)
        <cell_id>.json              one per timed, skipped or failed cell (train-*.json: training)
        machine.json                the machine record of the run, with its fingerprint
        raw/<time>-pass<K>-<pid>.json  pytest-benchmark's JSON of each pass, every round
        figures/*.png, REPORT.md    what `loopvec report` draws from the cells
    results/reference/              the committed reference run, the same layout: read-only to
                                    every command unless asked (--update-reference)

A cell file is complete or absent: it is written to a temporary file in the same folder, flushed
to disk, then renamed over the target (os.replace is atomic on POSIX and Windows), so an
interrupted run or a full disk never leaves a half-written cell behind. Every cell names its run,
its machine fingerprint and its code fingerprint; files of an older format, which do not, are
refused rather than mixed with timings of known origin.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import re
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from loopvec.backends import backend_names
from loopvec.drift import CanaryMoment
from loopvec.grid import Cell, TrainingCell
from loopvec.provenance import FORMAT
from loopvec.stats import Estimate, instability, seed_of, time_estimate

RAW = "raw"
#: Each pass process's canary (`loopvec.runner.canary`): passes/pass-K-PID.json.
CANARY_FOLDER = "passes"
#: In a run of two versions (`pytest bench --against REV`): the versions and their passes' order.
AGAINST_FILE = "against.json"
FIGURES = "figures"
REPORT_FILE = "REPORT.md"
#: The interactive report, beside REPORT.md.
PAGE_FILE = "report.html"
MACHINE_FILE = "machine.json"
#: Where the bench moves cell files it cannot read, under the run folder (kept for inspection).
DAMAGED = "damaged"
#: The temporary files of `write_bytes_atomic`; one left behind is from a killed process.
TEMPORARY_GLOB = ".*.tmp"
#: The committed reference run's folder name under a results folder.
REFERENCE_RUN = "reference"


class ResultsWriteError(OSError):
    """A result could not be written; what was written before is intact."""


#: samples[pass][block][round]: seconds per call (`loopvec.stats`), as tuples (hashable).
SampleTuple = tuple[tuple[tuple[float, ...], ...], ...]


@dataclass(frozen=True, kw_only=True)
class Provenance:
    """Where a record came from: its run folder, machine state and code (`loopvec.provenance`),
    and what was measured: the samples by pass, block and round, and their summary."""

    run: str = ""
    machine_fingerprint: str = ""
    code_fingerprint: str = ""
    origin: str = "loopvec"  #: whose backend: loopvec's own, or a plug-in's (`Backend.origin`)
    data: str | None = None  #: --data: the user's data set it was timed on, and its hash
    data_sha256: str | None = None
    data_standardized: bool | None = None
    git_commit: str | None = None
    git_dirty: bool | None = None
    passes: tuple[int, ...] = ()  #: the pass numbers the samples come from
    samples: SampleTuple = ()
    median_s: float | None = None  #: `stats.time_estimate`: geometric mean of pass medians
    low_s: float | None = None  #: its 95 % interval
    high_s: float | None = None
    rounds: int | None = None  #: rounds in all passes and blocks
    unstable: tuple[str, ...] = ()  #: `stats.instability`: why not to trust it as it stands
    #: the blocked kernels' plan it ran with, as its cell file records it (`loopvec.tuning`
    #: `PlanState.as_json`); None for the other backends. Not compared: the code fingerprint
    #: already holds the plan's values
    kernel_plan: dict[str, Any] | None = field(default=None, compare=False)

    @property
    def estimate(self) -> Estimate | None:
        if self.median_s is None or self.low_s is None or self.high_s is None:
            return None
        return Estimate(self.median_s, self.low_s, self.high_s)

    def seed(self) -> int:
        """The seed of any resampling of this record: from its run and cell, never random."""
        return seed_of(self.run, self.cell)  # type: ignore[attr-defined]


@dataclass(frozen=True, kw_only=True)
class Record(Cell, Provenance):
    """One cell of one run, tidy: its parameters (`grid.Cell`, declared there once for the grid,
    the cell file and the record), where it came from, timings in seconds (None where the cell
    was not timed)."""

    host: str
    status: str  #: timed | skipped | failed
    reason: str | None = None
    compile_s: float | None = None
    predicted_s: float | None = None
    finished_at: str = ""
    #: `loopvec.memory`: peak bytes one call allocated (the largest over the passes), in this
    #: process and, for Dask, its workers' added; the same for moving the inputs into the
    #: backend's arrays; how they were measured; each measuring call's peak, workers' included
    peak_bytes: int | None = None
    worker_peak_bytes: int | None = None
    inputs_peak_bytes: int | None = None
    inputs_worker_peak_bytes: int | None = None
    peak_method: str | None = None
    peak_bytes_calls: tuple[int, ...] = ()

    @property
    def call_bytes(self) -> int | None:
        """Peak bytes of one call, its workers' included; None if not measured."""
        if self.peak_bytes is None:
            return None
        return self.peak_bytes + (self.worker_peak_bytes or 0)

    @property
    def cell(self) -> tuple[str, int, int, int, str, str]:
        """What was measured, whatever the host: (backend, m, n, threads, dtype, layout)."""
        return (self.backend, self.m, self.n, self.threads, self.dtype, self.layout)

    @property
    def group(self) -> tuple[int, int, int, str, str]:
        """The backends of one (m, n, threads, dtype, layout) were timed side by side."""
        return (self.m, self.n, self.threads, self.dtype, self.layout)

    @property
    def timed(self) -> bool:
        return self.status == "timed"


@dataclass(frozen=True, kw_only=True)
class TrainingRecord(TrainingCell, Provenance):
    """One training cell of one run (its parameters: `grid.TrainingCell`): seconds per whole run
    of `iterations` steps."""

    host: str
    status: str  #: timed | skipped | failed
    reason: str | None = None
    compile_s: float | None = None  #: the first gradient call in the process
    predicted_s: float | None = None  #: iterations x one warm gradient call
    accuracy: float | None = None  #: training accuracy of the learned w, b
    final_cost: float | None = None
    finished_at: str = ""
    #: `loopvec.memory`: peak bytes of one step of the loop and of a whole run (its first pass),
    #: in this process and, for Dask, its workers' added
    step_peak_bytes: int | None = None
    step_worker_peak_bytes: int | None = None
    run_peak_bytes: int | None = None
    run_worker_peak_bytes: int | None = None
    peak_method: str | None = None

    def peak_of(self, what: str) -> int | None:
        """Peak bytes of one step (`what` "step") or a whole run ("run"), its workers' included;
        None if not measured."""
        peak: int | None = getattr(self, f"{what}_peak_bytes")
        return None if peak is None else peak + (getattr(self, f"{what}_worker_peak_bytes") or 0)

    @property
    def problem(self) -> tuple[str, int, int, int]:
        """What was trained on: (dataset, m, n, iterations); speedups compare within one."""
        return (self.dataset, self.m, self.n, self.iterations)

    @property
    def cell(self) -> tuple[Any, ...]:
        """What was measured, whatever the host: the problem, then backend, threads and loop."""
        return (*self.problem, self.backend, self.threads, self.loop)

    @property
    def timed(self) -> bool:
        return self.status == "timed"


@dataclass(frozen=True)
class Results:
    """Records of one or more runs, merged, with the machine record of each machine state
    (keyed by fingerprint: two machines never share a record, whatever their host names)."""

    records: tuple[Record, ...]
    machines: dict[str, dict[str, Any]]
    training: tuple[TrainingRecord, ...] = ()
    #: What was not read, or read without its machine record: one sentence each, for the user.
    warnings: tuple[str, ...] = ()

    def for_machine(self, fingerprint: str) -> Results:
        return Results(
            tuple(r for r in self.records if r.machine_fingerprint == fingerprint),
            {fingerprint: self.machines[fingerprint]},
            tuple(r for r in self.training if r.machine_fingerprint == fingerprint),
            self.warnings,
        )

    @property
    def fingerprints(self) -> list[str]:
        """The machine fingerprints of the records, sorted."""
        return sorted({r.machine_fingerprint for r in (*self.records, *self.training)})

    @property
    def runs(self) -> list[str]:
        """The runs the records come from, in the order they first appear."""
        return list(dict.fromkeys(r.run for r in (*self.records, *self.training)))


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
        descriptor, temporary = tempfile.mkstemp(
            dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"
        )
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


def utc_now() -> str:
    """Now, as the files record it: '2026-12-03T19:20:53+00:00'."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def is_run(folder: Path) -> bool:
    """Whether `folder` is a run folder (it holds a machine record)."""
    return (Path(folder) / MACHINE_FILE).is_file()


def reference_run(path: Path) -> Path | None:
    """The reference run folder that holds `path` (or is it), or None."""
    path = Path(path).absolute()
    return next((p for p in (path, *path.parents) if p.name == REFERENCE_RUN and is_run(p)), None)


def cell_paths(folder: Path) -> list[Path]:
    """The cell files of a run folder, in file-name order (not the machine record, nor hidden
    files: a lock's note, a temporary file)."""
    return sorted(
        p for p in Path(folder).glob("*.json") if p.name != MACHINE_FILE and p.name[0] != "."
    )


def read_cells(folder: Path) -> tuple[dict[Path, dict[str, Any]], list[tuple[Path, str]]]:
    """Every cell record in a run folder by its file, in file-name order, and the files that
    cannot be read as one (truncated, garbled, not a cell), each with why."""
    records: dict[Path, dict[str, Any]] = {}
    damaged: list[tuple[Path, str]] = []
    for path in cell_paths(folder):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(record, dict) or "cell_id" not in record:
                raise ValueError("not a cell record")
        except ValueError as error:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            damaged.append((path, f"{type(error).__name__}: {error}"))
        else:
            records[path] = record
    return records, damaged


def run_folder(path: Path) -> Path | None:
    """The run folder that `path` stands for: itself, a results folder's newest run, the run of
    a raw JSON kept in its raw/ folder; None for anything else."""
    path = Path(path)
    if is_run(path) or (path.is_dir() and cell_paths(path)):  # cells without a machine record
        return path
    if path.is_file():
        return (
            path.parent.parent if path.parent.name == RAW and is_run(path.parent.parent) else None
        )
    try:
        return newest_run(path)
    except FileNotFoundError:
        return None


def read_canaries(path: Path) -> tuple[list[CanaryMoment], list[str]]:
    """The canary moments of the run `path` stands for (`run_folder`), in pass order, and a
    sentence for each canary file that cannot be read. None in a run of an older version."""
    folder = run_folder(path)
    moments: list[CanaryMoment] = []
    warnings: list[str] = []
    if folder is None:
        return moments, warnings
    for file in sorted(folder.glob(f"{CANARY_FOLDER}/pass-*.json")):
        try:
            record = json.loads(file.read_text(encoding="utf-8"))
            if record.get("cells_timed") == 0:
                continue  # a pass whose every cell was resumed: it ran at no moment of the run
            moments += [
                CanaryMoment(folder.name, int(record["pass"]), int(record["pid"]), moment, seconds)
                for moment, seconds in record["canary"].items()
            ]
        except (ValueError, KeyError, TypeError) as error:
            warnings.append(f"{file} skipped: it cannot be read ({type(error).__name__}: {error})")
    return sorted(moments, key=lambda c: (c.pass_number, c.pid, c.moment != "start")), warnings


def newest_run(results_dir: Path) -> Path:
    """The run folder under results_dir whose machine record was written last; never the
    reference run, which is used only where it is named."""
    machines = sorted(
        (p for p in Path(results_dir).glob(f"*/{MACHINE_FILE}") if p.parent.name != REFERENCE_RUN),
        key=lambda p: p.stat().st_mtime,
    )
    if not machines:
        reference = Path(results_dir) / REFERENCE_RUN
        hint = (
            f" (the reference run is {reference}: name it to use it)" if is_run(reference) else ""
        )
        raise FileNotFoundError(f"no benchmark run under {results_dir}{hint}")
    return machines[-1].parent


AnyRecord = Record | TrainingRecord
_FIELDS = {kind: {f.name for f in fields(kind)} for kind in (Record, TrainingRecord)}


class OlderFormatError(ValueError):
    """A result written before runs had an identity: its machine and code are unknown."""


class DamagedRecordError(ValueError):
    """A run's machine record cannot be read: the error names the file, not only its run."""


def _older(source: str, what: str) -> OlderFormatError:
    return OlderFormatError(
        f"{source} {what} of an older loopvec format, without machine and code fingerprints: "
        "its timings cannot be told apart from another machine's or another kernel's. "
        "Time the cells again (nox -s bench), or set the old folder aside"
    )


def shared_passes(a: AnyRecord, b: AnyRecord) -> tuple[SampleTuple, SampleTuple, bool]:
    """The samples of the passes both records have, matched by pass (pass k of each ran in one
    process), and whether they were timed side by side, block by block (one problem and thread
    count): what `stats.ratio_estimate` and `stats.pass_log_ratios` take."""
    shared = sorted(set(a.passes) & set(b.passes))
    mine = tuple(a.samples[a.passes.index(p)] for p in shared)
    theirs = tuple(b.samples[b.passes.index(p)] for p in shared)
    paired = isinstance(a, Record) and isinstance(b, Record) and a.group == b.group
    return mine, theirs, paired


def samples_of(cell: dict[str, Any]) -> SampleTuple:
    """A cell file's samples[pass][block][round], passes in order."""
    passes = sorted(cell.get("passes", []), key=lambda p: p["pass"])
    return tuple(tuple(tuple(block) for block in p["blocks"]) for p in passes)


def _summary(cell: dict[str, Any]) -> dict[str, Any]:
    """The measured fields of a timed cell: samples, passes, estimate, interval, instability."""
    samples = samples_of(cell)
    if not samples:
        return {}
    estimate = time_estimate(samples, seed_of(cell.get("run"), cell.get("cell_id")))
    return {
        "samples": samples,
        "passes": tuple(sorted(p["pass"] for p in cell["passes"])),
        "median_s": estimate.value,
        "low_s": estimate.low,
        "high_s": estimate.high,
        "rounds": sum(len(block) for p in samples for block in p),
        "unstable": tuple(instability(samples)),
        "peak_bytes_calls": next(  # `loopvec.memory.call_peak`: in the pass that measured it
            (tuple(p["peak_bytes_calls"]) for p in cell["passes"] if p.get("peak_bytes_calls")), ()
        ),
    }


def _record(data: dict[str, Any], source: str, machine: dict[str, Any]) -> AnyRecord:
    """A cell file's or benchmark's fields as a Record, or a TrainingRecord if kind says so.

    OlderFormatError for fields of an older format; ValueError for a cell of another machine.
    """
    if data.get("format") != FORMAT:
        raise _older(source, "is a cell")
    if data.get("machine_fingerprint") != machine["fingerprint"]:
        raise ValueError(
            f"{source} was timed on machine {data.get('machine_fingerprint')}, not on the run's "
            f"machine {machine['fingerprint']}: a run folder holds one machine's cells"
        )
    kind = TrainingRecord if data.get("kind") == "training" else Record
    data = {**data, **_summary(data)}
    return kind(**{key: value for key, value in data.items() if key in _FIELDS[kind]})


def _machine(record: dict[str, Any], source: str) -> dict[str, dict[str, Any]]:
    if "fingerprint" not in record:
        raise _older(source, "is a machine record")
    return {record["fingerprint"]: record}


def _from_run_folder(
    folder: Path,
) -> tuple[list[AnyRecord], dict[str, dict[str, Any]], list[str]]:
    """The records of a run folder, skipping (and naming) the cell files that cannot be read;
    without a machine record, each machine state gets one that says so."""
    cells, damaged = read_cells(folder)
    warnings = [f"{path} skipped: it cannot be read ({why})" for path, why in damaged]
    path = folder / MACHINE_FILE
    if path.is_file():
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(record, dict):
                raise ValueError(f"a JSON {type(record).__name__}, not an object")
        except ValueError as error:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            raise DamagedRecordError(
                f"{path} cannot be read as a machine record ({type(error).__name__}: {error}): "
                f"restore it, or remove it to read the run's cells without one"
            ) from None
        machines = _machine(record, str(path))
    else:
        machines = {
            str(cell.get("machine_fingerprint")): {
                "fingerprint": cell.get("machine_fingerprint"),
                "host": cell.get("host"),
                "cpu": "unknown CPU (no machine record)",
                "no_machine_record": True,
            }
            for cell in cells.values()
        }
        warnings.append(
            f"{folder} has no {MACHINE_FILE}: its cells are read without a machine record "
            "(no CPU, cores, BLAS or bandwidth)"
        )
    records = []
    for cell_path, cell in cells.items():
        machine = machines.get(str(cell.get("machine_fingerprint")))
        try:
            records.append(_record(cell, str(cell_path), machine or next(iter(machines.values()))))
        except (KeyError, TypeError) as error:
            why = f"{type(error).__name__}: {error}"
            warnings.append(f"{cell_path} skipped: it is not a complete cell ({why})")
    return records, machines, warnings


def _from_raw_json(path: Path) -> tuple[list[AnyRecord], dict[str, dict[str, Any]]]:
    """pytest-benchmark's JSON of one pass (saved with its data): timed cells only (skips live
    in cell files), each block of a cell one benchmark, every round in seconds per call."""
    raw = json.loads(Path(path).read_text(encoding="utf-8"))
    machine = raw["machine_info"].get("loopvec") or {"host": raw["machine_info"]["node"]}
    machines = _machine(machine, f"{path}: its machine_info")
    cells: dict[str, dict[str, Any]] = {}
    for bench in raw["benchmarks"]:
        info = dict(bench["extra_info"])
        number, block = info.pop("pass_number", 1), info.pop("block", 0)
        name = re.sub(r"-b\d+\]$", "]", bench["name"])  # the blocks of a cell, together
        cell = cells.setdefault(
            name,
            {**info, "host": machine["host"], "status": "timed", "finished_at": raw["datetime"]},
        )
        blocks = cell.setdefault("by_pass", {}).setdefault(number, {})
        blocks[block] = bench["stats"]["data"]
    for cell in cells.values():
        by_pass = cell.pop("by_pass")
        cell["passes"] = [
            {"pass": number, "blocks": [blocks[b] for b in sorted(blocks)]}
            for number, blocks in sorted(by_pass.items())
        ]
    records = [_record(cell, f"{path}: benchmark {name}", machine) for name, cell in cells.items()]
    return records, machines


def _read_any(path: Path) -> tuple[list[AnyRecord], dict[str, dict[str, Any]], list[str]]:
    """Records, machines and warnings from one path of any kind load_results takes;
    ValueError if foreign."""
    try:
        if path.is_file():
            return (*_from_raw_json(path), [])
        if is_run(path) or cell_paths(path):
            return _from_run_folder(path)
        if any(path.glob(f"*/{MACHINE_FILE}")):
            return _from_run_folder(newest_run(path))
    except (OlderFormatError, DamagedRecordError):
        raise
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(
            f"{path} is not a loopvec benchmark result ({type(error).__name__}: {error})"
        ) from None
    if orphans := sorted(folder for folder in path.glob("*/") if cell_paths(folder)):
        raise FileNotFoundError(
            f"{path} holds no run with a {MACHINE_FILE}; cells without one are in "
            f"{', '.join(map(str, orphans))}: name such a folder to read its cells without a "
            f"machine record"
        )
    raise FileNotFoundError(
        f"{path} is neither a run folder, a results folder nor a pytest-benchmark JSON"
    )


def load_results(paths: Iterable[Path]) -> Results:
    """Tidy records from run folders, results folders (their newest run) and raw JSON files.

    Several runs merge into one set; where two hold the same cell of the same machine state,
    the one that finished last wins (each record keeps its run, to be labelled with it).
    """
    newest: dict[tuple[str, str, tuple[Any, ...]], AnyRecord] = {}
    machines: dict[str, dict[str, Any]] = {}
    warnings: list[str] = []
    for path in map(Path, paths):
        if not path.exists():
            raise FileNotFoundError(
                f"{path} does not exist: run the benchmark first (nox -s bench)"
            )
        records, machine, said = _read_any(path)
        machines.update(machine)
        warnings.extend(said)
        for record in records:
            key = (record.machine_fingerprint, type(record).__name__, record.cell)
            if key not in newest or record.finished_at >= newest[key].finished_at:
                newest[key] = record
    registry = {name: index for index, name in enumerate(backend_names())}

    def order(r: AnyRecord) -> tuple[Any, ...]:
        """Machine, then (dataset for training cells) smallest problem first, registry order."""
        dataset = r.dataset if isinstance(r, TrainingRecord) else ""
        backend = (registry.get(r.backend, len(registry)), r.backend)
        return (r.machine_fingerprint, dataset, r.m * r.n, r.m, *backend, r.threads)

    ordered = sorted(newest.values(), key=order)
    return Results(
        tuple(r for r in ordered if isinstance(r, Record)),
        machines,
        tuple(r for r in ordered if isinstance(r, TrainingRecord)),
        tuple(warnings),
    )
