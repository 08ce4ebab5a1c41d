"""The report states the headline, every table, every figure with its sentence, and the machine."""

from __future__ import annotations

from pathlib import Path

from loopvec.plots import FIGURES
from loopvec.report import figure_sentences, render_report
from loopvec.results import load_results

RUN = next((Path(__file__).parent / "fixtures" / "results" / "cells").iterdir())
RESULTS = load_results([RUN])
RECORDS, MACHINE = RESULTS.records, RESULTS.machines["vm"]
FIGURE_PATHS = {name: f"figures/{name}.png" for name in FIGURES}
REPORT = render_report(RECORDS, MACHINE, FIGURE_PATHS)


def test_headline_names_the_fastest_backend_with_its_speedups() -> None:
    headline = REPORT.split("## Headline")[1].split("##")[0]
    # (10, 10) and (1000, 100) are not in this grid: the largest size stands in.
    assert "**m = 10,000, n = 10**: fastest is `numpy_vectorized`" in headline
    assert "faster than python_loops" in headline  # against the predicted time: skipped there
    assert "~" in headline


def test_every_figure_is_embedded_with_its_sentence() -> None:
    sentences = figure_sentences(RECORDS, MACHINE)
    assert set(sentences) == set(FIGURES)
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
