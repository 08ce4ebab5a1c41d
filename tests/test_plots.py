"""Figures are checked by structure on the committed fixture run: panels, lines, labels, values."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import matplotlib as mpl
import pytest
from matplotlib.patches import Rectangle

import loopvec
from loopvec.analysis import (
    at_threads,
    crossover_m,
    loop_costs,
    loop_crossover_m,
    max_threads,
    middle_n,
    ratio,
    training_view,
)
from loopvec.formatting import format_estimate, format_ratio, format_seconds, loop_cost_words
from loopvec.plots import (
    FIGURES,
    cost_curve,
    crossover,
    effective_bandwidth,
    figures_for,
    outer_loop,
    runtime_vs_m,
    speedup_heatmaps,
    thread_scaling,
    training_time,
)
from loopvec.results import Record, TrainingRecord, load_results
from loopvec.stats import Estimate

mpl.use("Agg")
RUN = next((Path(__file__).parent / "fixtures" / "results").iterdir())
RESULTS = load_results([RUN])
RECORDS, MACHINE = RESULTS.records, next(iter(RESULTS.machines.values()))
SIZES = {(r.m, r.n) for r in RECORDS}  # 3 m x 2 n


def texts(ax) -> list[str]:  # type: ignore[no-untyped-def]
    return [t.get_text() for t in ax.texts]


def test_speedup_heatmaps_annotate_every_cell_and_hatch_the_skipped() -> None:
    figure = speedup_heatmaps(RECORDS, MACHINE, baseline="numpy_vectorized")
    panels = [ax for ax in figure.axes if ax.get_visible() and ax.get_title()]
    assert [ax.get_title() for ax in panels] == ["python_loops", "partly_vectorized", "numba_loops"]
    cells = at_threads(RECORDS, 2)
    loops_panel = panels[0]
    hatched = [p for p in loops_panel.patches if isinstance(p, Rectangle) and p.get_hatch()]
    assert len(hatched) == 2  # python_loops skipped at m = 10,000 for n = 1 and 10
    speedup = ratio(cells[("numpy_vectorized", 100, 10)], cells[("python_loops", 100, 10)])
    assert f"{format_ratio(speedup.value)}\n±{speedup.half_width:.0%}" in texts(loops_panel)
    assert sum(t.startswith("skip\n~") for t in texts(loops_panel)) == 2
    assert len(texts(panels[2])) == len(SIZES)  # numba_loops: a value in every cell
    assert "AMD EPYC" in figure._suptitle.get_text()
    assert loops_panel.get_xlabel() == "m (examples)"
    colorbar = figure.axes[-1]
    assert "1x" in [label.get_text() for label in colorbar.get_yticklabels()]


def test_baseline_skips_are_labelled_as_such() -> None:
    figure = speedup_heatmaps(RECORDS, MACHINE, baseline="python_loops")
    numba_panel = next(ax for ax in figure.axes if ax.get_title() == "numba_loops")
    assert sum(t.startswith("base skip") for t in texts(numba_panel)) == 2


def test_runtime_has_a_panel_per_n_and_a_line_plus_model_per_backend() -> None:
    figure = runtime_vs_m(RECORDS, MACHINE)
    panels = [ax for ax in figure.axes if ax.get_visible()]
    assert [ax.get_title() for ax in panels] == ["n = 1 features", "n = 10 features"]
    for ax in panels:
        assert (ax.get_xscale(), ax.get_yscale()) == ("log", "log")
        assert ax.get_legend() is None  # no legend over the data
        assert len([line for line in ax.lines if line.get_linestyle() == "--"]) == 4
    (legend,) = figure.legends  # one for the figure, each backend once, with its model
    labels = [t.get_text() for t in legend.get_texts()]
    assert [label.split(":")[0] for label in labels] == [
        "python_loops", "partly_vectorized", "numpy_vectorized", "numba_loops"
    ]  # fmt: skip
    assert all(" us + " in label or " ns x m" in label for label in labels)
    assert "median time per gradient (s)" in panels[0].get_ylabel()
    # The points are the cells' times, read from the records (not from the figure's code).
    timed = sorted(
        (r.m, r.median_s) for r in at_threads(RECORDS, 1).values()
        if r.backend == "numba_loops" and r.n == 10 and r.timed
    )  # fmt: skip
    line = next(x for x in panels[1].lines if x.get_label().startswith("numba_loops"))
    assert list(zip(line.get_xdata(), line.get_ydata(), strict=True)) == timed


def record(backend: str, m: int, median_s: float) -> Record:
    """A cell timed in three passes of one block of three rounds, all `median_s`."""
    samples = (((median_s,) * 3,),) * 3
    return Record(
        backend, m, 10, 1, host="h", status="timed",
        run="r", passes=(1, 2, 3), samples=samples, median_s=median_s,
    )  # fmt: skip


def cells_of(*records: Record) -> dict[tuple[str, int, int], Record]:
    return {(r.backend, r.m, r.n): r for r in records}


def test_crossover_is_interpolated_where_the_ratio_crosses_one() -> None:
    cells = cells_of(
        record("fast", 10, 4.0), record("slow", 10, 1.0),
        record("fast", 1000, 1.0), record("slow", 1000, 4.0),
    )  # fmt: skip
    kind, m = crossover_m(cells, "fast", "slow", 10)
    assert kind == "from"
    assert m == pytest.approx(100.0)  # log ratio -1.39 at 10, +1.39 at 1000: halfway in log m


@pytest.mark.parametrize(
    ("fast_times", "expected"),
    [((0.5, 0.5), "always"), ((2.0, 2.0), "never"), ((0.5, 2.0), "never")],
)
def test_crossover_always_and_never(fast_times: tuple[float, float], expected: str) -> None:
    cells = cells_of(
        record("fast", 10, fast_times[0]), record("slow", 10, 1.0),
        record("fast", 1000, fast_times[1]), record("slow", 1000, 1.0),
    )  # fmt: skip
    assert crossover_m(cells, "fast", "slow", 10) == (expected, None)


def test_crossover_figure_names_a_winner_in_every_cell() -> None:
    figure = crossover(RECORDS, MACHINE)
    winners_ax, crossing_ax = figure.axes[:2]
    assert len(winners_ax.texts) == len(SIZES)
    assert all(t.split("\n")[0] in {"numba_loops", "numpy_vectorized"} for t in texts(winners_ax))
    # The crossings read as words, a row per backend and a column per n, no caption needed.
    rows = [t.get_text() for t in crossing_ax.get_yticklabels()]
    assert rows == ["python_loops", "partly_vectorized", "numba_loops"]
    assert [t.get_text() for t in crossing_ax.get_xticklabels()] == ["n = 1", "n = 10"]
    cells = at_threads(RECORDS, 2)
    words = texts(crossing_ax)
    assert len(words) == 3 * 2
    for k, (backend, n) in enumerate((b, n) for b in rows for n in (1, 10)):
        kind, from_m = crossover_m(cells, "numpy_vectorized", backend, n)
        expected = (
            f"from m ≈ {from_m:,.0f}" if from_m else {"always": "every m", "never": "no m"}[kind]
        )
        assert words[k] == expected


def test_bandwidth_draws_the_measured_ceiling_per_thread_count() -> None:
    figure = effective_bandwidth(RECORDS, MACHINE)
    panels = figure.axes
    assert [ax.get_title() for ax in panels] == ["1 thread, n = 10", "2 threads, n = 10"]
    for ax, threads in zip(panels, ("1", "2"), strict=True):
        ceiling = MACHINE["read_bandwidth_bytes_per_s"][threads] / 1e9
        dashed = [line for line in ax.lines if line.get_linestyle() == "--"]
        assert dashed[0].get_ydata()[0] == pytest.approx(ceiling)
        assert any("measured read bandwidth" in t for t in texts(ax))
        assert "GB/s" in ax.get_ylabel()


def test_thread_scaling_has_a_bar_per_threaded_backend() -> None:
    figure = thread_scaling(RECORDS, MACHINE)
    ax = figure.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["numpy_vectorized"]
    (bar,) = ax.patches
    by = {
        (r.threads): r.median_s
        for r in RECORDS
        if r.backend == "numpy_vectorized" and (r.m, r.n) == (10_000, 10)
    }
    assert bar.get_width() == pytest.approx(by[1] / by[2])
    assert "single-threaded: python_loops, partly_vectorized, numba_loops" in ax.get_title()


@pytest.mark.parametrize("name", FIGURES)
def test_every_figure_renders_from_the_fixture(name: str) -> None:
    figure = FIGURES[name](RECORDS, MACHINE)
    assert figure.axes
    assert "2026" in figure._suptitle.get_text()  # the date of the run


def test_loopvec_against_frameworks_names_both_winners_per_cell() -> None:
    loopvec_side = [record("numba_fused", m, t) for m, t in ((10, 1e-6), (1000, 1e-4))]
    framework_side = [record("torch_formula", m, t) for m, t in ((10, 2e-5), (1000, 5e-5))]
    figure = FIGURES["loopvec_vs_frameworks"](loopvec_side + framework_side, MACHINE)
    ax = figure.axes[0]
    assert texts(ax) == [
        "20x [20, 20]\nnumba_fused\nvs torch_formula",
        "0.5x [0.5, 0.5]\nnumba_fused\nvs torch_formula",
    ]
    assert "framework time / loopvec time" in figure.axes[-1].get_ylabel()


def test_loopvec_against_frameworks_says_when_there_are_none() -> None:
    figure = FIGURES["loopvec_vs_frameworks"](RECORDS, MACHINE)
    assert "no framework backend in this run" in texts(figure.axes[0])[0]


def test_training_time_labels_every_bar_with_its_speedup_and_hatches_the_skipped() -> None:
    training = RESULTS.training
    figure = training_time(training, MACHINE)
    breast, synthetic = figure.axes
    assert breast.get_title() == "breast_cancer: m = 569, n = 30, 20 iterations"
    assert synthetic.get_title() == "synthetic: m = 100, n = 10, 20 iterations"
    assert [t.get_text() for t in breast.get_yticklabels()] == [
        "python_loops",
        "partly_vectorized",
        "numpy_vectorized",
        "numba_loops",
    ]
    view = training_view(training)
    synthetic_problem, breast_problem = ("synthetic", 100, 10, 20), ("breast_cancer", 569, 30, 20)
    loops, numba = (
        view[(synthetic_problem, "python_loops")],
        view[(synthetic_problem, "numba_loops")],
    )
    speedup = format_estimate(ratio(loops, numba))
    assert f" {format_seconds(numba.median_s)}, {speedup}" in texts(synthetic)
    hatched = [bar for bar in breast.patches if bar.get_hatch()]
    assert len(hatched) == 2  # python_loops and partly_vectorized: over the train budget
    skipped = view[(breast_problem, "python_loops")]
    assert hatched[0].get_width() == skipped.predicted_s
    assert f" skipped: predicted {format_seconds(skipped.predicted_s)}" in texts(breast)
    assert any(
        t.endswith(
            ", ~"
            + format_ratio(skipped.predicted_s / view[(breast_problem, "numba_loops")].median_s)
        )
        for t in texts(breast)
    )


def test_cost_curve_draws_every_recorded_cost_and_the_final_one() -> None:
    problem = loopvec.make_problem(30, 3, seed=0)
    result = loopvec.train(problem.X, problem.Y, iterations=250, record_every=100)
    (ax,) = cost_curve(result, "title").axes
    (line,) = ax.lines
    assert line.get_xdata().tolist() == [0, 100, 200, 250]
    assert line.get_ydata().tolist() == [*result.costs.tolist(), result.final_cost]
    assert ax.get_yscale() == "log"


def test_training_panels_are_one_per_problem_and_a_failed_run_says_so() -> None:
    training = RESULTS.training
    longer = [dataclasses.replace(r, iterations=40) for r in training if r.dataset == "synthetic"]
    failed = dataclasses.replace(longer[-1], status="failed", median_s=None, backend="numba_loops")
    figure = training_time([*training, *longer[:-1], failed], MACHINE)
    assert len(figure.axes) == 3  # synthetic at 20 and at 40 iterations are different problems
    last = figure.axes[2]
    assert last.get_title() == "synthetic: m = 100, n = 10, 40 iterations"
    (label,) = [t for t in last.texts if t.get_text() == "failed"]
    assert label.get_position()[0] == 0.01  # at the panel's left edge, in axes units


#: Made-up peaks, in m-long float64 arrays, for the fixture run (measured before memory was).
M_ARRAYS = {"numpy_vectorized": 5, "torch_formula": 2, "jax_formula": 2, "partly_vectorized": 0}


def with_peaks(records: Sequence[Record]) -> list[Record]:
    """`records` with a peak per call: M_ARRAYS m-long arrays and 1 KiB, the same bytes at both
    calls that measured it; other backends 2 KiB."""
    measured = []
    for r in records:
        peak = 8 * r.m * M_ARRAYS[r.backend] + 1024 if r.backend in M_ARRAYS else 2048
        peaks = {"peak_bytes": peak, "peak_bytes_calls": (peak, peak),
                 "peak_method": "made up for the tests"}  # fmt: skip
        measured.append(dataclasses.replace(r, **peaks) if r.timed else r)
    return measured


def test_the_memory_figure_draws_a_line_per_measured_backend_and_x_itself() -> None:
    assert "peak_memory" not in figures_for(RECORDS, RESULTS.training, MACHINE)  # not measured
    measured = with_peaks(RECORDS)
    figure = figures_for(measured, (), MACHINE)["peak_memory"]
    (ax,) = figure.axes
    labels = [line.get_label() for line in ax.get_lines()]
    n = middle_n(sorted({r.n for r in measured}))
    assert labels[-1] == "X itself (m n x 8)"
    timed = at_threads(measured, max_threads(measured))
    assert set(labels[:-1]) == {b for (b, _, nn), r in timed.items() if nn == n and r.timed}
    numpy_line = ax.get_lines()[labels.index("numpy_vectorized")]
    for m, drawn in zip(*numpy_line.get_data(), strict=True):
        assert drawn == 40 * m + 1024


def loop_records(m: int, python_step_s: float, compiled_step_s: float) -> list[TrainingRecord]:
    """numba_loops on the synthetic problem at m, in both loops, three passes of 20 steps; the
    passes wobble alike (one process each)."""
    base = next(
        r for r in RESULTS.training if (r.dataset, r.backend) == ("synthetic", "numba_loops")
    )
    records = []
    for loop, step_s in (("python", python_step_s), ("compiled", compiled_step_s)):
        run_s = step_s * base.iterations
        samples = tuple(((run_s * wobble,) * 3,) for wobble in (1.0, 1.01, 0.99))
        records.append(
            dataclasses.replace(
                base,
                m=m,
                loop=loop,
                samples=samples,
                passes=(1, 2, 3),
                median_s=run_s,
                low_s=run_s * 0.99,
                high_s=run_s * 1.01,
            )
        )
    return records


def test_the_outer_loop_cost_is_the_step_time_difference_and_its_crossover_is_interpolated() -> (
    None
):
    overhead_s = 10e-6  # compiled steps of 1 us at m = 100 and 100 us at m = 10,000
    records = [*loop_records(100, 11e-6, 1e-6), *loop_records(10_000, 110e-6, 100e-6)]
    small, large = loop_costs(records)
    assert (small.python.m, large.python.m) == (100, 10_000)
    assert small.overhead_s.value == pytest.approx(overhead_s)
    assert small.overhead_s.low < overhead_s < small.overhead_s.high  # the passes' spread
    assert small.speedup.value == pytest.approx(11)
    assert loop_crossover_m([small, large]) == pytest.approx(1000)  # 10 us: log-halfway
    assert loop_crossover_m([large]) is None  # not crossed within the sizes measured
    (ax,) = outer_loop(records, MACHINE).axes
    assert ax.get_title() == "numba_loops: Python loop costs 10 us a step"
    assert ax.lines[-1].get_xdata()[0] == pytest.approx(1000)  # the crossover's vertical line
    assert "loop > half a step\nbelow m = 1,000" in texts(ax)
    slower = Estimate(-5e-6, -8e-6, -2e-6)  # torch.compile's guards cost more than the loop
    assert loop_cost_words(slower) == "compiled loop 5 us slower a step"
    assert loop_cost_words(Estimate(1e-6, -1e-6, 3e-6)).endswith("about 0 (1 us) a step")


def test_crossover_figure_of_one_backend_says_there_is_nothing_to_cross() -> None:
    alone = [r for r in RECORDS if r.backend == "numpy_vectorized"]
    crossing_ax = crossover(alone, MACHINE).axes[1]
    assert texts(crossing_ax) == ["no backend but numpy_vectorized to compare it with"]


def test_thread_scaling_of_a_run_on_one_thread_draws_no_bar() -> None:
    figure = thread_scaling([r for r in RECORDS if r.threads == 1], MACHINE)
    assert len(figure.axes[0].patches) == 0  # and no singular-axis warning (warnings fail)
