"""The driver of a run: it takes the run folder's lock, makes the folder ready, and starts each
pass as a process of its own (`python -m pytest bench ... --pass K`), one after the other, so that
every pass gets a fresh process (memory layout, hash seeds, JIT caches loaded anew). It hands each
pass the checked settings, the run folder and the machine record (`PassSpec`, in the environment),
and, when asked, the finished run folder to `loopvec report`: nothing after it guesses the run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from loopvec.machine import machine_record
from loopvec.runner.folder import locked, prepare
from loopvec.runner.settings import Settings

#: Set for the passes a driver runs: their `PassSpec`, as JSON.
PASS_ENV = "LOOPVEC_PASS"
#: pytest's exit codes the driver reads or gives (pytest.ExitCode: it does not import pytest).
OK, TESTS_FAILED, INTERRUPTED, NO_TESTS_COLLECTED = 0, 1, 2, 5


@dataclass(frozen=True)
class PassSpec:
    """What a driver hands each of its passes: the run's settings, folder and machine record."""

    settings: Settings
    folder: Path
    machine: dict[str, Any]

    def to_json(self) -> str:
        return json.dumps(
            {
                "settings": self.settings.to_json(),
                "folder": str(self.folder),
                "machine": self.machine,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> PassSpec:
        values = json.loads(text)
        settings = Settings.from_json(values["settings"])
        return cls(settings, Path(values["folder"]), values["machine"])


def locate(settings: Settings) -> tuple[Path, dict[str, Any]]:
    """This machine's record (bandwidth not measured) and the run folder of `settings` on it."""
    machine = machine_record(measure_bandwidth=False)
    return settings.run_folder(machine).absolute(), machine


def begin(folder: Path, settings: Settings, machine: dict[str, Any]) -> tuple[PassSpec, list[str]]:
    """Make the locked run folder ready (`folder.prepare`): what its passes are handed, and what
    to tell the user."""
    record, notes = prepare(folder, settings, machine)
    return PassSpec(settings, folder, record), notes


@dataclass
class Driver:
    """Runs the passes of one run as child processes of `command` (pytest's, less --fresh,
    which the driver applies once), holding the run folder's lock for all of them."""

    settings: Settings
    command: Sequence[str]
    cwd: Path

    def run(self) -> int:
        """The passes, then the report if the settings ask for it; pytest's exit code."""
        folder, machine = locate(self.settings)
        with locked(folder):
            spec, notes = begin(folder, self.settings, machine)
            for note in notes:
                print(f"loopvec: {note}", flush=True)
            for number in range(1, self.settings.passes + 1):
                code = self.run_pass(number, spec)
                if code not in (OK, NO_TESTS_COLLECTED):
                    return code
        if self.settings.report and draw_report(folder, self.settings.update_reference) != 0:
            return TESTS_FAILED  # a failure, not an interrupt: what went wrong is on stderr
        return OK

    def run_pass(self, number: int, spec: PassSpec) -> int:
        """Pass `number` as a child process (`run_child`)."""
        arguments = [a for a in self.command if a != "--fresh"]
        command = [sys.executable, "-m", "pytest", *arguments, f"--pass={number}"]
        return run_child(command, self.cwd, {**os.environ, PASS_ENV: spec.to_json()})


def run_child(
    command: Sequence[str], cwd: Path, env: dict[str, str], output: IO[str] | None = None
) -> int:
    """A pass (or a run) as a child process, to its end, its output to `output` if given: its
    exit code. Ctrl-C reaches the child too (its process group), SIGTERM is passed on, and the
    child is waited for (it cleans up): INTERRUPTED."""
    child = subprocess.Popen(command, cwd=cwd, env=env, stdout=output, stderr=output)
    try:
        return child.wait()
    except KeyboardInterrupt:
        child.terminate()
        child.wait()
        return INTERRUPTED


def draw_report(folder: Path, update_reference: bool) -> int:
    """`loopvec report FOLDER`: the figures, REPORT.md and report.html of the run just timed."""
    from loopvec.cli import main  # noqa: PLC0415 (matplotlib: only once the timing is over)

    return main(["report", str(folder), *(["--update-reference"] if update_reference else [])])
