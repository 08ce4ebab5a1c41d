"""The CLI writes figures and the report from saved results, the same bytes for the same data."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from loopvec.cli import main
from loopvec.plots import FIGURES

FIXTURE = Path(__file__).parent / "fixtures" / "results"


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
    assert (tmp_path / "results" / "REPORT.md").exists()
    assert (tmp_path / "results" / "figures" / "crossover.png").exists()


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


def test_unknown_host_and_foreign_json_are_clear_errors(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["plot", str(FIXTURE), "--host", "elsewhere", "--out", str(tmp_path)]) == 2
    assert "no results from host 'elsewhere'; hosts: vm" in capsys.readouterr().err
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
    assert " 1.000  \n" in out


def test_a_training_only_run_gets_its_figure_and_report(tmp_path: Path) -> None:
    run = tmp_path / "cells" / "vm-smoke"
    run.mkdir(parents=True)
    fixture_run = next((FIXTURE / "cells").iterdir())
    for path in [fixture_run / "machine.json", *fixture_run.glob("train-*.json")]:
        shutil.copy(path, run)
    report = tmp_path / "REPORT.md"
    assert main(["report", str(run), "--out", str(report), "--figures", str(tmp_path)]) == 0
    assert (tmp_path / "training_time.png").exists()
    assert not (tmp_path / "crossover.png").exists()
    text = report.read_text()
    assert text.startswith("# loopvec report: training runs")
    assert "## Training: 20 iterations of gradient descent" in text
