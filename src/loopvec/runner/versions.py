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
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loopvec.provenance import CODE_PATHS, run_name
from loopvec.results import AGAINST_FILE, utc_now, write_json_atomic
from loopvec.runner.driver import (
    NO_TESTS_COLLECTED,
    OK,
    PASS_ENV,
    TESTS_FAILED,
    draw_report,
    locate,
    run_child,
)
from loopvec.runner.folder import locked
from loopvec.runner.settings import Settings, SettingsError

#: Passes of each version unless --passes says otherwise: three ABBA cycles.
DEFAULT_PASSES = 6
#: Options the driver gives each version's passes itself: with a value, and flags.
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
    changes: str | None  # the working tree's changes not committed: their hash, or None
    checkout: Path
    folder: str


def abba(passes: int) -> list[tuple[int, int]]:
    """(version 0 or 1, pass number) in the order they run: A1 B1 B2 A2 A3 B3 B4 A4 ..."""
    return [(v if k % 2 else 1 - v, k) for k in range(1, passes + 1) for v in (0, 1)]


def git(folder: Path, *args: str) -> str:
    """git's output in `folder`; SettingsError with git's last words where it fails."""
    done = subprocess.run(
        ["git", "-C", str(folder), *args], check=False, capture_output=True, text=True, timeout=120
    )
    if done.returncode != 0:
        said = (done.stderr or done.stdout).strip().splitlines()
        raise SettingsError(said[-1] if said else f"git {args[0]} failed ({done.returncode})")
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
def worktree(root: Path, commit: str, path: Path) -> Iterator[Path]:
    """`commit` checked out at `path` (a git worktree of `root`) while the block runs; removed
    after, however the block ends (a worktree git cannot remove is deleted and pruned)."""
    git(root, "worktree", "prune")  # what a killed run left registered
    git(root, "worktree", "add", "--detach", "--quiet", str(path), commit)
    try:
        yield path
    finally:
        try:
            git(root, "worktree", "remove", "--force", str(path))
        except (SettingsError, OSError):
            shutil.rmtree(path, ignore_errors=True)
            subprocess.run(["git", "-C", str(root), "worktree", "prune"], check=False)


@contextmanager
def versions(root: Path, revisions: Sequence[str]) -> Iterator[list[Version]]:
    """The two versions of `revisions` (one: it and the working tree; two: those), each REV
    checked out in a worktree of its own while the block runs."""
    commits = [resolve(root, r) for r in revisions]
    with ExitStack() as stack:
        scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="loopvec-against-")))
        made = [
            Version(
                f"{revision} ({commit[:8]})",
                revision,
                commit,
                None,
                stack.enter_context(worktree(root, commit, scratch / f"{k}-{commit[:12]}")),
                "",
            )
            for k, (revision, commit) in enumerate(zip(revisions, commits, strict=True))
        ]
        if len(made) == 1:
            head = resolve(root, "HEAD")
            changes = uncommitted(root)
            said = f" + changes not committed, {changes[:8]}" if changes else ""
            made.append(Version(f"working tree ({head[:8]}{said})", None, head, changes, root, ""))
        yield [dataclasses.replace(v, folder=f) for v, f in zip(made, "AB", strict=True)]


def source_first(checkout: Path, environ: Mapping[str, str]) -> dict[str, str]:
    """`environ` with `checkout`'s src/ first on PYTHONPATH (its loopvec before any installed)
    and without a driver's pass spec (the pass is its own driver)."""
    path = os.pathsep.join(filter(None, [str(checkout / "src"), environ.get("PYTHONPATH")]))
    return {k: v for k, v in environ.items() if k != PASS_ENV} | {"PYTHONPATH": path}


def uncommitted(root: Path) -> str | None:
    """A hash of the checkout's changes to its code (CODE_PATHS) not committed, untracked files
    included; None where there are none."""
    diff = git(root, "diff", "HEAD", "--binary", "--", *CODE_PATHS)
    untracked = git(root, "ls-files", "--others", "--exclude-standard", "--", *CODE_PATHS)
    if not diff and not untracked:
        return None
    digest = hashlib.sha256(diff.encode())
    for name in untracked.splitlines():
        digest.update(name.encode() + b"\0" + (root / name).read_bytes())
    return digest.hexdigest()


def pass_arguments(arguments: Sequence[str], root: Path, checkout: Path) -> list[str]:
    """The user's pytest arguments for a pass of the version in `checkout`: without the options
    the driver sets for each pass, and with paths into the checkout `root` made paths into
    `checkout` (a relative path already is: each version's pass runs in its own checkout)."""
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
            kept.append(argument.replace(str(root), str(checkout)))
    return kept


def run_folder(settings: Settings, machine: dict[str, Any], chosen: Sequence[Version]) -> Path:
    """'<the run's name>-<A's commit>-vs-<B's>' under results, B's commit followed by the hash
    of its changes not committed: other code on either side is another run (a resumed pass of
    one version is only paired with a pass of the other of the same code)."""
    a, b = chosen
    vs = b.commit[:8] + (f"-worktree-{b.changes[:8]}" if b.changes else "")
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
        relative = self.cwd.resolve().relative_to(root.resolve())
        _, machine = locate(self.settings)
        with versions(root, self.revisions) as chosen:
            for version in chosen:
                if not (version.checkout / relative).is_dir():
                    raise SettingsError(
                        f"--against: {version.label} has no folder {relative}: run from the "
                        "checkout's root"
                    )
            folder = run_folder(self.settings, machine, chosen).absolute()
            with locked(folder):
                code = self._passes(folder, chosen, root, relative)
            if code == OK:
                code = self._finish(folder, chosen)
        return code

    def _passes(self, folder: Path, chosen: list[Version], root: Path, relative: Path) -> int:
        """Each version's passes in ABBA order; `against.json` says what ran, in every session
        of the run (a run given again resumes: its earlier sessions stay listed)."""
        if self.settings.fresh:
            for version in chosen:
                shutil.rmtree(folder / version.folder, ignore_errors=True)
            (folder / AGAINST_FILE).unlink(missing_ok=True)
        passes = self.settings.passes
        earlier = _read_against(folder / AGAINST_FILE)
        record: dict[str, Any] = {
            "versions": [{**dataclasses.asdict(v), "checkout": str(v.checkout)} for v in chosen],
            "passes": passes,
            "order": [[chosen[v].folder, k] for v, k in abba(passes)],
            "sessions": [*earlier.get("sessions", []), {"started_at": utc_now(), "ran": []}],
        }
        for index, number in abba(passes):
            version = chosen[index]
            if version.revision is None and uncommitted(root) != version.changes:
                print(
                    "loopvec: the working tree changed during the run: its next passes would "
                    "time other code than its first; stopping (give the command again to time "
                    "the code as it is now, in a run of its own)",
                    file=sys.stderr,
                )
                return TESTS_FAILED
            print(
                f"loopvec: {version.folder} = {version.label}: pass {number}/{passes}", flush=True
            )
            started = utc_now()
            arguments = pass_arguments(self.command, root, version.checkout)
            code = self._pass(version, number, arguments, folder, relative)
            record["sessions"][-1]["ran"].append([version.folder, number, code, started, utc_now()])
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
        env = source_first(version.checkout, os.environ)
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


def _read_against(path: Path) -> dict[str, Any]:
    """The run's earlier record, or {} (none yet, or one that cannot be read: it is replaced)."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}
