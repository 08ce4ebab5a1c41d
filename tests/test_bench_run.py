"""The benchmark grid end to end, in a child pytest: resume after SIGTERM, budget skips, files.

These run the real bench/ suite on tiny sizes with short timing; no timing is asserted.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from loopvec.cli import main
from loopvec.plots import FIGURES, TRAINING_FIGURES

BENCH = Path(__file__).resolve().parents[1] / "bench"
GRADIENT = BENCH / "test_gradient.py"  # the grid alone, for the tests that count its cells
FAST = [
    "--no-bandwidth",
    "--benchmark-max-time=0.02",
    "--benchmark-min-rounds=2",
    "-p",
    "no:cacheprovider",
]


def run_bench(
    results: Path, *options: str, suite: Path = BENCH
) -> subprocess.CompletedProcess[str]:
    """Run the bench suite to the end in a child process, output captured."""
    command = bench_command(results, *options, suite=suite)
    return subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)


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
    return sorted(p for p in (results / "cells").glob("*/*.json") if p.name != "machine.json")


def final_counts(output: str) -> dict[str, int]:
    *_, last = re.findall(
        r"timed (\d+), resumed (\d+), skipped (\d+), failed (\d+), left 0", output
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
    assert all(json.loads(p.read_text())["status"] == "timed" for p in kept)  # whole files only
    assert not list((tmp_path / "cells").glob("*/.*"))  # no temporary left behind
    assert list((tmp_path / "raw").glob("*.json")), "the interrupted session still saves its JSON"

    rerun = run_bench(tmp_path, *options, suite=GRADIENT)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    counts = final_counts(rerun.stdout)
    assert counts == {"timed": total - len(kept), "resumed": len(kept), "skipped": 0, "failed": 0}
    assert len(cell_files(tmp_path)) == total


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


def test_smoke_grid_writes_cells_machine_raw_json_and_every_figure(tmp_path: Path) -> None:
    result = run_bench(tmp_path, "--grid", "smoke")
    assert result.returncode == 0, result.stdout + result.stderr
    (run,) = (tmp_path / "cells").iterdir()
    assert run.name.endswith("-smoke")
    machine = json.loads((run / "machine.json").read_text())
    assert machine["blas"]
    assert machine["logical_cores"] >= 1
    records = [json.loads(p.read_text()) for p in cell_files(tmp_path)]
    training = [r for r in records if r.get("kind") == "training"]
    gradient = [r for r in records if r.get("kind") != "training"]
    core = {"python_loops", "partly_vectorized", "numpy_vectorized", "numba_loops"}
    assert {r["backend"] for r in gradient} >= core
    assert {(r["backend"], r["dataset"]) for r in training} >= {
        (b, d) for b in core for d in ("breast_cancer", "synthetic")
    }
    assert all(r["status"] == "timed" and r["median_s"] > 0 for r in records)
    assert all(r["iterations"] == 20 and 0.5 < r["accuracy"] <= 1 for r in training)
    (raw,) = (tmp_path / "raw").glob("*.json")
    extra = [b["extra_info"] for b in json.loads(raw.read_text())["benchmarks"]]
    assert len(extra) == len(records)
    assert set(extra[0]) == {
        "backend",
        "m",
        "n",
        "threads",
        "dtype",
        "layout",
        "x_bytes",
        "compile_s",
    }
    assert {"kind", "dataset", "iterations", "learning_rate"} <= set(extra[-1])
    report = tmp_path / "REPORT.md"
    assert main(["report", str(tmp_path), "--out", str(report), "--figures", str(tmp_path)]) == 0
    for name in [*FIGURES, *TRAINING_FIGURES]:
        assert (tmp_path / f"{name}.png").stat().st_size > 10_000, name
    text = report.read_text()
    assert "## Headline" in text
    assert "## Training: 20 iterations of gradient descent" in text


def test_unwritable_results_folder_stops_with_a_clear_message(tmp_path: Path) -> None:
    blocker = tmp_path / "results"
    blocker.write_text("a file where the results folder should be")
    result = run_bench(blocker, "--grid", "smoke")
    assert result.returncode != 0
    assert "cannot start the run: cannot write" in result.stdout + result.stderr


def test_bad_grid_options_are_usage_errors_naming_the_choices(tmp_path: Path) -> None:
    result = run_bench(tmp_path, "--grid", "smoke", "--dtypes", "f32")
    assert result.returncode != 0
    assert "expected some of float64, float32; got 'f32'" in result.stdout + result.stderr
    result = run_bench(tmp_path, "--grid", "smoke", "--backends", "numpy")
    assert "expected some of python_loops, partly_vectorized" in result.stdout + result.stderr
