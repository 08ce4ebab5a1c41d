"""The run folder, made ready once by whoever starts the passes: its lock, --fresh, what a killed
run left half-written, the machine record (one machine state per folder, never replaced by
another's), and damaged files set aside for inspection rather than read or lost."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from loopvec.machine import read_bandwidths
from loopvec.results import (
    CANARY_FOLDER,
    DAMAGED,
    MACHINE_FILE,
    RAW,
    TEMPORARY_GLOB,
    ResultsWriteError,
    cell_paths,
    write_json_atomic,
)
from loopvec.runlock import RunInUseError, run_lock
from loopvec.runner.settings import Settings, SettingsError, json_seconds


class FolderError(RuntimeError):
    """The run folder cannot take this run: in use, of another machine state, or unwritable."""


@contextmanager
def locked(folder: Path) -> Iterator[None]:
    """Hold the run folder's lock (`loopvec.runlock`) while the block runs; FolderError naming
    its holder, or why the folder cannot be made."""
    with ExitStack() as stack:
        try:
            stack.enter_context(run_lock(folder))
        except RunInUseError as error:
            raise FolderError(str(error)) from None
        except OSError as error:
            raise SettingsError(f"--results-dir: cannot write {folder}: {error}") from None
        yield


def prepare(
    folder: Path, settings: Settings, machine: dict[str, Any]
) -> tuple[dict[str, Any], list[str]]:
    """Make the locked `folder` ready for the run's passes and write its machine record (with
    the read bandwidth: an earlier pass's on this machine state, else measured now unless
    settings say not to). Returns that record, and what to tell the user (files set aside)."""
    if settings.fresh:
        written = [folder / MACHINE_FILE, *folder.glob(f"{RAW}/*.json")]
        for path in [*cell_paths(folder), *written, *folder.glob(f"{CANARY_FOLDER}/*.json")]:
            path.unlink(missing_ok=True)
    for path in [*folder.glob(TEMPORARY_GLOB), *folder.glob(f"{RAW}/{TEMPORARY_GLOB}")]:
        path.unlink(missing_ok=True)  # half-written by a killed run: under the lock, never ours
    notes: list[str] = []
    earlier = _earlier_machine(folder, machine, settings.update_reference, notes)
    record = {**machine}
    if "read_bandwidth_bytes_per_s" in earlier:  # measured for this run before (same machine)
        record["read_bandwidth_bytes_per_s"] = earlier["read_bandwidth_bytes_per_s"]
    elif settings.measure_bandwidth:
        record["read_bandwidth_bytes_per_s"] = read_bandwidths()
    record.update(
        run=folder.name,
        grid=settings.run_grid,
        passes=settings.passes,
        blocks=settings.blocks,
        budget_s=json_seconds(settings.budget_s),
        train_budget_s=json_seconds(settings.train_budget_s),
        unavailable_backends=settings.unavailable,
    )
    try:
        write_json_atomic(folder / MACHINE_FILE, record)
    except ResultsWriteError as error:
        raise FolderError(f"cannot start the run: {error}") from None
    return record, notes


def _earlier_machine(
    folder: Path, machine: dict[str, Any], update_reference: bool, notes: list[str]
) -> dict[str, Any]:
    """The folder's machine record, if it is this machine state's. A folder holds one machine
    state's run: FolderError if it is another's; a record that cannot be read is set aside."""
    path = folder / MACHINE_FILE
    if not path.exists():
        return {}
    try:
        earlier = json.loads(path.read_text(encoding="utf-8"))
        fingerprint = earlier.get("fingerprint")
    except (ValueError, AttributeError) as error:
        notes.append(set_aside(path, f"{type(error).__name__}: {error}"))
        return {}
    if fingerprint != machine["fingerprint"]:
        what = "the reference run" if update_reference else "a run"
        raise FolderError(
            f"{folder} holds {what} of another machine state (host {earlier.get('host')!r}, "
            f"fingerprint {fingerprint or 'none: an older format'}); this machine is "
            f"{machine['fingerprint']}. A machine record is never replaced by another's: add "
            "--fresh to replace that run, or time into another --results-dir"
        )
    return dict(earlier)


def set_aside(path: Path, why: str) -> str:
    """Move a damaged file into the run's damaged/ folder, kept for inspection; what to say."""
    aside = path.parent / DAMAGED / f"{path.name}.{dt.datetime.now():%Y%m%d-%H%M%S}"
    aside.parent.mkdir(exist_ok=True)
    path.replace(aside)
    return f"warning: {path} cannot be read ({why}); moved to {aside}, its cell is timed again"
