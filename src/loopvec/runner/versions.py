"""Two versions of the code in one run, their passes alternating: `pytest bench --against REV`.

A change is measured against the code it changes on the same machine in the same minutes. The
working tree (A/B: REV is A, the baseline; the working tree is B) and REV each run from their own
files (REV from a `git worktree` of it, removed at the end; each from its checkout's `src/` on
PYTHONPATH, the environment's packages shared), each into its own results folder under one run
folder, with the same options, so the same cells and problems in the same pass orders. Their
passes alternate in ABBA order (`abba`): A1 B1 B2 A2 A3 B3 ..., so that pass k of A ran next to
pass k of B, and which of the pair ran first alternates: `loopvec compare RUN` pairs them
(`loopvec.compare`). With two revisions (`--against A --against B`) the two are compared, the
working tree not timed.

Each pass is the version's own bench run as `--pass K` (its lock, its resume rule): an
interrupted run, given again, resumes each version where it stopped.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loopvec.provenance import CODE_PATHS, run_name
from loopvec.results import AGAINST_FILE, write_json_atomic
from loopvec.runner.driver import NO_TESTS_COLLECTED, OK, PASS_ENV, draw_report, locate, run_child
from loopvec.runner.folder import locked
from loopvec.runner.settings import Settings, SettingsError

#: Passes of each version unless --passes says otherwise: three ABBA cycles.
DEFAULT_PASSES = 6
#: Options the driver gives each version's passes itself (each takes a value but --fresh,
#: --report and --update-reference).
_OWN_OPTIONS = ("--against", "--results-dir", "--passes", "--pass")
_OWN_FLAGS = ("--fresh", "--report")


@dataclass(frozen=True)
class Version:
    """One version of the code in the run: what the user named it, its commit, whether it has
    changes not committed (the working tree), where its files are, and its results folder
    (A or B, in the run folder)."""

    label: str
    revision: str | None  # None: the working tree
    commit: str
    dirty: bool
    checkout: Path
    folder: str


def abba(passes: int) -> list[tuple[int, int]]:
    """(version 0 or 1, pass number) in the order they run: A1 B1 B2 A2 A3 B3 B4 A4 ..."""
    return [(v if k % 2 else 1 - v, k) for k in range(1, passes + 1) for v in (0, 1)]


def git(folder: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(folder), *args], check=False, capture_output=True, text=True, timeout=120
    )
    if done.returncode != 0:
        raise SettingsError((done.stderr or done.stdout).strip().splitlines()[-1])
    return done.stdout.strip()


def checkout_root(folder: Path) -> Path:
    """The git checkout of loopvec holding `folder`; SettingsError if there is none."""
    try:
        root = Path(git(folder, "rev-parse", "--show-toplevel"))
    except (SettingsError, OSError) as error:
        raise SettingsError(f"--against needs a git checkout of loopvec: {error}") from None
    if not (root / "src" / "loopvec").is_dir():
        raise SettingsError(f"--against: {root} is not a checkout of loopvec (no src/loopvec)")
    return root


def resolve(root: Path, revision: str) -> str:
    """The commit `revision` names in the checkout; SettingsError naming it if none."""
    try:
        return git(root, "rev-parse", "--verify", "--quiet", f"{revision}^{{commit}}")
    except SettingsError:
        raise SettingsError(f"--against {revision}: not a commit of {root}") from None


@contextmanager
def versions(root: Path, revisions: Sequence[str]) -> Iterator[list[Version]]:
    """The two versions of `revisions` (one: it and the working tree; two: those), each REV
    checked out in a worktree of its own while the block runs."""
    commits = [resolve(root, r) for r in revisions]
    with ExitStack() as stack:
        scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="loopvec-against-")))
        made: list[Version] = []
        for revision, commit in zip(revisions, commits, strict=True):
            path = scratch / f"{len(made)}-{commit[:12]}"
            git(root, "worktree", "add", "--detach", "--quiet", str(path), commit)
            stack.callback(git, root, "worktree", "remove", "--force", str(path))
            made.append(Version(f"{revision} ({commit[:8]})", revision, commit, False, path, ""))
        if len(made) == 1:
            head = resolve(root, "HEAD")
            dirty = bool(git(root, "status", "--porcelain", "--", *CODE_PATHS))
            changes = " + changes not committed" if dirty else ""
            made.append(Version(f"working tree ({head[:8]}{changes})", None, head, dirty, root, ""))
        yield [dataclasses.replace(v, folder=f) for v, f in zip(made, "AB", strict=True)]


def pass_arguments(arguments: Sequence[str]) -> list[str]:
    """The user's pytest arguments without the options the driver sets for each pass."""
    kept: list[str] = []
    skip = False
    for argument in arguments:
        if skip:
            skip = False
        elif argument in _OWN_OPTIONS:
            skip = True
        elif argument in _OWN_FLAGS or argument.startswith(tuple(f"{o}=" for o in _OWN_OPTIONS)):
            continue
        else:
            kept.append(argument)
    return kept


def run_folder(settings: Settings, machine: dict[str, Any], chosen: Sequence[Version]) -> Path:
    """'<the run's name>-vs-<REV's commit>' (two revisions: '<A>-vs-<B>') under results."""
    a, b = chosen
    vs = "worktree" if b.revision is None else b.commit[:8]
    return settings.results_dir / f"{run_name(machine, settings.run_grid)}-{a.commit[:8]}-vs-{vs}"


@dataclass
class AgainstDriver:
    """Runs the passes of two versions in ABBA order, each a child process in its version's
    checkout, holding the run folder's lock; then prints the comparison."""

    settings: Settings
    revisions: Sequence[str]
    command: Sequence[str]  # pytest's arguments as given
    cwd: Path

    def run(self) -> int:
        if self.settings.update_reference:
            raise SettingsError("--against times two versions; the reference run is of one")
        root = checkout_root(self.cwd)
        _, machine = locate(self.settings)
        with versions(root, self.revisions) as chosen:
            folder = run_folder(self.settings, machine, chosen).absolute()
            with locked(folder):
                code = self._passes(folder, chosen, self.cwd.relative_to(root))
            if code == OK:
                code = self._finish(folder, chosen)
        return code

    def _passes(self, folder: Path, chosen: list[Version], relative: Path) -> int:
        if self.settings.fresh:
            for version in chosen:
                shutil.rmtree(folder / version.folder, ignore_errors=True)
        passes = self.settings.passes
        record: dict[str, Any] = {
            "versions": [{**dataclasses.asdict(v), "checkout": str(v.checkout)} for v in chosen],
            "passes": passes,
            "order": [[chosen[v].folder, k] for v, k in abba(passes)],
            "started_at": _now(),
            "ran": [],
        }
        arguments = pass_arguments(self.command)
        for index, number in abba(passes):
            version = chosen[index]
            print(
                f"loopvec: {version.folder} = {version.label}: pass {number}/{passes}", flush=True
            )
            started = _now()
            code = self._pass(version, number, arguments, folder, relative)
            record["ran"].append([version.folder, number, code, started, _now()])
            write_json_atomic(folder / AGAINST_FILE, record)
            if code not in (OK, NO_TESTS_COLLECTED):
                return code
        return OK

    def _pass(
        self, version: Version, number: int, arguments: list[str], folder: Path, relative: Path
    ) -> int:
        """Pass `number` of `version`: its own bench, from its own files, into its folder."""
        command = [
            sys.executable, "-m", "pytest", *arguments,
            f"--results-dir={folder / version.folder}",
            f"--passes={self.settings.passes}", f"--pass={number}",
        ]  # fmt: skip
        path = os.pathsep.join(
            filter(None, [str(version.checkout / "src"), os.getenv("PYTHONPATH")])
        )
        env = {k: v for k, v in os.environ.items() if k != PASS_ENV} | {"PYTHONPATH": path}
        return run_child(command, version.checkout / relative, env)

    def _finish(self, folder: Path, chosen: list[Version]) -> int:
        """The comparison of the two versions, and with --report each version's report."""
        from loopvec.cli import main  # noqa: PLC0415 (matplotlib: only once the timing is over)

        code = main(["compare", str(folder)])
        if self.settings.report:
            for version in chosen:
                for machine_file in sorted((folder / version.folder).glob("*/machine.json")):
                    code = draw_report(machine_file.parent, False) or code
        return code


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
