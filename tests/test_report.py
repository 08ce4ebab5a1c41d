"""The report states the headline, every table, every figure with its sentence, and the machine."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from test_plots import loop_records, with_peaks

from loopvec.analysis import layout_ratios, middle_n, ratio
from loopvec.formatting import format_bytes, format_seconds
from loopvec.plots import FIGURES, TRAINING_FIGURES, layout_effect
from loopvec.report import (
    figure_sentences,
    outer_loop_sentence,
    render_report,
    training_sentence,
)
from loopvec.results import Record, load_results

RUN = next((Path(__file__).parent / "fixtures" / "results").iterdir())
RESULTS = load_results([RUN])
RECORDS, MACHINE = RESULTS.records, next(iter(RESULTS.machines.values()))
FIGURE_PATHS = {name: f"figures/{name}.png" for name in [*FIGURES, *TRAINING_FIGURES]}
REPORT = render_report(RECORDS, MACHINE, FIGURE_PATHS, RESULTS.training)
COMMIT = RECORDS[0].git_commit[:7]


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
        "## Unstable cells",
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
    assert "| breast_cancer (569 x 30) | python_loops | python | 1 | skip (~" in section
    # against a skipped python_loops the speedup is from its predicted time, marked ~
    numba = next(r for r in rows if "breast_cancer" in r and "numba_loops" in r)
    assert "| ~" in numba
    assert "98.24%" in numba
    sentence = training_sentence(RESULTS.training)
    assert "on synthetic (20 iterations, m = 100, n = 10) a run takes" in sentence
    assert "matched numpy_vectorized's to rtol 1e-09 before it was timed" in sentence
    assert all(row.endswith(" |  |  |") for row in rows)  # measured before memory was
    measured = [
        dataclasses.replace(r, step_peak_bytes=2048, run_peak_bytes=3 * 2**20,
                            run_worker_peak_bytes=2**20)
        for r in RESULTS.training
    ]  # fmt: skip
    report = render_report(RECORDS, MACHINE, FIGURE_PATHS, measured)
    assert "| peak of a step | peak of a run |" in report
    assert report.count(" | 2 KiB | 4 MiB |") == len(measured)  # a run's: its workers' added


def test_the_outer_loop_section_gives_each_step_its_cost_and_crossover() -> None:
    loops = [*loop_records(100, 11e-6, 1e-6), *loop_records(10_000, 110e-6, 100e-6)]
    report = render_report(RECORDS, MACHINE, FIGURE_PATHS, [*RESULTS.training, *loops])
    section = report.split("## The outer loop: Python against compiled")[1].split("\n## ")[0]
    rows = [line for line in section.splitlines() if line.startswith("| synthetic")]
    assert rows[0].startswith("| synthetic (100 x 10) | numba_loops | 1 | 11 us [")
    assert "| 11x [" in rows[0]
    assert "| 10 us [" in rows[0]  # the Python loop's cost per step, with its interval
    assert len(rows) == 2
    assert "| numba_loops | compiled | 1 |" in report  # the training table has both loops
    sentence = outer_loop_sentence(loops)
    assert "`numba_loops` 10 us [" in sentence
    assert "more than half of a step below m ≈ 1,000" in sentence


def test_a_report_of_one_run_names_it_and_its_code() -> None:
    assert f"Run `{RUN.name}`, code of commit `{COMMIT}`" in REPORT
    assert "merges" not in REPORT
    assert "versions of its code" not in REPORT  # training cells' code differs, by design


def test_the_kernel_plan_each_planned_backend_ran_with_is_named() -> None:
    measured = {
        "plan": {"c_block_bytes": 2**19, "f_block_bytes": 2**18, "f_transpose_below_n": 32},
        "source": "kept", "note": "plans/x.json", "measured_at": "2026-12-05T03:26:03+00:00",
        "measure_s": 32.23,
    }  # fmt: skip
    default = {**measured, "source": "default", "note": "LOOPVEC_KERNEL_PLAN=default"}
    plans = {"numba_loops": measured, "numpy_vectorized": default}
    planned = [dataclasses.replace(r, kernel_plan=plans.get(r.backend)) for r in RECORDS]
    provenance = render_report(planned, MACHINE, FIGURE_PATHS).split("## Headline")[0]
    assert (
        "Kernel plan of `numba_loops`: C order 512 KiB blocks; Fortran order 256 KiB blocks, "
        "transposed below n = 32, else columns 8 side by side, measured on this machine "
        "2026-12-05 in 32.2 s."
    ) in provenance
    assert (
        "Kernel plan of `numpy_vectorized`: today's constants, C order 512 KiB blocks"
    ) in provenance
    assert "(LOOPVEC_KERNEL_PLAN=default)." in provenance
    assert "Kernel plan" not in REPORT  # no planned backend in the fixture run


def test_merged_runs_are_labelled_and_never_divided() -> None:
    moved = [
        dataclasses.replace(r, run="other-run") if r.backend == "numba_loops" else r
        for r in RECORDS
    ]
    text = render_report(moved, MACHINE, FIGURE_PATHS, RESULTS.training)
    assert "**This report merges 2 runs.**" in text
    assert f"| [1] | `{RUN.name}` | commit `{COMMIT}`" in text
    assert f"| [2] | `other-run` | commit `{COMMIT}`" in text
    assert " | 6 |" in text
    medians = text.split("## Median time per gradient")[1].split("##")[0]
    numba = next(r for r in moved if r.backend == "numba_loops" and r.timed)
    assert f"{format_seconds(numba.median_s)} ±{numba.estimate.half_width:.0%} [2]" in medians
    speedups = text.split("## Speedup over `numpy_vectorized`")[1].split("##")[0]
    header, _, *rows = [line for line in speedups.splitlines() if line.startswith("|")]
    column = [c.strip() for c in header.split("|")].index("numba_loops")
    assert all(row.split("|")[column].strip() == "" for row in rows)  # no ratio across runs
    assert "fastest is `numba_loops`" not in text  # a winner would compare across runs
    assert "no fastest backend is named" in text.split("## Headline")[1].split("##")[0]


def test_a_backend_timed_at_two_code_versions_is_named() -> None:
    first = next(r for r in RECORDS if r.backend == "numba_loops")
    changed = [
        dataclasses.replace(r, code_fingerprint="0" * 16) if r is first else r for r in RECORDS
    ]
    text = render_report(changed, MACHINE, FIGURE_PATHS, RESULTS.training)
    assert "**`numba_loops` was timed at 2 versions of its code** (fingerprints 0000" in text
    training = [dataclasses.replace(r, code_fingerprint="training-code") for r in RESULTS.training]
    text = render_report(RECORDS, MACHINE, FIGURE_PATHS, training)
    assert "versions of its code" not in text  # a training run's code is compared apart


def test_ratios_only_within_one_run_and_one_version_of_a_kernel() -> None:
    one, two = (r for r in RECORDS if r.backend == "numpy_vectorized" and (r.m, r.n) == (1, 1))
    assert ratio(one, two).value == pytest.approx(one.median_s / two.median_s, rel=0.02)
    assert ratio(one, two).low < ratio(one, two).value < ratio(one, two).high
    assert ratio(one, dataclasses.replace(two, run="another")) is None
    assert ratio(one, dataclasses.replace(two, code_fingerprint="another")) is None


def fortran_twin(record: Record, factor: float) -> Record:
    """The record as if timed in Fortran order, every sample `factor` times its C time."""
    samples = tuple(tuple(tuple(s * factor for s in b) for b in p) for p in record.samples)
    scaled = {k: getattr(record, k) * factor for k in ("median_s", "low_s", "high_s")}
    return dataclasses.replace(record, layout="F", samples=samples, **scaled)


def test_the_layout_table_and_figure_give_f_over_c_with_intervals_and_leave_the_rest_alone() -> (
    None
):
    """F cells get their own section, figure and sentence; every other table is the C run's."""
    largest = max((r for r in RECORDS if r.timed), key=lambda r: (r.m * r.n, r.threads))
    small = next(r for r in RECORDS if r.cell == (largest.backend, largest.m, 1, largest.threads,
                                                  "float64", "C"))  # fmt: skip
    with_f = [*RECORDS, fortran_twin(largest, 1.5), fortran_twin(small, 0.5)]
    report = render_report(with_f, MACHINE, {**FIGURE_PATHS, "layout_effect": "f.png"})
    medians = "## Median time per gradient"
    assert report.split(medians)[1].split("##")[0] == REPORT.split(medians)[1].split("##")[0]
    ratios = layout_ratios(with_f, largest.threads)
    assert set(ratios) == {(largest.backend, largest.m, n) for n in (1, largest.n)}
    slower, faster = ratios[(largest.backend, largest.m, largest.n)], ratios[small.cell[:3]]
    assert (slower.value, faster.value) == (pytest.approx(1.5), pytest.approx(0.5))
    assert slower.low <= 1.5 <= slower.high
    section = report.split("## Fortran order against C order")[1].split("## Skipped")[0]
    assert f"`{largest.backend}` slower in F order at 1 of 2 sizes" in section
    rows = {line.split(" | ")[2]: line for line in section.splitlines() if line.startswith("| ")}
    assert "| 1.5x [" in rows[f"{largest.n:,}"]
    assert "| F slower |" in rows[f"{largest.n:,}"]  # F takes 1.5 times as long
    assert "| 0.5x [" in rows["1"]
    assert "| F faster |" in rows["1"]
    assert "![layout_effect](f.png)" in report
    assert layout_ratios(RECORDS, largest.threads) == {}  # no F cells: no ratios, no section
    assert "## Fortran order" not in REPORT
    figure = layout_effect(with_f, MACHINE)
    drawn = {
        round(float(y), 6)
        for ax in figure.axes
        for bars in ax.containers  # an errorbar's container holds its label and data line
        if bars.get_label() == largest.backend
        for y in bars.lines[0].get_ydata()
    }
    assert drawn == {0.5, 1.5}
    for ax in figure.axes:  # one m a panel: a span around it (matplotlib warned of an empty one)
        assert ax.get_xlim() == pytest.approx((largest.m / 3, largest.m * 3))


def test_the_memory_table_gives_each_cells_peak_and_its_multiple_of_x() -> None:
    assert "## Memory per gradient call" not in REPORT  # the fixture run measured none
    measured = with_peaks(RECORDS)
    report = render_report(measured, MACHINE, FIGURE_PATHS, RESULTS.training)
    section = report.split("## Memory per gradient call (2 threads)")[1].split("\n## ")[0]
    n = middle_n(sorted({r.n for r in measured}))
    m = max(r.m for r in measured if r.n == n and r.timed)
    numpy = 40 * m + 1024
    assert f"at m = {m:,}, n = {n:,}" in section
    assert f"`numpy_vectorized` {format_bytes(numpy)} ({numpy / (8 * m * n):.2g} X)" in section
    sentence = section.split("\n\n")[1]
    assert sentence.index("`numba_loops`") < sentence.index("`numpy_vectorized`")  # leanest first
    assert "| m | n | " in section
    assert "Method: made up for the tests." in section
    header = section.split("\n| m | n | ")[1].split(" |\n")[0].split(" | ")
    assert header == ["python_loops", "partly_vectorized", "numpy_vectorized", "numba_loops"]
    assert "| 1 | 10 | 2 KiB (26 X) | 1 KiB (13 X) | 1.04 KiB (13 X) | 2 KiB (26 X) |" in section
