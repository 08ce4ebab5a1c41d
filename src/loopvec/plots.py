"""Records in, matplotlib Figures out: where each approach wins, at a glance. No file I/O here.

Every figure compares backends at one thread count, with the numbers of `loopvec.analysis` (a
speedup only between cells of one run, with its 95 % interval). A speedup whose interval does not
clear the tie band is a tie, drawn neutral and written with "≈". Which figures a run has,
`figures_for` says.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable, Sequence
from functools import partial
from typing import Any

import matplotlib as mpl
import numpy as np
from matplotlib.colors import BoundaryNorm, ListedColormap, Normalize
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from loopvec.analysis import (
    Cells,
    at_threads,
    backends_in,
    crossover_m,
    fit_models,
    in_course_layout,
    is_framework,
    layout_ratios,
    loop_crossover_m,
    max_threads,
    middle_n,
    ours_and_theirs,
    outer_loop_series,
    ratio,
    thread_speedups,
    training_view,
    winner,
)
from loopvec.formatting import (
    GB,
    context,
    format_estimate,
    format_ratio,
    format_seconds,
    loop_cost_words,
    size_label,
    training_speedup,
)
from loopvec.results import Record, TrainingRecord
from loopvec.stats import DEFAULT_TIE_BAND, Estimate, verdict
from loopvec.training import TrainResult

# The backends keep their colour in every figure: tab10 in registry order, then the dark tones of
# tab20b (a colour used twice would make two backends one line).
_PALETTE = [mpl.colormaps["tab10"](k) for k in range(10)] + [
    mpl.colormaps["tab20b"](k) for k in range(0, 20, 4)
]
#: A tie is neither blue nor red.
TIE_GREY = "0.85"


def backend_color(backend: str, backends: Sequence[str]) -> Any:
    return _PALETTE[list(backends).index(backend) % len(_PALETTE)]


def _sizes(records: Sequence[Record]) -> tuple[list[int], list[int]]:
    return sorted({r.m for r in records}), sorted({r.n for r in records})


def speedup_heatmaps(
    records: Sequence[Record],
    machine: dict[str, Any],
    *,
    baseline: str,
    threads: int | None = None,
) -> Figure:
    """One m x n heatmap per backend of its speedup over `baseline`, on one scale centred on 1x.

    Each cell is annotated with its value and the half-width of its 95 % interval; a tie (the
    interval within the tie band) is grey and written "≈"; a cell where either side was skipped
    is hatched and labelled with the predicted time of the skipped side.
    """
    threads = threads or max_threads(records)
    cells = at_threads(records, threads)
    m_values, n_values = _sizes(records)
    backends = [b for b in backends_in(records) if b != baseline]
    log_ratios: dict[str, np.ndarray] = {}
    estimates: dict[tuple[str, int, int], Estimate] = {}
    for backend in backends:
        grid = np.full((len(n_values), len(m_values)), np.nan)
        for i, n in enumerate(n_values):
            for j, m in enumerate(m_values):
                speedup = ratio(cells.get((baseline, m, n)), cells.get((backend, m, n)))
                if speedup is not None:
                    estimates[(backend, i, j)] = speedup
                    if verdict(speedup) != "same":
                        grid[i, j] = math.log10(speedup.value)
        log_ratios[backend] = grid
    finite = [abs(v) for g in log_ratios.values() for v in g.ravel() if np.isfinite(v)]
    limit = max(1, math.ceil(max(finite, default=1.0)))
    norm = Normalize(vmin=-limit, vmax=limit)  # symmetric in log10: 1x sits at the centre

    columns = min(len(backends), 3) or 1
    rows = math.ceil(len(backends) / columns) or 1
    figure = Figure(figsize=(4.2 * columns + 1.2, 3.2 * rows + 1.0), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False)
    image = None
    for ax, backend in zip(axes.ravel(), backends, strict=False):
        image = ax.imshow(log_ratios[backend], cmap="RdBu", norm=norm, origin="lower")
        for (i, n), (j, m) in itertools.product(enumerate(n_values), enumerate(m_values)):
            log_ratio = log_ratios[backend][i, j]
            estimate = estimates.get((backend, i, j))
            if estimate is not None and np.isfinite(log_ratio):
                color = "white" if abs(log_ratio) > 0.6 * limit else "black"
                label = f"{format_ratio(estimate.value)}\n±{estimate.half_width:.0%}"
                ax.text(j, i, label, ha="center", va="center", fontsize=7, color=color)
            elif estimate is not None:  # a tie: neutral, never blue or red
                ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, facecolor=TIE_GREY, lw=0))
                label = f"≈\n{format_ratio(estimate.value)}"
                ax.text(j, i, label, ha="center", va="center", fontsize=7)
            elif skip := _skip_label(cells.get((backend, m, n)), cells.get((baseline, m, n))):
                hatched = Rectangle(
                    (j - 0.5, i - 0.5), 1, 1, facecolor="0.9", edgecolor="0.5", hatch="///", lw=0
                )
                ax.add_patch(hatched)
                ax.text(j, i, skip, ha="center", va="center", fontsize=6.5)
        ax.set_title(backend)
        ax.set_xticks(range(len(m_values)), [size_label(m) for m in m_values])
        ax.set_yticks(range(len(n_values)), [str(n) for n in n_values])
        ax.set_xlabel("m (examples)")
        ax.set_ylabel("n (features)")
    for ax in axes.ravel()[len(backends) :]:
        ax.set_visible(False)
    if image is not None:
        ticks = list(range(-limit, limit + 1))
        bar = figure.colorbar(image, ax=axes.ravel().tolist(), ticks=ticks, shrink=0.9)
        bar.ax.set_yticklabels([format_ratio(10.0**t) for t in ticks])
        bar.set_label(f"speedup over {baseline} (blue: faster; grey ≈: a tie)")
    figure.suptitle(
        f"Speedup over {baseline} (time ratio, ± its 95 % interval)\n"
        f"{context(machine, records, threads)}"
    )
    return figure


def _skip_label(mine: Record | None, base: Record | None) -> str | None:
    """'skip ~3.2 s' where the backend was skipped, 'base skip ...' where the baseline was,
    'failed' where a backend failed its reference check, 'other runs' where both were timed
    but not in one run."""
    if mine is not None and base is not None and mine.timed and base.timed:
        return "other\nruns"
    for record, who in ((mine, ""), (base, "base ")):
        if record is not None and record.status == "failed":
            return f"{who}failed"
        if record is not None and not record.timed:
            predicted = f"\n~{format_seconds(record.predicted_s)}" if record.predicted_s else ""
            return f"{who}skip{predicted}"
    return None


def runtime_vs_m(
    records: Sequence[Record], machine: dict[str, Any], *, threads: int | None = None
) -> Figure:
    """Median time against m on log-log axes, one panel per n, a line per backend.

    The backend's fitted cost model is drawn dashed and written out in the legend (overhead,
    cost per example, cost per entry of X). Skipped cells show their prediction (x).
    """
    threads = threads or max_threads(records)
    cells = at_threads(records, threads)
    models = fit_models(records, threads)
    m_values, n_values = _sizes(records)
    backends = backends_in(records)
    columns = min(len(n_values), 2)
    rows = math.ceil(len(n_values) / columns)
    legend_in = 0.16 * math.ceil(len(backends) / 2) + 0.3
    figure = Figure(figsize=(6.0 * columns, 4.0 * rows + 0.8 + legend_in), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False, sharex=True)
    m_line = np.geomspace(min(m_values), max(m_values), 50)
    for ax, n in zip(axes.ravel(), n_values, strict=False):
        for backend in backends:
            color = backend_color(backend, backends)
            mine = sorted(
                (r for (b, _, nn), r in cells.items() if b == backend and nn == n),
                key=lambda r: r.m,
            )
            timed = [r for r in mine if r.timed]
            label = backend
            if backend in models:
                model = models[backend]
                ax.plot(
                    m_line,
                    [model.predict_s(m, n) for m in m_line],
                    "--",
                    color=color,
                    lw=1,
                    alpha=0.7,
                )
                label += f": {model.describe()}"
            ax.plot(
                [r.m for r in timed],
                [r.median_s for r in timed],
                "o-",
                color=color,
                label=label,
                ms=4,
            )
            skipped = [r for r in mine if not r.timed and r.predicted_s]
            ax.plot(
                [r.m for r in skipped], [r.predicted_s for r in skipped], "x", color=color, ms=7
            )
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(f"n = {n} features")
        ax.set_xlabel("m (examples)")
        ax.set_ylabel("median time per gradient (s)")
        ax.grid(True, which="major", alpha=0.3)
    for ax in axes.ravel()[len(n_values) :]:
        ax.set_visible(False)
    # One legend for all panels, below them: a backend's line and model are the same in each.
    figure.legend(*_shared_handles(axes.ravel()), loc="outside lower center", ncols=2, fontsize=8)
    figure.suptitle(
        "Time per gradient against m; dashed: fitted cost model, x: skipped (predicted)\n"
        + context(machine, records, threads)
    )
    return figure


def _shared_handles(axes: Iterable[Any]) -> tuple[list[Any], list[str]]:
    """The legend entries of several panels, each label once: for one legend per figure."""
    handles: dict[str, Any] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(label, handle)
    return list(handles.values()), list(handles.keys())


def _draw_winners(
    ax: Any, cells: Cells, m_values: list[int], n_values: list[int], backends: list[str]
) -> None:
    """The fastest backend of every (m, n) in its colour with its margin; ties grey."""
    winner_index = np.full((len(n_values), len(m_values)), np.nan)
    for i, n in enumerate(n_values):
        for j, m in enumerate(m_values):
            won = winner(cells, m, n)
            if won is None:
                continue
            if won.decisive:
                winner_index[i, j] = backends.index(won.best.backend)
                margin = format_estimate(won.margin) if won.margin else ""
                label = f"{won.best.backend}\n{margin}"
            else:  # a tie: neutral and hatched, naming every backend in it
                tie = Rectangle(
                    (j - 0.5, i - 0.5), 1, 1, facecolor=TIE_GREY, edgecolor="0.6", hatch="..", lw=0
                )
                ax.add_patch(tie)
                label = "\n≈ ".join(r.backend for r in won.tied)
            ax.text(j, i, label, ha="center", va="center", fontsize=6)
    colors = ListedColormap([backend_color(b, backends) for b in backends])
    norm = BoundaryNorm(np.arange(len(backends) + 1) - 0.5, len(backends))
    ax.imshow(winner_index, cmap=colors, norm=norm, origin="lower", alpha=0.55)
    ax.set_xticks(range(len(m_values)), [size_label(m) for m in m_values])
    ax.set_yticks(range(len(n_values)), [str(n) for n in n_values])
    ax.set_xlabel("m (examples)")
    ax.set_ylabel("n (features)")
    ax.set_title(
        "Fastest backend per cell (margin over the runner-up, 95 % interval);\n"
        f"grey: a tie (no lead beyond {DEFAULT_TIE_BAND:.0%} with its whole interval)"
    )


#: How a crossing reads, and its cell's shade: where `reference` wins, partly, or not at all.
_CROSSING_WORDS = {"always": "every m", "never": "no m", "unknown": "not timed"}
_CROSSING_SHADES = {"always": "#9ecae1", "from": "#deebf7", "never": "#fdd0a2", "unknown": "white"}


def _draw_crossings(
    ax: Any, cells: Cells, reference: str, others: list[str], n_values: list[int]
) -> None:
    """A table in words: per backend (row) and n (column), from which m `reference` is faster."""
    if not others:
        ax.set_axis_off()
        ax.text(0.5, 0.5, f"no backend but {reference} to compare it with", ha="center")
        return
    shades = []
    for i, backend in enumerate(others):
        row = []
        for j, n in enumerate(n_values):
            kind, from_m = crossover_m(cells, reference, backend, n)
            words = f"from m ≈ {from_m:,.0f}" if from_m is not None else _CROSSING_WORDS[kind]
            ax.text(j, i, words, ha="center", va="center", fontsize=7)
            row.append(mpl.colors.to_rgb(_CROSSING_SHADES[kind]))
        shades.append(row)
    ax.imshow(np.array(shades), aspect="auto")  # (backends, n values, RGB)
    ax.set_xticks(range(len(n_values)), [f"n = {n:,}" for n in n_values])
    ax.set_yticks(range(len(others)), others)
    ax.tick_params(length=0)
    ax.set_title(
        f"From which m {reference} is faster than each backend\n"
        "(interpolated) blue: at every m, pale: from that m on, orange: at no m",
        fontsize=10,
    )


def crossover(
    records: Sequence[Record],
    machine: dict[str, Any],
    *,
    reference: str = "numpy_vectorized",
    threads: int | None = None,
) -> Figure:
    """Left: the fastest backend in every (m, n) cell, with its margin over the runner-up.
    Right: a table in words, for each backend and n, from which m on `reference` beats it
    (where vectorization starts to pay, where the JIT stops winning)."""
    threads = threads or max_threads(records)
    cells = at_threads(records, threads)
    m_values, n_values = _sizes(records)
    backends = backends_in(records)
    height = max(1.2 * len(n_values), 0.32 * len(backends)) + 2.6  # a row per other backend
    figure = Figure(figsize=(13, height), layout="constrained")
    winners_ax, crossing_ax = figure.subplots(1, 2, width_ratios=[1.25, 1])

    _draw_winners(winners_ax, cells, m_values, n_values, backends)

    others = [b for b in backends if b != reference]
    _draw_crossings(crossing_ax, cells, reference, others, n_values)
    figure.suptitle(f"Where each approach wins\n{context(machine, records, threads)}")
    return figure


def effective_bandwidth(
    records: Sequence[Record], machine: dict[str, Any], *, n: int | None = None
) -> Figure:
    """Bytes of X / median time against bytes of X at n features, a panel per thread count,
    with the machine's measured read bandwidth at that thread count drawn as the ceiling.
    float32 cells (half the bytes) are drawn dotted beside the float64 ones."""
    n_values = sorted({r.n for r in records})
    n = n if n is not None else middle_n(n_values)
    thread_counts = sorted({r.threads for r in records})
    backends = backends_in(records)
    ceilings = machine.get("read_bandwidth_bytes_per_s", {})
    figure = Figure(figsize=(6.0 * len(thread_counts), 4.6), layout="constrained")
    axes = figure.subplots(1, len(thread_counts), squeeze=False, sharey=True)[0]
    for ax, threads in zip(axes, thread_counts, strict=True):
        for dtype, style in (("float64", "o-"), ("float32", "s:")):
            cells = at_threads(records, threads, dtype)
            for backend in backends:
                timed = sorted(
                    (r for (b, _, nn), r in cells.items() if b == backend and nn == n and r.timed),
                    key=lambda r: r.x_bytes,
                )
                if timed:
                    ax.plot(
                        [r.x_bytes for r in timed],
                        [r.x_bytes / (r.median_s or 1) / GB for r in timed],
                        style,
                        color=backend_color(backend, backends),
                        label=backend if dtype == "float64" else f"{backend} (float32)",
                        ms=4,
                    )
        if str(threads) in ceilings:
            ceiling = ceilings[str(threads)] / GB
            ax.axhline(ceiling, color="black", ls="--", lw=1)
            ax.text(
                0.02,
                ceiling,
                f"measured read bandwidth {ceiling:.0f} GB/s",
                transform=ax.get_yaxis_transform(),  # x in axes fraction, y in data
                va="bottom",
                fontsize=8,
            )
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("bytes of X (m n x 8, or x 4 in float32)")
        ax.set_ylabel("effective bandwidth (GB/s): bytes of X / time")
        ax.set_title(f"{threads} thread{'s' if threads > 1 else ''}, n = {n}")
        ax.grid(True, which="major", alpha=0.3)
    figure.legend(*_shared_handles(axes), loc="outside right upper", fontsize=7)
    figure.suptitle(
        "How close each backend gets to the memory-bandwidth limit (reading X once per gradient)\n"
        + context(machine, records, None)
    )
    return figure


def thread_scaling(records: Sequence[Record], machine: dict[str, Any]) -> Figure:
    """Speedup, 1 thread to all cores, per threaded backend at its largest size timed at both:
    a horizontal bar each, its value and size written to the right of the ideal."""
    most = max_threads(records)
    speedups = thread_speedups(records)
    backends = backends_in(records)
    shown = [b for b in backends if b in speedups]
    figure = Figure(figsize=(8, 2.4 + 0.55 * len(shown)), layout="constrained")
    ax = figure.subplots()
    for k, backend in enumerate(shown):
        speedup, m, n = speedups[backend]
        error = [[speedup.value - speedup.low], [speedup.high - speedup.value]]
        color = backend_color(backend, backends)
        ax.barh(k, speedup.value, xerr=error, capsize=4, color=color, height=0.6)
        label = f"{format_estimate(speedup)} at m = {m:,}, n = {n:,}"
        ax.text(most * 1.05, k, label, va="center", fontsize=8)  # right of the ideal line
    ax.axvline(most, color="black", ls="--", lw=1, label=f"ideal: {most}x")
    ax.axvline(1, color="0.5", lw=1)
    ax.set_yticks(range(len(shown)), shown)
    if shown:
        ax.set_ylim(len(shown) - 0.5, -0.5)  # the first backend on top
    ax.set_xlim(0, most * 2.1)  # room for the labels
    ax.set_xlabel(f"speedup, 1 -> {most} threads (95 % interval)")
    single = [b for b in backends if all(r.threads == 1 for r in records if r.backend == b)]
    only_many = [b for b in backends if b not in shown and b not in single]
    lines = ["Threads: speedup at the largest size timed at both"]
    lines += [f"single-threaded: {', '.join(single)}"] if single else []
    lines += [f"not timed on 1 thread: {', '.join(only_many)}"] if only_many else []
    ax.set_title("\n".join(lines), fontsize=9)
    figure.legend(loc="outside lower center", fontsize=8)
    figure.suptitle(context(machine, records, None), fontsize=9)
    return figure


def layout_effect(records: Sequence[Record], machine: dict[str, Any]) -> Figure:
    """F/C time ratio against m, a panel per n, a line per backend that reads both layouts in
    place, at the most threads; the tie band shaded."""
    threads = max_threads(records)
    ratios = layout_ratios(records, threads)
    n_values = sorted({n for (_, _, n) in ratios}) or [0]
    backends = backends_in(records)
    figure = Figure(figsize=(4.2 * len(n_values), 4.4), layout="constrained")
    axes = figure.subplots(1, len(n_values), squeeze=False, sharey=True)[0]
    for ax, n in zip(axes, n_values, strict=True):
        m_values = {m for (_, m, nn) in ratios if nn == n}
        if len(m_values) == 1:  # one m: a log axis of its own would have no width
            (m,) = m_values
            ax.set_xlim(m / 3, m * 3)
        for backend in dict.fromkeys(b for (b, _, _) in ratios):
            points = sorted((m, e) for (b, m, nn), e in ratios.items() if b == backend and nn == n)
            if points:
                values = [e.value for _, e in points]
                below = [e.value - e.low for _, e in points]
                above = [e.high - e.value for _, e in points]
                color = backend_color(backend, backends)
                ax.errorbar([m for m, _ in points], values, yerr=[below, above], marker="o",
                            ms=4, capsize=3, color=color, label=backend)  # fmt: skip
        ax.axhspan(1 - DEFAULT_TIE_BAND, 1 + DEFAULT_TIE_BAND, color=TIE_GREY, label="tie band")
        ax.axhline(1, color="0.4", lw=1)
        ax.set(xscale="log", yscale="log", xlabel="m (examples)", title=f"n = {n:,}")
    axes[0].set_ylabel("time in F order / time in C order\n(below 1: F is faster)")
    figure.legend(*_shared_handles(axes), loc="outside right upper")
    figure.suptitle(
        "Memory layout: X in Fortran order (data.T of an (m, n) array) against C order, "
        "with 95 % intervals\n" + context(machine, records, threads)
    )
    return figure


def peak_memory(records: Sequence[Record], machine: dict[str, Any]) -> Figure:
    """Peak bytes of one call against m at one n (100 if timed, else the largest), a line per
    backend, on log-log axes, with X's own bytes dashed: who allocates what, and how it grows.
    A peak under 1 KiB is drawn at 1 KiB."""
    threads = max_threads(records)
    cells = at_threads(records, threads)
    measured = [r for r in cells.values() if r.call_bytes is not None]
    n = middle_n(sorted({r.n for r in measured}))
    backends = backends_in(records)
    figure = Figure(figsize=(7.5, 4.8), layout="constrained")
    ax = figure.subplots()
    floor_bytes = 1024
    for backend in backends:
        line = sorted((r for r in measured if r.backend == backend and r.n == n), key=lambda r: r.m)
        if line:
            ax.plot(
                [r.m for r in line],
                [max(r.call_bytes or 0, floor_bytes) for r in line],
                "o-",
                color=backend_color(backend, backends),
                label=backend,
                ms=4,
            )
    m_values = sorted({r.m for r in measured if r.n == n})
    ax.plot(m_values, [m * n * 8 for m in m_values], "k--", lw=1, label="X itself (m n x 8)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_ylim(bottom=floor_bytes / 2)
    ax.set_xlabel("m (examples)")
    ax.set_ylabel("peak bytes of one call, beyond its inputs")
    ax.set_title(f"n = {n}, {threads} thread{'s' if threads > 1 else ''}, float64")
    ax.grid(True, which="major", alpha=0.3)
    figure.legend(loc="outside right upper", fontsize=7)
    figure.suptitle("What one gradient call allocates\n" + context(machine, records, None))
    return figure


def loopvec_vs_frameworks(
    records: Sequence[Record], machine: dict[str, Any], *, threads: int | None = None
) -> Figure:
    """Per (m, n): fastest framework backend's median / fastest loopvec backend's median, on the
    same centred colour scale as the speedups (blue: loopvec faster), each cell naming both."""
    threads = threads or max_threads(records)
    cells = at_threads(records, threads)
    m_values, n_values = _sizes(records)
    figure = Figure(figsize=(11, 1.1 * len(n_values) + 2.4), layout="constrained")
    ax = figure.subplots()
    figure.suptitle(
        f"Fastest loopvec backend against the fastest framework\n"
        f"{context(machine, records, threads)}"
    )
    if not any(is_framework(b) for (b, _, _) in cells):
        ax.text(
            0.5, 0.5, "no framework backend in this run (nox -s peers)", ha="center", va="center"
        )
        ax.set_axis_off()
        return figure
    log_ratio = np.full((len(n_values), len(m_values)), np.nan)
    for (i, n), (j, m) in itertools.product(enumerate(n_values), enumerate(m_values)):
        ours, theirs = ours_and_theirs(cells, m, n)
        lead = ratio(theirs, ours)
        if ours is None or theirs is None or lead is None:
            continue
        if verdict(lead) == "same":  # a tie: neutral
            ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, facecolor=TIE_GREY, lw=0))
            label = f"≈ {format_ratio(lead.value)}\n{ours.backend}\n≈ {theirs.backend}"
        else:
            log_ratio[i, j] = math.log10(lead.value)
            label = f"{format_estimate(lead)}\n{ours.backend}\nvs {theirs.backend}"
        ax.text(j, i, label, ha="center", va="center", fontsize=6)
    limit = max(1, math.ceil(np.nanmax(np.abs(log_ratio), initial=0.0)))
    image = ax.imshow(log_ratio, cmap="RdBu", norm=Normalize(-limit, limit), origin="lower")
    ticks = list(range(-limit, limit + 1))
    bar = figure.colorbar(image, ax=ax, ticks=ticks)
    bar.ax.set_yticklabels([format_ratio(10.0**t) for t in ticks])
    bar.set_label("framework time / loopvec time (blue: loopvec faster; grey ≈: a tie)")
    ax.set_xticks(range(len(m_values)), [size_label(m) for m in m_values])
    ax.set_yticks(range(len(n_values)), [str(n) for n in n_values])
    ax.set_xlabel("m (examples)")
    ax.set_ylabel("n (features)")
    return figure


#: Every figure loopvec draws, by file name (without .png): records and machine in, Figure out.
FIGURES: dict[str, Callable[[Sequence[Record], dict[str, Any]], Figure]] = {
    "speedup_vs_python_loops": partial(speedup_heatmaps, baseline="python_loops"),
    "speedup_vs_numpy_vectorized": partial(speedup_heatmaps, baseline="numpy_vectorized"),
    "runtime_vs_m": runtime_vs_m,
    "crossover": crossover,
    "effective_bandwidth": effective_bandwidth,
    "thread_scaling": thread_scaling,
    "loopvec_vs_frameworks": loopvec_vs_frameworks,
}


def _training_seconds(record: TrainingRecord | None) -> float | None:
    """What a bar shows: the median of a timed run, the prediction of a skipped one."""
    if record is None or record.status == "failed":
        return None
    return record.median_s if record.timed else record.predicted_s


def training_time(records: Sequence[TrainingRecord], machine: dict[str, Any]) -> Figure:
    """A panel per training problem: time per whole run per backend (log scale), each bar
    labelled with its time and its speedup over python_loops; a skipped run is a hatched bar
    at its predicted time."""
    view = training_view(records)
    problems = list(dict.fromkeys(r.problem for r in records))
    backends = backends_in(records)
    most = max((r.threads for r in records), default=1)
    columns = min(3, len(problems))
    rows = math.ceil(len(problems) / columns)
    height = rows * (0.42 * len(backends) + 1.2) + 0.6
    figure = Figure(figsize=(6.2 * columns, height), layout="constrained")
    grid = figure.subplots(rows, columns, squeeze=False, sharey=True)
    axes = grid.ravel()
    for ax in axes[len(problems) :]:
        ax.set_visible(False)
    for ax, problem in zip(axes, problems, strict=False):
        mine = [view.get((problem, b)) for b in backends]
        times = [_training_seconds(r) for r in mine]
        shown = [t for t in times if t]
        ax.set_xscale("log")
        if shown:
            ax.set_xlim(min(shown) / 2, max(shown) * 30)  # room for the labels right of the bars
        for k, (backend, record, seconds) in enumerate(zip(backends, mine, times, strict=True)):
            if record is None or not seconds:  # at the left edge, whatever the scale
                status = record.status if record else "not run"
                ax.text(0.01, k, status, transform=ax.get_yaxis_transform(), va="center")
                continue
            ax.barh(
                k,
                seconds,
                color=backend_color(backend, backends),
                hatch=None if record.timed else "///",
                alpha=1.0 if record.timed else 0.35,
            )
            speedup = training_speedup(record, view.get((problem, "python_loops")))
            label = (
                f" {format_seconds(seconds)}"
                if record.timed
                else (f" skipped: predicted {format_seconds(seconds)}")
            )
            if speedup and backend != "python_loops":
                label += f", {speedup}"
            ax.text(seconds, k, label, va="center", fontsize=8)
        dataset, m, n, iterations = problem
        ax.set_yticks(range(len(backends)), backends)
        ax.set_xlabel("seconds per training run (median; log scale)")
        ax.set_title(f"{dataset}: m = {m:,}, n = {n:,}, {iterations:,} iterations")
        ax.grid(True, axis="x", which="major", alpha=0.3)
    axes[0].invert_yaxis()  # registry order from the top (the axes share y: invert once)
    figure.suptitle(
        "Whole training runs in the Python loop, with the speedup over python_loops\n"
        + context(machine, records, most)
    )
    return figure


def cost_curve(result: TrainResult, title: str) -> Figure:
    """The recorded cost against the iteration (and the final cost), as the course plots it."""
    figure = Figure(figsize=(6.4, 4.2), layout="constrained")
    ax = figure.subplots()
    iterations = [*result.cost_iterations.tolist(), result.iterations]
    costs = [*result.costs.tolist(), result.final_cost]
    ax.plot(iterations, costs, "o-", ms=3)
    ax.annotate(
        f"{result.final_cost:.4g}",
        (iterations[-1], costs[-1]),
        textcoords="offset points",
        xytext=(-4, 8),
        ha="right",
        fontsize=8,
    )
    ax.set_yscale("log")  # the first steps dominate a linear axis; the slow tail matters too
    ax.set_xlabel("iteration")
    ax.set_ylabel("cost J (mean cross-entropy)" + (" + L2" if result.l2_penalty else ""))
    ax.set_title(title, fontsize=9)
    ax.grid(True, alpha=0.3)
    return figure


def outer_loop(records: Sequence[TrainingRecord], machine: dict[str, Any]) -> Figure:
    """A panel per backend with a compiled loop: seconds per step against m, in the Python loop
    and in the compiled loop (95 % intervals), the Python loop's cost per step, and the m below
    which it takes more than half of a step."""
    series = outer_loop_series(records)
    if not series:
        raise ValueError("no backend was timed in both loops: nothing to draw")
    backends = list(series)
    columns = min(4, len(backends))
    rows = math.ceil(len(backends) / columns)
    figure = Figure(figsize=(4.2 * columns, 3.3 * rows + 1.0), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False, sharex=True).ravel()
    for ax in axes[len(backends) :]:
        ax.set_visible(False)
    for ax, backend in zip(axes, backends, strict=False):
        costs = series[backend]
        m = [c.python.m for c in costs]
        for label, style, steps in (
            ("Python loop", "o-", [c.python_step_s for c in costs]),
            ("compiled loop", "s--", [c.compiled_step_s for c in costs]),
        ):
            values = [e.value for e in steps]
            error = [[v - e.low for v, e in zip(values, steps, strict=True)],
                     [e.high - v for v, e in zip(values, steps, strict=True)]]  # fmt: skip
            ax.errorbar(m, values, yerr=error, fmt=style, ms=4, capsize=2, label=label)
        overhead = costs[0].overhead_s
        if overhead.value > 0:
            ax.axhline(overhead.value, color="grey", lw=1, ls=":", label="Python loop's cost")
        crossover = loop_crossover_m(costs)
        if crossover is not None:
            ax.axvline(crossover, color="grey", lw=1)
            ax.annotate(
                f"loop > half a step\nbelow m = {crossover:,.0f}",
                (crossover, 0.97), xycoords=("data", "axes fraction"),
                ha="left", va="top", fontsize=7, xytext=(3, 0), textcoords="offset points",
            )  # fmt: skip
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(f"{backend}: {loop_cost_words(overhead)}", fontsize=9)
        ax.set_xlabel("m (examples)")
        ax.grid(True, which="major", alpha=0.3)
    axes[0].set_ylabel("seconds per step (median)")
    handles, labels = axes[0].get_legend_handles_labels()
    if handles:
        figure.legend(handles, labels, loc="outside lower center", ncols=len(labels))
    n = next(iter(series.values()))[0].python.n
    figure.suptitle(
        f"The outer loop: a gradient-descent step, Python loop against compiled (n = {n})\n"
        + context(machine, records, max((r.threads for r in records), default=1))
    )
    return figure


#: Figures of the training benchmark, drawn when a run has training cells.
TRAINING_FIGURES: dict[str, Callable[[Sequence[TrainingRecord], dict[str, Any]], Figure]] = {
    "training_time": training_time,
}


def figures_for(
    records: Sequence[Record], training: Sequence[TrainingRecord], machine: dict[str, Any]
) -> dict[str, Figure]:
    """Every figure a run has, by file name (without .png): FIGURES if a cell in the course's
    layout was timed, `layout_effect` if a size was timed in both layouts, TRAINING_FIGURES if a
    training run was timed, `outer_loop` if a backend was timed in both loops, `peak_memory` if
    a cell's memory was measured."""
    drawn: dict[str, Figure] = {}
    course = in_course_layout(records)
    if any(r.timed for r in course):  # nothing timed: nothing to draw
        drawn |= {name: draw(course, machine) for name, draw in FIGURES.items()}
    if layout_ratios(records, max_threads(records)):
        drawn["layout_effect"] = layout_effect(records, machine)
    if any(r.timed and r.call_bytes is not None for r in course):
        drawn["peak_memory"] = peak_memory(course, machine)
    if any(r.timed for r in training):
        drawn |= {name: draw(training, machine) for name, draw in TRAINING_FIGURES.items()}
    if outer_loop_series(training):
        drawn["outer_loop"] = outer_loop(training, machine)
    return drawn
