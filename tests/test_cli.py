"""The CLI writes figures and the report from saved results, the same bytes for the same data."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from loopvec import cli
from loopvec.cli import main
from loopvec.front_page import END, START, headline_block
from loopvec.plots import FIGURES

FIXTURE = Path(__file__).parent / "fixtures" / "results"
RUN = next(FIXTURE.iterdir())


def test_plot_writes_every_figure_deterministically(tmp_path: Path) -> None:
    assert main(["plot", str(FIXTURE), "--out", str(tmp_path / "a")]) == 0
    assert main(["plot", str(FIXTURE), "--out", str(tmp_path / "b")]) == 0
    for name in FIGURES:
        first, second = (tmp_path / side / f"{name}.png" for side in "ab")
        assert first.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert first.read_bytes() == second.read_bytes()


def test_report_links_its_figures_relative_to_itself(tmp_path: Path) -> None:
    report = tmp_path / "out" / "REPORT.md"
    assert (
        main(
            [
                "report",
                str(FIXTURE),
                "--out",
                str(report),
                "--figures",
                str(tmp_path / "out" / "figures"),
            ]
        )
        == 0
    )
    text = report.read_text()
    for name in FIGURES:
        assert f"](figures/{name}.png)" in text
        assert (tmp_path / "out" / "figures" / f"{name}.png").exists()


def test_default_input_is_the_newest_run_under_results(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    shutil.copytree(FIXTURE, tmp_path / "results")
    monkeypatch.chdir(tmp_path)
    assert main(["report"]) == 0
    run = tmp_path / "results" / RUN.name
    assert (run / "REPORT.md").exists()  # into the run it draws
    assert (run / "figures" / "crossover.png").exists()


def test_missing_results_give_a_clear_error(tmp_path: Path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)
    assert main(["plot"]) == 2
    assert (
        "loopvec plot: results does not exist: run the benchmark first" in capsys.readouterr().err
    )


def test_info_prints_the_machine_record(capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["info", "--no-bandwidth"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["logical_cores"] >= 1
    assert "read_bandwidth_bytes_per_s" not in record
    assert record["backends"]["numpy_vectorized"]["available"] is True
    assert record["backends"]["numba_fused"]["family"] == "jit"


def test_unknown_machine_and_foreign_json_are_clear_errors(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["plot", str(FIXTURE), "--machine", "elsewhere", "--out", str(tmp_path)]) == 2
    fingerprint = json.loads((RUN / "machine.json").read_text())["fingerprint"]
    expected = f"no results of machine 'elsewhere'; machines: {fingerprint} (host vm)"
    assert expected in capsys.readouterr().err
    foreign = tmp_path / "other.json"
    foreign.write_text('{"benchmarks": []}')
    assert main(["plot", str(foreign), "--out", str(tmp_path)]) == 2
    assert f"{foreign} is not a loopvec benchmark result" in capsys.readouterr().err


def test_train_reports_accuracy_cost_time_and_writes_the_cost_curve(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "training"
    command = ["train", "--backend", "numba_loops", "--iterations", "300", "--out", str(out)]
    assert main(command) == 0
    printed = capsys.readouterr()
    assert "breast_cancer: 569 examples x 30 features; backend numba_loops" in printed.out
    assert "accuracy 98." in printed.out
    assert "final cost 0.0" in printed.out
    assert "for 300 iterations" in printed.out
    assert "300/300" in printed.err  # the progress bar
    summary = json.loads((out / "breast_cancer-numba_loops.json").read_text())
    assert summary["iterations"] == 300
    assert not summary["interrupted"]
    assert summary["cost_iterations"] == [0, 100, 200]
    assert summary["train_s"] > 0
    assert summary["warmup_s"] > 0
    assert 0.95 < summary["accuracy"] <= 1
    png = (out / "breast_cancer-numba_loops.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_train_runs_the_compiled_loop(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "training"
    command = ["train", "--backend", "numba_fused", "--iterations", "300", "--out", str(out)]
    assert main([*command, "--loop", "compiled"]) == 0
    assert "300 iterations, compiled loop" in capsys.readouterr().out
    summary = json.loads((out / "breast_cancer-numba_fused-compiled.json").read_text())
    assert (summary["loop"], summary["iterations"]) == ("compiled", 300)
    assert 0.95 < summary["accuracy"] <= 1


def test_train_with_a_too_large_learning_rate_explains_itself(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    command = ["train", "--learning-rate", "1e306", "--iterations", "200", "--out", str(tmp_path)]
    assert main(command) == 2
    error = capsys.readouterr().err
    assert "loopvec train: training diverged: the cost is not finite at iteration 100" in error
    assert not list(tmp_path.iterdir())  # nothing half-made is written


def test_train_checks_its_settings_before_any_work(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["train", "--iterations", "0", "--out", str(tmp_path)]) == 2
    assert "--iterations must be a positive integer; got 0" in capsys.readouterr().err
    assert main(["train", "--learning-rate", "-1", "--out", str(tmp_path)]) == 2
    assert "--learning-rate must be a finite number > 0; got -1.0" in capsys.readouterr().err


def test_compare_includes_training_cells(capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["compare", str(FIXTURE), str(FIXTURE)]) == 0
    out = capsys.readouterr().out
    assert "train synthetic numba_loops m=100 n=10 t=1 i=20" in out
    line = next(x for x in out.splitlines() if x.startswith("train synthetic numba_loops"))
    assert " 1.000 [" in line
    assert re.search(r" same +- +same$", line)  # no change, no memory compared, same code


def test_a_training_only_run_gets_its_figure_and_report(tmp_path: Path) -> None:
    run = tmp_path / "vm-smoke"
    run.mkdir(parents=True)
    for path in [RUN / "machine.json", *RUN.glob("train-*.json")]:
        shutil.copy(path, run)
    report = tmp_path / "REPORT.md"
    assert main(["report", str(run), "--out", str(report), "--figures", str(tmp_path)]) == 0
    assert (tmp_path / "training_time.png").exists()
    assert not (tmp_path / "crossover.png").exists()
    text = report.read_text()
    assert text.startswith("# loopvec report: training runs")
    assert "## Training: 20 iterations of gradient descent" in text


def other_machine(tmp_path: Path, fingerprint: str = "0123456789abcdef") -> Path:
    """A copy of the fixture run as if timed on another machine with the same host name."""
    copy = tmp_path / f"vm-epyc-2c-custom-{fingerprint[:8]}"
    shutil.copytree(RUN, copy)
    for path in copy.glob("*.json"):
        record = json.loads(path.read_text())
        key = "fingerprint" if path.name == "machine.json" else "machine_fingerprint"
        path.write_text(json.dumps({**record, key: fingerprint, "run": copy.name}))
    return copy


def test_a_report_is_of_one_machine_state_whatever_the_host_names(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    other = other_machine(tmp_path)
    out = tmp_path / "out" / "REPORT.md"
    assert main(["report", str(RUN), str(other), "--out", str(out)]) == 2
    error = capsys.readouterr().err
    assert "the inputs hold 2 machine states and a report is of one: choose one" in error
    assert "0123456789abcdef (host vm)" in error
    assert main(["report", str(RUN), str(other), "--out", str(out), "--machine", "vm"]) == 2
    assert "--machine 'vm' names 2 machine states" in capsys.readouterr().err
    assert main(["report", str(RUN), str(other), "--out", str(out), "--machine", "01234"]) == 0
    assert f"Run `{other.name}`" in out.read_text()


def test_the_reference_run_is_written_only_when_asked(tmp_path: Path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    reference = tmp_path / "results" / "reference"
    shutil.copytree(RUN, reference)
    monkeypatch.chdir(tmp_path)
    assert main(["report", str(reference), "--out", str(reference / "REPORT.md")]) == 2
    assert "the committed reference run, which is read-only: pass --update-reference" in (
        capsys.readouterr().err
    )
    assert not (reference / "REPORT.md").exists()
    assert main(["plot", str(reference), "--out", str(reference / "figures")]) == 2
    assert "the committed reference run, which is read-only" in capsys.readouterr().err
    assert main(["report", str(reference)]) == 0  # drawn, but not into the reference
    assert (tmp_path / "results" / "report" / "REPORT.md").exists()
    assert not (reference / "figures").exists()
    readme = tmp_path / "README.md"  # the checkout's front page, beside results/
    readme.write_text(f"# loopvec\n\n{START}\nstale numbers\n{END}\n\nmore\n")
    assert main(["report", str(reference), "--update-reference"]) == 0
    assert (reference / "REPORT.md").exists()
    assert (reference / "figures" / "crossover.png").exists()
    block = headline_block((reference / "REPORT.md").read_text())
    assert readme.read_text() == f"# loopvec\n\n{START}\n{block.strip()}\n{END}\n\nmore\n"
    readme.write_text("# another project\n")  # no markers: not loopvec's front page
    assert main(["report", str(reference), "--update-reference"]) == 0  # the report is made
    assert f"{readme} was left as it was: the README needs the marker" in capsys.readouterr().err
    assert readme.read_text() == "# another project\n"


def test_compare_says_when_machines_or_code_differ(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    other = other_machine(tmp_path)
    cell = other / "numba_loops-m1-n1-t1-float64-C.json"
    cell.write_text(json.dumps({**json.loads(cell.read_text()), "code_fingerprint": "edited"}))
    assert main(["compare", str(RUN), str(other)]) == 0
    out = capsys.readouterr().out
    fingerprint = json.loads((RUN / "machine.json").read_text())["fingerprint"]
    assert f"A: run {RUN.name}; machine {fingerprint} (host vm)" in out
    assert f"B: run {other.name}; machine 0123456789abcdef (host vm)" in out
    assert "A and B are different machine states: B/A compares the machines" in out
    lines = [line for line in out.splitlines() if line.startswith("numba_loops m=1 n=1 ")]
    assert lines[0].endswith("changed")
    rows = [line for line in out.splitlines() if " m=" in line and line not in lines[:1]]
    assert rows
    assert all(line.endswith("same") for line in rows)


def test_train_checks_that_it_can_write_before_it_trains(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    blocker = tmp_path / "file"
    blocker.write_text("a file where --out needs a folder")
    assert main(["train", "--iterations", "100000", "--out", str(blocker / "out")]) == 2
    out, err = capsys.readouterr()
    assert f"--out: cannot write into {blocker / 'out'}" in err
    assert out == ""  # stopped before loading the data, let alone training


def test_a_run_with_nothing_timed_gets_a_report_that_says_so(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    run = tmp_path / RUN.name
    shutil.copytree(RUN, run)
    for path in run.glob("*-*.json"):
        cell = json.loads(path.read_text())
        cell.update(status="skipped", reason="predicted 9 s per call > budget 1 s", passes=[])
        path.write_text(json.dumps(cell))
    assert main(["report", str(run)]) == 0, capsys.readouterr().err
    report = (run / "REPORT.md").read_text()
    cells = len(list(run.glob("*-*.json")))
    assert f"**Nothing was timed in this run** ({cells} skipped)" in report
    assert "| numba_loops m=1 n=1 t=1 float64 | skipped | predicted 9 s per call" in report
    assert not (run / "figures").exists()  # nothing to draw


def test_cells_without_a_machine_record_are_read_and_reported_into_their_folder(
    tmp_path: Path, capsys
) -> None:  # type: ignore[no-untyped-def]
    run = tmp_path / RUN.name
    shutil.copytree(RUN, run)
    (run / "machine.json").unlink()
    assert main(["report", str(run), "--machine", "vm"]) == 0
    assert "has no machine.json: its cells are read without a machine record" in (
        capsys.readouterr().err
    )
    assert "unknown CPU (no machine record)" in (run / "REPORT.md").read_text()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "--iterations", "0"], "--iterations must be a positive integer; got 0"),
        (["train", "--record-every", "-5"], "--record-every must be a positive integer; got -5"),
        (["train", "--learning-rate", "nan"], "--learning-rate must be a finite number > 0"),
        (["train", "--l2-penalty", "-1"], "--l2-penalty must be a finite number >= 0; got -1.0"),
        (["train", "--iterations", "x"], "argument --iterations: invalid int value: 'x'"),
        (["train", "--backend", "nope"], "argument --backend: invalid choice: 'nope'"),
        (["train", "--dataset", "nope"], "argument --dataset: invalid choice: 'nope'"),
        (["compare", RUN, RUN, "--tie-band", "-1"], "--tie-band: expected a finite percentage"),
        (["compare", RUN, RUN, "--fail-above", "nan"], "--fail-above: expected a finite"),
        (["compare", RUN, RUN, "--relative-to", "x"], "argument --relative-to: invalid choice"),
        (["report", RUN, "--machine", "nope"], "no results of machine 'nope'"),
        (["plot", RUN, "--machine", "nope"], "no results of machine 'nope'"),
    ],
)
def test_a_bad_cli_option_is_one_line_naming_it_and_writes_nothing(
    argv: list[object], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = ["--out", str(tmp_path / "out")] if argv[0] != "compare" else []
    try:
        code = main([*map(str, argv), *out])
    except SystemExit as stop:  # argparse's own checks
        code = int(stop.code or 0)
    assert code == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_a_damaged_machine_record_is_named_with_its_file(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    run = tmp_path / RUN.name
    shutil.copytree(RUN, run)
    (run / "machine.json").write_text("{garbage")
    for argv in (["report", str(run), "--html"], ["report", str(run)], ["plot", str(run)]):
        assert main([*argv, "--out", str(tmp_path / "out")]) == 2
        err = capsys.readouterr().err
        assert f"{run / 'machine.json'} cannot be read as a machine record (JSONDecodeError" in err
        assert "remove it to read the run's cells without one" in err
    assert not (tmp_path / "out").exists()


def test_a_results_folder_whose_run_lost_its_machine_record_names_that_run(
    tmp_path: Path, capsys
) -> None:  # type: ignore[no-untyped-def]
    run = tmp_path / "results" / RUN.name
    shutil.copytree(RUN, run)
    (run / "machine.json").unlink()
    assert main(["report", str(tmp_path / "results")]) == 2
    err = capsys.readouterr().err
    assert (
        f"{tmp_path / 'results'} holds no run with a machine.json; cells without one are in "
        f"{run}: name such a folder" in err
    )
    assert main(["report", str(run), "--machine", "vm"]) == 0  # as it says


def test_compare_json_of_runs_with_no_cell_in_common_says_why(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    other = tmp_path / "other"
    shutil.copytree(RUN, other)
    for path in other.glob("numba_loops-*.json"):
        path.unlink()
    only_numba = tmp_path / "only_numba"
    shutil.copytree(RUN, only_numba)
    for path in only_numba.glob("*.json"):
        if path.name != "machine.json" and not path.name.startswith("numba_loops-"):
            path.unlink()
    assert main(["compare", str(other), str(only_numba), "--json"]) == 1
    captured = capsys.readouterr()
    assert json.loads(captured.out) == []  # stdout stays the JSON alone
    assert f"loopvec compare: no cell was timed in both runs: {other} has " in captured.err
    assert f"{only_numba} has 6 timed cells (numba_loops)" in captured.err


def test_ctrl_c_where_training_cannot_defer_it_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A second Ctrl-C while the results are written: nothing half-written, one line, 130."""

    def interrupted(*args: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "write_png", interrupted)
    assert main(["train", "--iterations", "3", "--out", str(tmp_path)]) == 130
    assert capsys.readouterr().err.rstrip().endswith("loopvec train: interrupted")
    assert list(tmp_path.iterdir()) == []
