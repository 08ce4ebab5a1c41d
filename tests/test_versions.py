"""Two versions in one run (`pytest bench --against REV`), end to end in a git checkout of its own.

No timing is asserted: that each version ran its own files, in ABBA order, into its own folder,
and that the worktree of REV is gone afterwards; and the errors of the options.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from loopvec.results import AGAINST_FILE, cell_paths, read_canaries
from loopvec.runner.aa import PLANTED_FILE, _plant, with_planted
from loopvec.runner.versions import pass_arguments, uncommitted

pytestmark = pytest.mark.usefixtures("as_a_user_runs_it")

ROOT = Path(__file__).resolve().parents[1]
FAST = ["--no-bandwidth", "--benchmark-max-time=0.01", "--blocks=1", "-p", "no:cacheprovider"]


def git(folder: Path, *args: str) -> str:
    identity = ["-c", "user.name=loopvec tests", "-c", "user.email=tests@loopvec.invalid"]
    done = subprocess.run(
        ["git", "-C", str(folder), *identity, *args], capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A git repository holding this checkout's code as its one commit, and its .gitignore: the
    bytecode and compiled kernels Python and numba write beside the code are not a change (where
    PYTHONDONTWRITEBYTECODE is not set, a run would otherwise see its working tree change)."""
    repo = tmp_path / "repo"
    for part in ("src", "bench"):
        shutil.copytree(ROOT / part, repo / part, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", ".gitignore"):
        shutil.copy(ROOT / name, repo)
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "the code under test")
    return repo


def bench(repo: Path, results: Path, *options: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "pytest", "bench/test_gradient.py", *FAST, *options]
    command.append(f"--results-dir={results}")
    return subprocess.run(
        command, cwd=repo, capture_output=True, text=True, timeout=600, check=False
    )


def test_two_versions_run_their_own_code_in_abba_order(checkout: Path, tmp_path: Path) -> None:
    _plant(checkout, 10)  # the working tree's change: 11 % more work than HEAD's
    results = tmp_path / "results"
    planted = f"--backend=planted={PLANTED_FILE}:gradient"
    options = ["--grid=smoke", "--m=100", "--n=10", "--threads=1", "--layouts=C"]
    options += ["--dtypes=float64", "--backends=numpy_vectorized,planted", planted]
    result = bench(checkout, results, *options, "--against", "HEAD", "--passes=2")
    assert result.returncode == 0, result.stdout + result.stderr
    (run,) = results.iterdir()
    head = git(checkout, "rev-parse", "HEAD")
    changes = uncommitted(checkout)
    assert changes is not None
    assert run.name.endswith(f"-{head[:8]}-vs-{head[:8]}-worktree-{changes[:8]}")
    record = json.loads((run / AGAINST_FILE).read_text())
    assert record["order"] == [["A", 1], ["B", 1], ["B", 2], ["A", 2]]
    (session,) = record["sessions"]
    assert [r[:3] for r in session["ran"]] == [["A", 1, 0], ["B", 1, 0], ["B", 2, 0], ["A", 2, 0]]
    a, b = record["versions"]
    assert (a["label"], a["revision"], a["commit"], a["changes"]) == (
        f"HEAD ({head[:8]})",
        "HEAD",
        head,
        None,
    )
    assert (b["revision"], b["commit"], b["changes"]) == (None, head, changes)
    assert b["label"] == f"working tree ({head[:8]} + changes not committed, {changes[:8]})"
    cells = {}
    for side in ("A", "B"):
        (folder,) = (p.parent for p in (run / side).glob("*/machine.json"))
        cells[side] = {
            c["backend"]: c for c in map(json.loads, map(Path.read_text, cell_paths(folder)))
        }
        assert all(c["status"] == "timed" for c in cells[side].values())
        assert all([p["pass"] for p in c["passes"]] == [1, 2] for c in cells[side].values())
        moments, warnings = read_canaries(folder)
        assert len(moments) == 4
        assert not warnings
    # each version ran its own files: its commit, and the planted file as it is there
    assert cells["A"]["numpy_vectorized"]["git_commit"] == head
    assert cells["A"]["numpy_vectorized"]["git_dirty"] is False
    assert cells["B"]["numpy_vectorized"]["git_dirty"] is True
    same = cells["A"]["numpy_vectorized"]["code_fingerprint"]
    assert cells["B"]["numpy_vectorized"]["code_fingerprint"] == same
    assert cells["A"]["planted"]["code_fingerprint"] != cells["B"]["planted"]["code_fingerprint"]
    # the comparison, printed at the end: the planted backend's code changed, numpy's did not
    out = result.stdout
    assert "two versions, their passes alternating (ABBA)" in out
    assert "A = HEAD (" in out
    assert "B = working tree (" in out
    planted_line = next(x for x in out.splitlines() if x.startswith("planted m=100"))
    numpy_line = next(x for x in out.splitlines() if x.startswith("numpy_vectorized m=100"))
    assert planted_line.endswith("changed")
    assert numpy_line.endswith("same")
    assert git(checkout, "worktree", "list").count("\n") == 0  # REV's worktree is gone
    # given again, every pass of both is resumed: nothing is timed twice
    again = bench(checkout, results, *options, "--against", "HEAD", "--passes=2")
    assert again.returncode == 0, again.stdout + again.stderr
    assert again.stdout.count("timed 0, resumed 2") == 4
    assert len(json.loads((run / AGAINST_FILE).read_text())["sessions"]) == 2  # both kept


def test_a_pass_that_fails_stops_the_run_and_removes_the_worktree(
    checkout: Path, tmp_path: Path
) -> None:
    conftest = checkout / "bench" / "conftest.py"
    fixed = conftest.read_text()
    conftest.write_text('raise RuntimeError("a broken bench")\n' + fixed)
    git(checkout, "commit", "-q", "-am", "HEAD's bench cannot start")
    conftest.write_text(fixed)  # the working tree's fix
    options = ["--grid=smoke", "--backends=numpy_vectorized", "--threads=1", "--layouts=C"]
    result = bench(checkout, tmp_path / "results", *options, "--against", "HEAD", "--passes=2")
    assert result.returncode not in (0, 5), result.stdout + result.stderr
    assert "a broken bench" in result.stdout + result.stderr
    (run,) = (tmp_path / "results").iterdir()
    (session,) = json.loads((run / AGAINST_FILE).read_text())["sessions"]
    assert [r[:2] for r in session["ran"]] == [["A", 1]]  # stopped at HEAD's first pass
    assert git(checkout, "worktree", "list").count("\n") == 0


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--against", "no-such-rev"], "--against no-such-rev: not a commit of"),
        (["--against", "HEAD", "--pass", "1"], "--pass runs one pass of a run; --against"),
        (["--against", "HEAD", "--passes", "1"], "an even number, at least 2; got 1"),
        (["--against", "HEAD", "--passes", "3"], "an even number, at least 2; got 3"),
        (["--against", "HEAD"] * 3, "one revision (against the working tree) or two"),
        (["--against", "HEAD", "--update-reference"], "the reference run is of one"),
    ],
)
def test_against_options_that_cannot_make_a_run_say_why(
    checkout: Path, tmp_path: Path, options: list[str], message: str
) -> None:
    result = bench(checkout, tmp_path / "results", "--grid=smoke", *options)
    assert result.returncode == 4, result.stdout + result.stderr  # pytest's usage error
    assert message in result.stderr
    assert not (tmp_path / "results").exists() or not any((tmp_path / "results").iterdir())


def test_against_outside_a_git_checkout_says_so(tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(ROOT / "bench", copy / "bench", ignore=shutil.ignore_patterns("__pycache__"))
    result = bench(copy, tmp_path / "results", "--grid=smoke", "--against", "HEAD")
    assert result.returncode == 4
    assert "--against needs a git checkout of loopvec" in result.stderr


def test_the_passes_get_every_option_but_those_the_driver_sets(tmp_path: Path) -> None:
    given = ["bench", "--grid", "quick", "--against", "HEAD", "--against=v1", "--passes", "6"]
    given += ["--results-dir=r", "--report", "--fresh", "--backends", "a,b", "--pass=2"]
    root, other = tmp_path / "repo", tmp_path / "worktree"
    given += [f"--backend=mine={root}/mine.py:gradient", str(root / "bench")]
    assert pass_arguments(given, root, other) == [
        *("bench", "--grid", "quick", "--backends", "a,b"),
        *(f"--backend=mine={other}/mine.py:gradient", str(other / "bench")),
    ]  # a path into the checkout is the version's own


def test_the_aa_study_plants_its_slowdown_and_times_it_whatever_backends(tmp_path: Path) -> None:
    assert with_planted(["--backends", "numba_fused"]) == ["--backends", "numba_fused,planted"]
    assert with_planted(["--backends=numpy_vectorized"]) == ["--backends=numpy_vectorized,planted"]
    assert with_planted(["--threads=1"]) == ["--threads=1"]
    (tmp_path / "bench").mkdir()
    shutil.copy(ROOT / PLANTED_FILE, tmp_path / PLANTED_FILE)
    _plant(tmp_path, 10)
    text = (tmp_path / PLANTED_FILE).read_text()
    assert "REPEATS = 10\n" in text
    assert "REPEATS = 9" not in text
