"""Records in, matplotlib Figures out: where each approach wins, at a glance. No file I/O here.

Every figure compares backends at one thread count. A backend that cannot use threads has only
threads = 1 cells; at a higher thread count it appears with those (it runs the same either way).
Times are the estimates of `loopvec.stats` (the geometric mean of the passes' medians). Speedup of
a backend over a baseline = baseline time / backend time, with its 95 % interval, and only between
cells of the same run (`ratio`): a report may merge runs, never their ratios. A speedup whose
interval does not clear the tie band is a tie, drawn neutral and written with "≈".
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import cache, partial
from typing import Any

import matplotlib as mpl
import numpy as np
from matplotlib.colors import BoundaryNorm, ListedColormap, Normalize
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from loopvec.backends import BACKENDS
from loopvec.grid import CostModel, fit_cost_model
from loopvec.results import AnyRecord, Record, TrainingRecord, shared_passes
from loopvec.stats import (
    DEFAULT_TIE_BAND,
    Estimate,
    difference_estimate,
    ratio_estimate,
    seed_of,
    verdict,
)
from loopvec.training import TrainResult

# The backends keep their colour in every figure: tab10 in registry order, then the dark tones of
# tab20b (a colour used twice would make two backends one line).
_PALETTE = [mpl.colormaps["tab10"](k) for k in range(10)] + [
    mpl.colormaps["tab20b"](k) for k in range(0, 20, 4)
]
#: A tie is neither blue nor red.
TIE_GREY = "0.85"
GB = 1e9

#: One thread count's view of a run: (backend, m, n) -> record (see `at_threads`).
Cells = dict[tuple[str, int, int], Record]


def backend_color(backend: str, backends: Sequence[str]) -> Any:
    return _PALETTE[list(backends).index(backend) % len(_PALETTE)]


def backends_in(records: Sequence[AnyRecord]) -> list[str]:
    """Backends in first-seen order (records come in registry order within a size)."""
    return list(dict.fromkeys(r.backend for r in records))


#: The memory order of X the course uses (a row per feature): every figure but `layout_effect`
#: compares backends in it.
COURSE_LAYOUT = "C"


def in_course_layout(records: Sequence[Record]) -> list[Record]:
    return [r for r in records if r.layout == COURSE_LAYOUT]


def at_threads(
    records: Sequence[Record], threads: int, dtype: str = "float64", layout: str = COURSE_LAYOUT
) -> Cells:
    """(backend, m, n) -> the record in `dtype` and `layout` at `threads`, or at 1 thread for
    single-threaded backends. Figures compare float64 (the course's arithmetic) in the course's
    layout unless they say otherwise."""
    threaded = {r.backend for r in records if r.threads > 1}
    return {
        (r.backend, r.m, r.n): r
        for r in records
        if r.dtype == dtype
        and r.layout == layout
        and (r.threads == threads or (r.threads == 1 and r.backend not in threaded))
    }


def max_threads(records: Sequence[Record]) -> int:
    return max((r.threads for r in records), default=1)


def fit_models(
    records: Sequence[Record], threads: int, dtype: str = "float64"
) -> dict[str, CostModel]:
    """Each backend's cost model at `threads`, fitted to its timed cells (as the grid does)."""
    cells = at_threads(records, threads, dtype)
    models = {}
    for backend in backends_in(records):
        timed = [r for (b, _, _), r in cells.items() if b == backend and r.timed]
        model = fit_cost_model(
            [r.m for r in timed], [r.n for r in timed], [r.median_s or 0.0 for r in timed]
        )
        if model is not None:
            models[backend] = model
    return models


def run_date(records: Sequence[AnyRecord]) -> str:
    """The day the run finished (its last cell), as YYYY-MM-DD; '' for records without one."""
    return max((r.finished_at for r in records), default="")[:10]


def middle_n(n_values: Sequence[int]) -> int:
    """The n of single-n views: 100 (the issues' reference size) if present, else the largest."""
    return 100 if 100 in n_values else max(n_values)


def ratio(slow: AnyRecord | None, fast: AnyRecord | None) -> Estimate | None:
    """time(slow) / time(fast) (how many times faster `fast` is) with its 95 % interval, or None
    unless both were timed in the same run: a ratio across runs (another session, perhaps other
    code) is not a measured speedup. Cells of one problem and thread count were timed side by
    side, block by block, and are paired so (`stats.ratio_estimate`)."""
    if slow is None or fast is None or not (slow.timed and fast.timed) or slow.run != fast.run:
        return None
    if slow.backend == fast.backend and slow.code_fingerprint != fast.code_fingerprint:
        return None  # thread scaling or float32 against float64 of two versions of a kernel
    return _ratio(slow, fast)


@cache
def _ratio(slow: AnyRecord, fast: AnyRecord) -> Estimate | None:
    a, b, paired = shared_passes(slow, fast)
    if not a:
        return None
    return ratio_estimate(a, b, paired=paired, seed=seed_of(slow.run, slow.cell, fast.cell))


def predicted_ratio(skipped: AnyRecord | None, fast: AnyRecord | None) -> float | None:
    """A skipped cell's predicted time / a timed cell's time, within one run, or None."""
    if skipped is None or fast is None or not fast.timed or skipped.run != fast.run:
        return None
    return skipped.predicted_s / (fast.median_s or 1.0) if skipped.predicted_s else None


def ranked(cells: Cells, m: int, n: int) -> list[Record]:
    """The timed records at (m, n), fastest first; none where they come from several runs
    (which is fastest would be a comparison across runs)."""
    timed = [r for (_, mm, nn), r in cells.items() if (mm, nn) == (m, n) and r.timed]
    if len({r.run for r in timed}) > 1:
        return []
    return sorted(timed, key=lambda r: r.median_s or 0.0)


@dataclass(frozen=True)
class Winner:
    """The fastest backend of a cell, or the backends it ties with."""

    tied: tuple[Record, ...]  #: the fastest first, then every backend not decisively slower
    margin: Estimate | None  #: runner-up time / fastest time; None with one backend alone

    @property
    def best(self) -> Record:
        return self.tied[0]

    @property
    def decisive(self) -> bool:
        return len(self.tied) == 1

    @property
    def label(self) -> str:
        """'numba_fused', or 'numba_fused ≈ numpy_vectorized' for a tie."""
        return " ≈ ".join(r.backend for r in self.tied)


def winner(cells: Cells, m: int, n: int, tie_band: float = DEFAULT_TIE_BAND) -> Winner | None:
    """Who is fastest at (m, n): a backend whose lead over every other clears the tie band with
    its whole interval, else the set of backends that tie for first; None if nothing was timed
    there in one run."""
    order = ranked(cells, m, n)
    if not order:
        return None
    best, others = order[0], order[1:]
    margins = [ratio(other, best) for other in others]
    tied = [
        o for o, e in zip(others, margins, strict=True) if e and verdict(e, tie_band) != "slower"
    ]
    return Winner((best, *tied), margins[0] if margins else None)


def fastest(cells: Cells, m: int, n: int) -> Record | None:
    """The timed record with the smallest time at (m, n), or None (see `ranked`); whether it
    wins or ties, `winner` says."""
    return next(iter(ranked(cells, m, n)), None)


def format_estimate(estimate: Estimate) -> str:
    """'2.0x [1.9, 2.1]': a ratio and its 95 % interval."""
    low, high = format_ratio(estimate.low)[:-1], format_ratio(estimate.high)[:-1]
    return f"{format_ratio(estimate.value)} [{low}, {high}]"


def format_speedup(estimate: Estimate, tie_band: float = DEFAULT_TIE_BAND) -> str:
    """'2.0x [1.9, 2.1]', or 'tie (1.01x [0.99, 1.03])' where the interval allows one."""
    text = format_estimate(estimate)
    return text if verdict(estimate, tie_band) != "same" else f"tie ({text})"


def thread_speedups(records: Sequence[Record]) -> dict[str, tuple[Estimate, int, int]]:
    """backend -> (time at 1 thread / time at the most threads, m, n) at the largest float64
    size timed both ways; threaded backends only."""
    most = max_threads(records)
    by_cell = {
        (r.backend, r.m, r.n, r.threads): r for r in records if r.timed and r.dtype == "float64"
    }
    speedups = {}
    for backend in backends_in(records):
        both = [
            (m * n, m, n)
            for (b, m, n, t) in by_cell
            if b == backend and t == 1 and most > 1 and (b, m, n, most) in by_cell
        ]
        if both:
            _, m, n = max(both)
            speedup = ratio(by_cell[(backend, m, n, 1)], by_cell[(backend, m, n, most)])
            if speedup is not None:
                speedups[backend] = (speedup, m, n)
    return speedups


def context(machine: dict[str, Any], records: Sequence[AnyRecord], threads: int | None) -> str:
    """'AMD EPYC, 2 cores, 2 threads, 2026-11-28': what every title says."""
    date = run_date(records)
    parts = [machine.get("cpu", "unknown CPU"), f"{machine.get('logical_cores', '?')} cores"]
    if threads is not None:
        parts.append(f"{threads} thread{'s' if threads > 1 else ''}")
    return ", ".join([*parts, date] if date else parts)


def format_ratio(ratio: float) -> str:
    """12x, 3.4x, 0.52x: two significant digits, never scientific."""
    if ratio >= 10:
        return f"{ratio:.0f}x"
    return f"{ratio:.2g}x"


def format_seconds(seconds: float) -> str:
    """A time with a unit a reader knows: 850 ns, 12 us, 3.4 ms, 1.2 s."""
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def size_label(value: int) -> str:
    """1, 10, 100, then powers of ten as 10^3 ... (any other value as written)."""
    exponent = math.log10(value)
    if value >= 1000 and exponent == int(exponent):
        return f"$10^{{{int(exponent)}}}$"
    return f"{value:,}"


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


def crossover_m(cells: Cells, fast: str, slow: str, n: int) -> tuple[str, float | None]:
    """From which m on `fast` beats `slow` at n: ("from", m), ("always", None), ("never", None).

    The m is interpolated geometrically where log(time ratio) crosses zero, after the last m at
    which `fast` still lost; ("unknown", None) where they share fewer than one timed m.
    """
    speedups = sorted(
        (m, ratio(cells.get((slow, m, n)), record))
        for (b, m, nn), record in cells.items()
        if b == fast and nn == n
    )
    log_ratio = [(m, math.log(r.value)) for m, r in speedups if r is not None]  # > 0: fast wins
    if not log_ratio:
        return ("unknown", None)
    losing = [k for k, (_, r) in enumerate(log_ratio) if r <= 0]
    if not losing:
        return ("always", None)
    last = losing[-1]
    if last == len(log_ratio) - 1:
        return ("never", None)
    (m0, r0), (m1, r1) = log_ratio[last], log_ratio[last + 1]
    fraction = -r0 / (r1 - r0)
    return ("from", math.exp(math.log(m0) + fraction * (math.log(m1) - math.log(m0))))


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


def layout_ratios(records: Sequence[Record], threads: int) -> dict[tuple[str, int, int], Estimate]:
    """(backend, m, n) -> time in Fortran order / time in C order, float64 at `threads` (below 1:
    Fortran order is faster), for every size timed in both layouts in one run."""
    fortran, course = at_threads(records, threads, layout="F"), at_threads(records, threads)
    return {
        key: estimate
        for key, record in fortran.items()
        if (estimate := ratio(record, course.get(key))) is not None
    }


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


def is_framework(backend: str) -> bool:
    spec = BACKENDS.get(backend)
    return spec is not None and spec.family == "framework"


def ours_and_theirs(cells: Cells, m: int, n: int) -> tuple[Record | None, Record | None]:
    """The fastest loopvec backend and the fastest framework backend at (m, n)."""
    ours = fastest({k: r for k, r in cells.items() if not is_framework(k[0])}, m, n)
    theirs = fastest({k: r for k, r in cells.items() if is_framework(k[0])}, m, n)
    return ours, theirs


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


#: (dataset, m, n, iterations) of a training record, and that view of a run's training cells.
TrainingProblem = tuple[str, int, int, int]
TrainingCells = dict[tuple[TrainingProblem, str], TrainingRecord]


def training_view(records: Sequence[TrainingRecord], loop: str = "python") -> TrainingCells:
    """(problem, backend) -> its record in `loop` at the most threads (or 1 for single-threaded
    ones)."""
    most = max((r.threads for r in records), default=1)
    threaded = {r.backend for r in records if r.threads > 1}
    return {
        (r.problem, r.backend): r
        for r in records
        if r.loop == loop and (r.threads == most or (r.threads == 1 and r.backend not in threaded))
    }


def training_speedup(mine: TrainingRecord | None, loops: TrainingRecord | None) -> str:
    """'7000x [6900, 7100]': loops' time / mine, '~7000x' against the loops' predicted time, or
    '' (also across runs: see `ratio`)."""
    if (measured := ratio(loops, mine)) is not None:
        return format_speedup(measured)
    predicted = predicted_ratio(loops, mine) if loops and not loops.timed else None
    return f"~{format_ratio(predicted)}" if predicted is not None else ""


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


@dataclass(frozen=True)
class LoopCost:
    """One problem and backend trained in both loops, in one run: the time of a step in each,
    the Python loop's cost per step (its time minus the compiled loop's) and their ratio."""

    python: TrainingRecord
    compiled: TrainingRecord
    python_step_s: Estimate
    compiled_step_s: Estimate
    overhead_s: Estimate  #: per step; the interval may reach below 0 where it is lost in noise
    speedup: Estimate  #: Python loop's time / compiled loop's

    @property
    def problem(self) -> TrainingProblem:
        return self.python.problem


def loop_costs(records: Sequence[TrainingRecord]) -> list[LoopCost]:
    """Every (problem, backend) timed in both loops in one run, at the most threads it ran at."""
    compiled = training_view(records, "compiled")
    costs = []
    for key, python in training_view(records).items():
        other = compiled.get(key)
        speedup = ratio(python, other)
        if other is None or speedup is None or python.median_s is None:
            continue
        a, b, _ = shared_passes(python, other)
        steps = python.iterations
        costs.append(
            LoopCost(
                python=python,
                compiled=other,
                python_step_s=_time_of(python).scaled(1 / steps),
                compiled_step_s=_time_of(other).scaled(1 / steps),
                overhead_s=difference_estimate(a, b).scaled(1 / steps),
                speedup=speedup,
            )
        )
    return costs


def _time_of(record: AnyRecord) -> Estimate:
    return Estimate(record.median_s or 0.0, record.low_s or 0.0, record.high_s or 0.0)


def loop_crossover_m(costs: Sequence[LoopCost]) -> float | None:
    """The m below which the Python loop takes more than half of a step: where the compiled
    step's time reaches the loop's cost per step (measured at the smallest m, where it is
    resolved best), interpolated on log-log scale between the sizes measured; `costs` are one
    backend's on problems of one n. None if it is not crossed within the sizes measured (the
    caller says which side), or the loop's cost is not above zero."""
    points = sorted((c.python.m, c.compiled_step_s.value) for c in costs)
    overhead_s = min(costs, key=lambda c: c.python.m).overhead_s.value if costs else 0.0
    if overhead_s <= 0:
        return None
    for (m0, t0), (m1, t1) in itertools.pairwise(points):
        if t0 < overhead_s <= t1:
            share = math.log(overhead_s / t0) / math.log(t1 / t0)
            return float(math.exp(math.log(m0) + share * math.log(m1 / m0)))
    return None


def outer_loop_series(records: Sequence[TrainingRecord]) -> dict[str, list[LoopCost]]:
    """backend -> its LoopCosts on the synthetic problems of the most common n, by m: the
    sizes of the outer-loop figure."""
    costs = [c for c in loop_costs(records) if c.python.dataset == "synthetic"]
    if not costs:
        return {}
    n = max((c.python.n for c in costs), key=[c.python.n for c in costs].count)
    series: dict[str, list[LoopCost]] = {}
    for cost in sorted(costs, key=lambda c: c.python.m):
        if cost.python.n == n:
            series.setdefault(cost.python.backend, []).append(cost)
    return series


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


def loop_cost_words(overhead_s: Estimate) -> str:
    """'Python loop costs 2.7 us a step', or that the compiled loop is slower (the interval
    wholly below zero), or '... about 0 ...' where the interval holds zero."""
    if overhead_s.high < 0:
        return f"compiled loop {format_seconds(-overhead_s.value)} slower a step"
    if overhead_s.low <= 0:
        return f"Python loop costs about 0 ({format_signed_seconds(overhead_s.value)}) a step"
    return f"Python loop costs {format_seconds(overhead_s.value)} a step"


def format_signed_seconds(seconds: float) -> str:
    """format_seconds with a minus sign where the time is negative (a difference)."""
    return ("-" if seconds < 0 else "") + format_seconds(abs(seconds))


#: Figures of the training benchmark, drawn when a run has training cells.
TRAINING_FIGURES: dict[str, Callable[[Sequence[TrainingRecord], dict[str, Any]], Figure]] = {
    "training_time": training_time,
}
