"""The benchmark against bad options, damaged files, concurrent runs and interrupts: each ends in
a clear message and consistent files, never in a traceback or mixed data (real child processes).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest
from test_bench_run import GRADIENT, bench_command, cell_files, final_counts, run_bench

from loopvec.cli import main

pytestmark = pytest.mark.usefixtures("as_a_user_runs_it")

#: Two tiny cells, one pass: a few seconds.
TINY = ["--m", "1,2", "--n", "1", "--threads", "1", "--dtypes", "float64", "--passes", "1"]
TINY += ["--backends", "numpy_vectorized"]

SIZES = "expected positive whole numbers like 1,10,1e6"
LIMIT = "expected seconds > 0, or inf for no limit"


@pytest.mark.parametrize(
    ("options", "message"),
    [  # one of each kind end to end; every option's own check: tests/test_runner.py
        (["--m", "0"], f"argument --m: {SIZES}; got '0'"),  # an option's type
        (["--budget", "nan"], f"argument --budget: {LIMIT}; got 'nan'"),
        (["--threads", "10000"], "--threads: numba can use at most"),  # checked with the others
        (["--passes", "2", "--pass", "3"], "--pass: this run has 2 passes; got 3"),
        (["--grid", "huge"], "argument --grid: invalid choice: 'huge'"),  # argparse's choices
        (["--benchmark-disable"], "--benchmark-disable: loopvec's bench exists to time the grid"),
    ],
)
def test_a_bad_option_stops_before_any_work_with_one_line_naming_it(
    tmp_path: Path, options: list[str], message: str
) -> None:
    results = tmp_path / "results"
    done = run_bench(results, *options)
    assert done.returncode == pytest.ExitCode.USAGE_ERROR, done.stdout + done.stderr
    assert message in done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert not results.exists()  # nothing written


def test_pytest_only_showing_something_starts_no_run(tmp_path: Path) -> None:
    results = tmp_path / "results"
    for shows in ("--help", "--collect-only"):
        done = run_bench(results, *TINY, shows, suite=GRADIENT)
        assert done.returncode == 0, done.stdout + done.stderr
        assert not results.exists()  # no lock, no machine record, nothing measured


def test_the_first_size_of_a_backend_holds_the_budget_and_inf_means_no_budget(
    tmp_path: Path,
) -> None:
    """python_loops at m = 20,000, n = 10 takes about 0.1 s a call: with no cost model yet,
    its checked first call predicts it, and it is skipped after that one call."""
    options = ["--m", "20000", "--n", "10", "--threads", "1", "--dtypes", "float64"]
    options += ["--passes", "1", "--backends", "python_loops", "--budget", "0.001"]
    done = run_bench(tmp_path, *options, suite=GRADIENT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "skipped: its first call took" in done.stdout
    assert "> budget 0.001 s (no cost model yet)" in done.stdout
    (cell,) = [json.loads(p.read_text()) for p in cell_files(tmp_path)]
    assert cell["status"] == "skipped"
    assert cell["predicted_s"] > 0.001
    # inf: no budget; written as null, where JSON has no inf. Other sizes: another run folder.
    done = run_bench(tmp_path, *TINY, "--budget", "inf", "--train-budget", "inf", suite=GRADIENT)
    assert final_counts(done.stdout, pass_number=1)["timed"] == 2, done.stdout + done.stderr
    runs = {path.parent for path in tmp_path.glob("*/machine.json")}
    assert len(runs) == 2  # explicit grids of other sizes never merge into one "custom" run
    tiny_run = next(run for run in runs if not list(run.glob("python_loops-*")))
    machine = json.loads((tiny_run / "machine.json").read_text())
    assert (machine["budget_s"], machine["train_budget_s"]) == (None, None)


def test_a_second_run_into_the_same_folder_stops_naming_the_first_and_a_crash_frees_it(
    tmp_path: Path,
) -> None:
    options = [*TINY, "--m", ",".join(map(str, range(1, 40))), "--benchmark-max-time=0.2"]
    first = subprocess.Popen(
        bench_command(tmp_path, *options, suite=GRADIENT),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob("*/.lock.json")) and time.monotonic() < deadline:
        time.sleep(0.05)
    (note,) = tmp_path.glob("*/.lock.json")
    second = run_bench(tmp_path, *options, suite=GRADIENT)
    assert second.returncode == pytest.ExitCode.USAGE_ERROR
    assert f"{note.parent} is being written by another run (pid {first.pid} on host" in (
        second.stderr
    )
    passes = psutil.Process(first.pid).children()
    first.send_signal(signal.SIGKILL)  # the run's driver crashes: no cleanup at all
    first.wait()
    psutil.wait_procs(passes, timeout=60)  # its pass stops at its next cell, alone
    leftover = note.parent / ".numpy_vectorized-m1-n1-t1-float64-C.json.x1y2z3.tmp"
    leftover.write_text('{"half": ')  # as a kill between a write and its rename leaves it
    third = run_bench(tmp_path, *options, suite=GRADIENT)
    assert third.returncode == 0, third.stdout + third.stderr  # the dead run's lock is free
    assert not leftover.exists()
    assert not note.exists()  # released at the end


def test_a_damaged_cell_is_named_set_aside_and_timed_again(tmp_path: Path) -> None:
    assert run_bench(tmp_path, *TINY, suite=GRADIENT).returncode == 0
    truncated, garbled = cell_files(tmp_path)
    truncated.write_text(truncated.read_text()[:50])
    garbled.write_bytes(b"\xff\x00 not json")
    done = run_bench(tmp_path, *TINY, suite=GRADIENT)
    assert done.returncode == 0, done.stdout + done.stderr
    for path in (truncated, garbled):
        assert f"loopvec: warning: {path} cannot be read" in done.stdout
        assert f"{path.stem} timed" in done.stdout
        assert json.loads(path.read_text())["status"] == "timed"  # written anew
    aside = sorted(p.name.split(".json")[0] for p in (truncated.parent / "damaged").iterdir())
    assert aside == sorted([truncated.stem, garbled.stem])  # kept for inspection


def test_ctrl_c_while_a_problem_is_built_exits_as_an_interrupt(tmp_path: Path) -> None:
    options = ["--m", "1,3000000", "--n", "20", "--threads", "1", "--dtypes", "float64"]
    options += ["--passes", "1", "--backends", "numpy_vectorized"]
    # A shell without job control starts background commands with SIGINT ignored, a child inherits
    # that, and Python then installs no KeyboardInterrupt handler. A handler, unlike an ignore, is
    # reset to the default at exec: the child gets a terminal's Ctrl-C however this test was run.
    handler_before = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        run = subprocess.Popen(
            bench_command(tmp_path, *options, suite=GRADIENT),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # its own process group, as a terminal's Ctrl-C reaches
        )
    finally:
        signal.signal(signal.SIGINT, handler_before)
    with run:
        assert run.stdout is not None
        # The m = 1 cell's file is written: the next cell builds its 480 MB problem. (Its file,
        # not its line of output, which can reach a busy test process seconds late.)
        deadline = time.monotonic() + 120
        while not cell_files(tmp_path) and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.3)
        os.killpg(run.pid, signal.SIGINT)
        output = run.stdout.read()
        assert run.wait(timeout=120) == pytest.ExitCode.INTERRUPTED, output
    assert "KeyboardInterrupt" in output
    assert "Benchmark fixture was not used" not in output


def test_cli_reads_around_a_damaged_cell_and_a_missing_machine_record(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_bench(tmp_path, *TINY, suite=GRADIENT).returncode == 0
    run = next(tmp_path.glob("*/machine.json")).parent
    damaged = cell_files(tmp_path)[0]
    damaged.write_text("{")
    assert main(["report", str(run)]) == 0
    assert f"loopvec: warning: {damaged} skipped: it cannot be read (JSONDecodeError" in (
        capsys.readouterr().err
    )
    (run / "machine.json").unlink()
    assert main(["compare", str(run), str(run)]) == 0
    err = capsys.readouterr().err
    assert f"{run} has no machine.json: its cells are read without a machine record" in err
