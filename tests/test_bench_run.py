"""The benchmark grid end to end, in a child pytest: resume after SIGTERM, budget skips, files.

These run the real bench/ suite on tiny sizes with short timing; no timing is asserted.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import loopvec
from loopvec.memory import NOT_ASKED, PEAK_METHOD
from loopvec.plots import FIGURES, TRAINING_FIGURES
from loopvec.provenance import FORMAT
from loopvec.results import cell_paths

pytestmark = pytest.mark.usefixtures("as_a_user_runs_it")

BENCH = Path(__file__).resolve().parents[1] / "bench"  # the checkout's, as `pytest bench`
GRADIENT = BENCH / "test_gradient.py"  # the grid alone, for the tests that count its cells
FIXTURE_RUN = next((Path(__file__).parent / "fixtures" / "results").iterdir())
FAST = [
    "--layouts=C",  # the tests that count cells count C-order ones; the smoke test adds F
    "--no-bandwidth",
    "--no-memory",  # the smoke test measures it
    "--benchmark-max-time=0.02",
    "--passes=2",
    "--blocks=2",
    "-p",
    "no:cacheprovider",
    # Plugins of the test extras that a bench run never uses (a user's [bench] install has
    # neither): their imports cost 1 s in each of a run's processes.
    "-p",
    "no:hypothesispytest",
    "-p",
    "no:zarr",
]


def run_bench(
    results: Path,
    *options: str,
    suite: Path = BENCH,
    env: dict[str, str] | None = None,
    timeout_s: float = 300,
    memory: bool = False,
) -> subprocess.CompletedProcess[str]:
    """Run the bench suite to the end in a child process, output captured; the cells' peak
    memory measured only if `memory`."""
    command = bench_command(results, *options, suite=suite)
    if memory:
        command.remove("--no-memory")
    return subprocess.run(
        command, capture_output=True, text=True, timeout=timeout_s, check=False, env=env
    )


def bench_command(results: Path, *options: str, suite: Path = BENCH) -> list[str]:
    return [
        sys.executable,
        "-m",
        "pytest",
        str(suite),
        "--results-dir",
        str(results),
        *FAST,
        *options,
    ]


def cell_files(results: Path) -> list[Path]:
    return sorted(p for p in results.glob("*/*.json") if p.name != "machine.json")


def tree_bytes(folder: Path) -> dict[str, bytes]:
    """Every file below `folder` by relative path, with its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def final_counts(output: str, pass_number: int = 2) -> dict[str, int]:
    """The counts at the end of a pass (by default the last of FAST's two)."""
    *_, last = re.findall(
        rf"^\[pass {pass_number}/\d+\] .* \| timed (\d+), resumed (\d+), skipped (\d+), "
        r"failed (\d+), left 0",
        output,
        flags=re.MULTILINE,
    )
    return dict(zip(["timed", "resumed", "skipped", "failed"], map(int, last), strict=True))


def test_sigterm_keeps_finished_cells_and_the_rerun_times_only_the_rest(tmp_path: Path) -> None:
    options = ["--m", "1,2,3,4,5,6,7,8,9,10,11,12,13,14,15", "--n", "1,2", "--threads", "1"]
    options += ["--backends", "numpy_vectorized,numba_loops", "--dtypes", "float64"]
    command = bench_command(tmp_path, *options, suite=GRADIENT)
    total = 15 * 2 * 2
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 120
    while len(cell_files(tmp_path)) < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    child.send_signal(signal.SIGTERM)
    output, _ = child.communicate(timeout=120)
    assert child.returncode != 0, output  # interrupted, not finished
    kept = cell_files(tmp_path)
    assert 4 <= len(kept) < total, output
    records = [json.loads(p.read_text()) for p in kept]
    assert all(r["status"] == "timed" and len(r["passes"]) == 1 for r in records)  # whole files
    assert not list(tmp_path.glob("*/.*.tmp"))  # no temporary left behind
    assert list(tmp_path.glob("*/raw/*.json")), "the interrupted session still saves its JSON"
    assert "[pass 2/2]" not in output  # the driver stops: pass 2 never started

    rerun = run_bench(tmp_path, *options, suite=GRADIENT)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    counts = final_counts(rerun.stdout, pass_number=1)  # pass 1 resumes where it stopped
    assert counts == {"timed": total - len(kept), "resumed": len(kept), "skipped": 0, "failed": 0}
    assert final_counts(rerun.stdout) == {"timed": total, "resumed": 0, "skipped": 0, "failed": 0}
    assert len(cell_files(tmp_path)) == total
    assert all(len(json.loads(p.read_text())["passes"]) == 2 for p in cell_files(tmp_path))


#: Three backends, two tiny sizes, one thread: six cells, a few seconds.
#: Six cells in one pass: what is resumed does not depend on the passes (test_sigterm's does).
SMALL = ["--m", "1,10", "--n", "1", "--threads", "1", "--dtypes", "float64", "--passes", "1"]
SMALL += ["--backends", "python_loops,numpy_vectorized,numba_loops"]


def counts_of(result: subprocess.CompletedProcess[str]) -> dict[str, int]:
    """The counts at the end of a run of SMALL (one pass)."""
    assert result.returncode == 0, result.stdout + result.stderr
    return final_counts(result.stdout, pass_number=1)


def test_resume_keeps_a_cell_only_for_the_same_code_and_cell_format(tmp_path: Path) -> None:
    # The bench imports a copy of the package, which the test edits as a developer would.
    package = tmp_path / "src"
    ignore = shutil.ignore_patterns("__pycache__")
    shutil.copytree(Path(loopvec.__file__).parent, package / "loopvec", ignore=ignore)
    env = {**os.environ, "PYTHONPATH": str(package), "NUMBA_CACHE_DIR": str(tmp_path / "numba")}
    results = tmp_path / "results"

    def bench() -> subprocess.CompletedProcess[str]:
        return run_bench(results, *SMALL, suite=GRADIENT, env=env)

    assert counts_of(bench()) == {"timed": 6, "resumed": 0, "skipped": 0, "failed": 0}
    assert counts_of(bench()) == {"timed": 0, "resumed": 6, "skipped": 0, "failed": 0}
    # An edit of a module that numba_loops' kernel imports (not numba_loops.py itself) retimes
    # numba_loops alone: python_loops and numpy_vectorized do not use _jit.py.
    jit = package / "loopvec" / "backends" / "_jit.py"
    jit.write_text(jit.read_text() + "\n# an edit\n")
    edited = bench()
    assert counts_of(edited) == {"timed": 2, "resumed": 4, "skipped": 0, "failed": 0}
    assert "numba_loops-m1-n1-t1-float64-C timed" in edited.stdout
    assert "(not resumed: code changed: loopvec.backends._jit)" in edited.stdout
    # A cell file of an older format is timed again, never resumed.
    (run,) = results.iterdir()
    path = run / "numpy_vectorized-m10-n1-t1-float64-C.json"
    old = {k: v for k, v in json.loads(path.read_text()).items() if k != "format"}
    path.write_text(json.dumps(old))
    again = bench()
    assert counts_of(again) == {"timed": 1, "resumed": 5, "skipped": 0, "failed": 0}
    assert "(not resumed: its earlier cell file is of an older format)" in again.stdout
    assert json.loads(path.read_text())["format"] == FORMAT


def test_a_run_of_another_machine_or_the_reference_is_never_resumed(tmp_path: Path) -> None:
    assert counts_of(run_bench(tmp_path, *SMALL, suite=GRADIENT))["timed"] == 6
    (run,) = tmp_path.iterdir()
    # The committed reference of a machine with the same host name (here even the same state).
    reference = tmp_path / "reference"
    run.rename(reference)
    before = tree_bytes(reference)
    assert counts_of(run_bench(tmp_path, *SMALL, suite=GRADIENT))["timed"] == 6
    assert tree_bytes(reference) == before

    # Another machine's run under this run's name: refused, untouched, until --fresh.
    for path in run.glob("*.json"):
        record = json.loads(path.read_text())
        key = "fingerprint" if path.name == "machine.json" else "machine_fingerprint"
        path.write_text(json.dumps({**record, key: "0123456789abcdef"}))
    other = tree_bytes(run)
    refused = run_bench(tmp_path, *SMALL, suite=GRADIENT)
    assert refused.returncode != 0
    message = f"{run} holds a run of another machine state (host "
    assert message in refused.stdout + refused.stderr
    assert "fingerprint 0123456789abcdef); this machine is" in refused.stdout + refused.stderr
    assert tree_bytes(run) == other
    fresh = run_bench(tmp_path, *SMALL, "--fresh", "--passes", "2", suite=GRADIENT)
    assert final_counts(fresh.stdout) == {"timed": 6, "resumed": 0, "skipped": 0, "failed": 0}
    # --fresh clears the run once, before its first pass: each cell keeps both passes
    cells = [json.loads(path.read_text()) for path in cell_paths(run)]
    assert [[p["pass"] for p in cell["passes"]] for cell in cells] == [[1, 2]] * 6
    assert len(list((run / "passes").glob("*.json"))) == 2  # the earlier canaries went too


def test_budget_skip_is_recorded_with_its_prediction(tmp_path: Path) -> None:
    sizes = ["--m", "1,10,100,1000,10000", "--n", "10"]
    result = run_bench(
        tmp_path, *sizes, "--backends", "python_loops", "--budget", "0.0005", suite=GRADIENT
    )
    assert result.returncode == 0, result.stdout + result.stderr
    records = {r["m"]: r for r in map(json.loads, (p.read_text() for p in cell_files(tmp_path)))}
    skipped = records[10_000]  # python_loops: ~1 ms at m x n = 1e5, over a 0.5 ms budget
    assert skipped["status"] == "skipped"
    assert skipped["predicted_s"] > 0.0005
    assert skipped["reason"].startswith(
        f"predicted {skipped['predicted_s']:.3g} s per call > budget"
    )
    assert "skipped: predicted" in result.stdout  # visible in the progress lines
    assert records[1]["status"] == "timed"
    # --no-memory (FAST's): no peak, and why, in each cell
    assert records[1]["peak_method"] == NOT_ASKED
    first, *_ = records[1]["passes"]
    assert first["inputs_peak_bytes"] is None
    assert records[1].get("peak_bytes") is first.get("peak_bytes") is None


def assert_reports_of(run: Path) -> None:
    """REPORT.md of `run` has every section; report.html names the run and has every view (in
    a browser: test_browser.py)."""
    text = (run / "REPORT.md").read_text()
    assert "## Fortran order against C order" in text
    assert f"Run `{run.name}`, code of commit" in text
    # the tests run the kernels with today's constants (tests/conftest.py), which each cell keeps
    plan = next(line for line in text.splitlines() if line.startswith("Kernel plan of "))
    assert "`numba_fused`" in plan
    assert "`numba_parallel`" in plan
    assert "today's constants" in plan
    assert "## Headline" in text
    assert "## Training: 10 iterations of gradient descent" in text
    assert "## The outer loop: Python against compiled" in text
    page = (run / "report.html").read_text()
    assert run.name in page
    for view in ("speedup", "time", "training", "cells"):
        assert f'data-view="{view}"' in page


def test_the_first_pass_measures_each_cells_memory_and_the_report_draws_it(
    tmp_path: Path,
) -> None:
    """Memory end to end, apart from the smoke test (which skips it: each Tracker patches every
    library loaded, 0.2 s with torch and JAX, two thirds of its time): a backend that runs here,
    a parallel one and one on a Dask cluster, gradient and training cells."""
    options = [
        "--grid",
        "smoke",
        "--m",
        "1,100",
        "--n",
        "10",
        "--threads",
        "2",
        "--dtypes",
        "float64",
        "--passes=1",  # memory is measured in the first
        # No cell skipped for its time (a skipped cell measures no memory): on 2 cores loaded
        # by a second test run, a gradient cell here once had no passes (2026-12-07, its reason
        # not shown), and a loaded machine can push a first call over the 1 s budget.
        "--budget=inf",
        "--train-budget=inf",
    ]
    options += ["--backends", "numpy_vectorized,numba_parallel,dask_array", "--report"]
    result = run_bench(tmp_path, *options, memory=True)
    assert result.returncode == 0, result.stdout + result.stderr
    (run,) = tmp_path.iterdir()
    records = [json.loads(p.read_text()) for p in cell_paths(run)]
    training = [r for r in records if r.get("kind") == "training"]
    gradient = [r for r in records if r.get("kind") != "training"]
    assert (
        {r["backend"] for r in gradient}
        == {r["backend"] for r in training}
        == {
            "numpy_vectorized",
            "numba_parallel",
            "dask_array",
        }
    )
    assert_memory_measured(gradient, training)
    assert "threads): peak bytes beyond its inputs" in (run / "REPORT.md").read_text()
    assert (run / "figures" / "peak_memory.png").stat().st_size > 10_000


def assert_memory_measured(gradient: list[dict[str, Any]], training: list[dict[str, Any]]) -> None:
    """A gradient cell's first pass measured one call (2 or 3 times), and moving the inputs in
    (once; the Dask workers' too); a training cell's one step and a whole run."""
    untimed = {r["cell_id"]: r.get("reason") for r in gradient + training if r["status"] != "timed"}
    assert not untimed, untimed
    for record in gradient:
        first, *later = record["passes"]
        assert record["peak_method"] == PEAK_METHOD
        assert first["peak_bytes"] == record["peak_bytes"] >= 0
        assert first["inputs_peak_bytes"] == record["inputs_peak_bytes"] >= 0
        assert 2 <= len(first["peak_bytes_calls"]) <= 3
        assert len(first["inputs_peak_bytes_calls"]) == 1  # never two copies of X at once
        assert all("peak_bytes" not in p for p in later)  # measured once: the tracker is slow
    assert all(r["worker_peak_bytes"] > 0 for r in gradient if r["backend"].startswith("dask"))
    assert all(r["step_peak_bytes"] >= 0 and r["run_peak_bytes"] >= 0 for r in training)


def test_smoke_grid_writes_a_run_every_figure_and_leaves_the_reference_as_it_was(
    tmp_path: Path,
) -> None:
    reference = tmp_path / "reference"  # a committed-looking reference run of the same host
    shutil.copytree(FIXTURE_RUN, reference)
    before = tree_bytes(reference)
    # Every backend, torch.compile's first compilations on a fresh machine included (a minute)
    # --report: the driver hands the run it timed to `loopvec report` (as `nox -s bench` does)
    result = run_bench(tmp_path, "--grid", "smoke", "--layouts", "C,F", "--report", timeout_s=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "resumed: " not in result.stdout
    (run,) = [p for p in tmp_path.iterdir() if p != reference]
    assert re.fullmatch(r"[a-z0-9-]+-\d+c-smoke-[0-9a-f]{8}", run.name)
    machine = json.loads((run / "machine.json").read_text())
    assert machine["blas"]
    assert machine["logical_cores"] >= 1
    records = [json.loads(p.read_text()) for p in cell_paths(run)]
    training = [r for r in records if r.get("kind") == "training"]
    gradient = [r for r in records if r.get("kind") != "training"]
    core = {"python_loops", "partly_vectorized", "numpy_vectorized", "numba_loops"}
    assert {r["backend"] for r in gradient} >= core
    assert {(r["backend"], r["dataset"]) for r in training} >= {
        (b, d) for b in core for d in ("breast_cancer", "synthetic")
    }
    assert {(r["backend"], r["m"]) for r in training if r["loop"] == "compiled"} >= {
        ("numba_loops", 100),
        ("numba_loops", 1000),  # the outer loop's sizes
    }
    not_both = [
        (r["cell_id"], r["status"], [p["pass"] for p in r.get("passes", [])], r.get("reason"))
        for r in records
        if r["status"] != "timed" or [p["pass"] for p in r["passes"]] != [1, 2]
    ]
    assert not_both == [], result.stdout[-5000:]
    for p in (p for r in gradient for p in r["passes"]):
        assert 1 <= len(p["blocks"]) <= 2  # a call longer than a block is timed in fewer
        assert all(len(block) >= 1 for block in p["blocks"])
        assert {"pid", "pass_started_at", "load_avg_1m", "order", "iterations"} <= set(p)
    assert all(r["iterations"] == 10 and 0.5 < r["accuracy"] <= 1 for r in training)
    assert {r["peak_method"] for r in records} == {NOT_ASKED}  # FAST's; measured above
    first, second = sorted((run / "raw").glob("*.json"))  # one per pass, with every round
    assert "-pass1-" in first.name
    assert "-pass2-" in second.name
    canary = [json.loads(p.read_text()) for p in sorted((run / "passes").glob("pass-*.json"))]
    assert [c["pass"] for c in canary] == [1, 2]  # a file per pass process: start and end
    assert all(set(c["canary"]) == {"start", "end"} for c in canary)
    assert all(set(c["canary"]["end"]) == {"interpreter", "compute", "memory"} for c in canary)
    assert all(c["cells_timed"] == len(records) for c in canary)
    benchmarks = json.loads(first.read_text())["benchmarks"]
    extra = [b["extra_info"] for b in benchmarks]
    blocks = sum(len(r["passes"][0]["blocks"]) for r in gradient)
    assert len(extra) == blocks + len(training)  # a benchmark per block
    assert all(b["stats"]["data"] for b in benchmarks)
    assert set(extra[0]) == {
        "backend",
        "m",
        "n",
        "threads",
        "dtype",
        "layout",
        "x_bytes",
        "pass_number",
        "block",
        "format",
        "run",
        "machine_fingerprint",
        "code_fingerprint",
        "origin",
        "code_modules",
        "code_versions",
        "git_commit",
        "git_dirty",
    }
    assert {"kind", "dataset", "iterations", "learning_rate"} <= set(extra[-1])
    assert {r["run"] for r in records} == {run.name}
    assert {r["machine_fingerprint"] for r in records} == {machine["fingerprint"]}
    assert f"wrote {run / 'REPORT.md'}" in result.stdout
    for name in [*FIGURES, *TRAINING_FIGURES, "layout_effect", "outer_loop"]:
        assert (run / "figures" / f"{name}.png").stat().st_size > 10_000, name
    assert {r["backend"] for r in gradient if r["layout"] == "F"} >= {"numpy_vectorized"}
    assert_reports_of(run)
    # Drawing the reference elsewhere, and never into it: tests/test_cli.py.
    assert tree_bytes(reference) == before


def test_unwritable_results_folder_stops_with_a_clear_message(tmp_path: Path) -> None:
    blocker = tmp_path / "results"
    blocker.write_text("a file where the results folder should be")
    result = run_bench(blocker, "--grid", "smoke")
    assert result.returncode == pytest.ExitCode.USAGE_ERROR
    assert f"--results-dir: expected a folder; got the file {blocker}" in result.stderr
    result = run_bench(blocker / "inside", "--grid", "smoke")
    assert result.returncode == pytest.ExitCode.USAGE_ERROR
    assert f"--results-dir: cannot write {blocker / 'inside'}" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_bad_grid_options_are_usage_errors_naming_the_choices(tmp_path: Path) -> None:
    result = run_bench(tmp_path, "--grid", "smoke", "--dtypes", "f32")
    assert result.returncode != 0
    assert "expected some of float64, float32; got 'f32'" in result.stdout + result.stderr
    result = run_bench(tmp_path, "--grid", "smoke", "--backends", "numpy")
    assert "--backends: numpy not a backend; the backends: python_loops, partly_vectorized" in (
        result.stdout + result.stderr
    )
