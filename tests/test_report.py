"""The report states the headline, every table, every figure with its sentence, and the machine."""

from __future__ import annotations

from pathlib import Path

from loopvec.plots import FIGURES, TRAINING_FIGURES
from loopvec.report import figure_sentences, render_report, training_sentence
from loopvec.results import load_results

RUN = next((Path(__file__).parent / "fixtures" / "results" / "cells").iterdir())
RESULTS = load_results([RUN])
RECORDS, MACHINE = RESULTS.records, RESULTS.machines["vm"]
FIGURE_PATHS = {name: f"figures/{name}.png" for name in [*FIGURES, *TRAINING_FIGURES]}
REPORT = render_report(RECORDS, MACHINE, FIGURE_PATHS, RESULTS.training)


def test_headline_names_the_fastest_backend_with_its_speedups() -> None:
    headline = REPORT.split("## Headline")[1].split("##")[0]
    # (10, 10) and (1000, 100) are not in this grid: the largest size stands in.
    assert "**m = 10,000, n = 10**: fastest is `numpy_vectorized`" in headline
    assert "faster than python_loops" in headline  # against the predicted time: skipped there
    assert "~" in headline


def test_every_figure_is_embedded_with_its_sentence() -> None:
    sentences = {
        **figure_sentences(RECORDS, MACHINE),
        "training_time": training_sentence(RESULTS.training),
    }
    assert set(FIGURES) <= set(sentences)
    for name, path in FIGURE_PATHS.items():
        assert f"![{name}]({path})\n\n{sentences[name]}" in REPORT
    assert "measured read bandwidth" in sentences["effective_bandwidth"]


def test_tables_models_compile_times_skips_noise_and_machine() -> None:
    for heading in (
        "## Median time per gradient",
        "## Speedup over `numpy_vectorized` (2 threads)",
        "## Cost model: t = overhead + per example x m + per element x m x n",
        "## First call in the process",
        "## Skipped or failed cells (4)",
        "## Noisy cells: IQR over 10% of the median",
        "## Machine",
    ):
        assert heading in REPORT
    medians = REPORT.split("## Median time per gradient")[1].split("##")[0]
    columns = "python_loops | partly_vectorized | numpy_vectorized (1t) | numpy_vectorized (2t)"
    assert f"| m | n | {columns} | numba_loops |" in medians
    assert medians.count("skip (~") == 4
    assert "| numba_loops | float64 | 1 |" in REPORT.split("## Cost model")[1]
    assert "- cpu: AMD EPYC" in REPORT
    assert "GB/s at 2 thread(s)" in REPORT


def test_training_section_has_a_row_per_training_cell() -> None:
    section = REPORT.split("## Training: 20 iterations of gradient descent")[1].split("\n## ")[0]
    rows = [
        line
        for line in section.splitlines()
        if line.startswith("| breast") or line.startswith("| synthetic")
    ]
    assert len(rows) == len(RESULTS.training) == 10
    assert "| breast_cancer (569 x 30) | python_loops | 1 | skip (~" in section
    # against a skipped python_loops the speedup is from its predicted time, marked ~
    numba = next(r for r in rows if "breast_cancer" in r and "numba_loops" in r)
    assert "| ~" in numba
    assert "98.24%" in numba
    sentence = training_sentence(RESULTS.training)
    assert "on synthetic (20 iterations, m = 100, n = 10) a run takes" in sentence
    assert "matched numpy_vectorized's to rtol 1e-09 before it was timed" in sentence
