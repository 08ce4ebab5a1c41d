"""One run at a time per run folder: two runs timing into one folder share the cores and mix
their timings, so the second stops with a message that names the first.

The lock is an operating-system file lock (the `filelock` package) on `<run>/.lock`: the system
releases it when its process ends, however it ends, so a crashed run never leaves a stale lock.
Beside it, `<run>/.lock.json` says who holds it (pid, host, start time, command) for the message;
a note left by a crashed run is simply overwritten by the next holder.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

LOCK_FILE = ".lock"
OWNER_FILE = ".lock.json"


class RunInUseError(RuntimeError):
    """Another process is timing into the run folder."""


def _owner(folder: Path) -> str:
    """Who holds the lock of `folder`, in words, from its note."""
    try:
        note = json.loads((folder / OWNER_FILE).read_text(encoding="utf-8"))
        return (
            f"pid {note['pid']} on host {note['host']}, started {note['started_at']}: "
            f"{note['command']}"
        )
    except (OSError, ValueError, KeyError, TypeError):
        return "another process (it has not said which yet)"


@contextmanager
def run_lock(folder: Path) -> Iterator[None]:
    """Hold `folder`'s lock while the block runs; RunInUseError naming the holder if another
    process has it. Creates the folder; OSError if it cannot."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    lock = FileLock(folder / LOCK_FILE)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise RunInUseError(
            f"{folder} is being written by another run ({_owner(folder)}); wait for it to "
            "finish, or time into another --results-dir"
        ) from None
    note = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": " ".join(sys.argv),
    }
    try:
        (folder / OWNER_FILE).write_text(json.dumps(note), encoding="utf-8")
        yield
    finally:
        (folder / OWNER_FILE).unlink(missing_ok=True)
        lock.release()
