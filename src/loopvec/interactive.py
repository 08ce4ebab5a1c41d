"""Records in, one self-contained HTML page out: every run explorable offline (`report.html`).

The page is Vega-Lite (specs built with Altair), with the Vega bundle and the data inlined, so it
opens from disk with no network. Every number in it is computed here, in Python, by the functions
that make the PNGs and REPORT.md (`analysis.ratio`, `analysis.winner`, `compare_runs`): the page
only filters and draws. Without JavaScript it still shows the headline and a table of every cell. No
file I/O here: the CLI writes the page.

Views: the speedup of any backend over any other, the winner of each cell, time against m with
the cost models, bandwidth, time against memory, threads, training, every cell; for two runs, B/A
per cell.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from functools import cache
from importlib import metadata
from importlib.resources import files
from typing import Any, Literal

import altair as alt
import jinja2
import numpy as np
from markupsafe import Markup
from matplotlib.colors import to_hex

from loopvec.analysis import at_threads, backends_in, fit_models, max_threads, ratio, winner
from loopvec.backends._jit import cache_root
from loopvec.compare import Comparison, expected_by_chance
from loopvec.formatting import (
    GB,
    format_bytes,
    format_memory,
    format_record_time,
    format_seconds,
    format_speedup,
    plugins_note,
)
from loopvec.plots import TIE_GREY, backend_color
from loopvec.report import METHOD, headline, provenance
from loopvec.results import AnyRecord, Record, ResultsWriteError, TrainingRecord, write_bytes_atomic
from loopvec.stats import DEFAULT_TIE_BAND, Estimate, verdict

#: The most bytes a page may have: it is one file, mailed and committed.
MAX_PAGE_BYTES = 3_000_000
#: Points per fitted cost-model line (log-spaced over the grid's m).
MODEL_POINTS = 13
#: A tie is neither blue nor red (`plots.TIE_GREY`).
TIE = to_hex(TIE_GREY)
#: `stats.verdict` of time(b) / time(a), in the words of "a over b".
_OVER = {"slower": "a faster", "faster": "b faster", "same": "tie"}

Row = dict[str, Any]
Chart = alt.TopLevelMixin

# -- the rows: every number of the page, from the records ----------------------------------------


def _interval(estimate: Estimate | None) -> str:
    """'[12.1 us, 12.9 us]': a time's 95 % interval."""
    if estimate is None:
        return ""
    return f"[{format_seconds(estimate.low)}, {format_seconds(estimate.high)}]"


def _round(value: float | None) -> float | None:
    """Six significant digits: all a reader can use, and a smaller page."""
    return None if value is None else float(f"{value:.6g}")


def _why(record: AnyRecord) -> str:
    """The skip or failure reason and the instability warnings of a record, in one line."""
    return "; ".join(filter(None, [record.reason, *record.unstable]))


def _measured(record: AnyRecord) -> Row:
    """What a tooltip says of any record's measurement: status, time, interval, rounds, why."""
    return {
        "status": record.status,
        "time": format_record_time(record),
        "median_s": _round(record.median_s),
        "low_s": _round(record.low_s),
        "high_s": _round(record.high_s),
        "interval": _interval(record.estimate),
        "rounds": record.rounds,
        "reason": _why(record),
    }


def cell_rows(records: Sequence[Record]) -> list[Row]:
    """One row per cell with every field its tooltip shows; `id` is its index (pairs point at
    it), `threaded` whether its backend has cells at more than one thread (`at_threads`)."""
    threaded = {r.backend for r in records if r.threads > 1}
    return [
        {
            "id": k,
            "backend": r.backend,
            "m": r.m,
            "n": r.n,
            "threads": r.threads,
            "dtype": r.dtype,
            "layout": r.layout,
            **_measured(r),
            "x_bytes": r.x_bytes,
            "gb_per_s": _round(r.x_bytes / r.median_s / GB) if r.timed and r.median_s else None,
            "peak_bytes": r.call_bytes,
            "memory": format_memory(r),
            "threaded": r.backend in threaded,
        }
        for k, r in enumerate(records)
    ]


def _views(records: Sequence[Record]) -> list[tuple[int, str, str]]:
    """Every (threads, dtype, layout) of a run: what a view of it is drawn at."""
    return sorted({(r.threads, r.dtype, r.layout) for r in records})


def pair_rows(records: Sequence[Record]) -> list[Row]:
    """For every view, size and ordered pair of backends a != b: how many times faster a is than
    b (time b / time a, `analysis.ratio`), or why there is no ratio; `ka`, `kb`: the two cells'
    ids in `cell_rows`, where the page looks their times up."""
    ids = {id(r): k for k, r in enumerate(records)}
    rows = []
    for threads, dtype, layout in _views(records):
        cells = at_threads(records, threads, dtype, layout)
        backends = backends_in(list(cells.values()))
        for m, n in sorted({(m, n) for (_, m, n) in cells}):
            for a, b in ((a, b) for a in backends for b in backends if a != b):
                mine, theirs = cells.get((a, m, n)), cells.get((b, m, n))
                if mine is None or theirs is None:
                    continue
                row = {"a": a, "b": b, "m": m, "n": n, "threads": threads, "dtype": dtype,
                       "layout": layout, "ka": ids[id(mine)], "kb": ids[id(theirs)]}  # fmt: skip
                speedup = ratio(theirs, mine)
                if speedup is None:
                    why = [f"{r.backend} {r.status}: {r.reason}" for r in (mine, theirs)
                           if not r.timed] or ["timed in different runs"]  # fmt: skip
                    row |= {"verdict": "no ratio", "text": "; ".join(why), "label": "-"}
                else:
                    text = format_speedup(speedup)  # '3.4x [3.1, 3.7]' or 'tie (1x [...])'
                    label = text.split(" [")[0].replace("tie (", "≈")
                    row |= {"speedup": _round(speedup.value), "verdict": _OVER[verdict(speedup)],
                            "text": text, "label": label}  # fmt: skip
                rows.append(row)
    return rows


def winner_rows(records: Sequence[Record]) -> list[Row]:
    """The winner of every cell of every view (`analysis.winner`): its margin, or the tied set."""
    rows = []
    for threads, dtype, layout in _views(records):
        cells = at_threads(records, threads, dtype, layout)
        for m, n in sorted({(m, n) for (_, m, n) in cells}):
            won = winner(cells, m, n)
            if won is not None:
                rows.append(
                    {
                        "m": m,
                        "n": n,
                        "threads": threads,
                        "dtype": dtype,
                        "layout": layout,
                        "winner": won.best.backend if won.decisive else "tie",
                        "label": won.best.backend if won.decisive else f"≈ {len(won.tied)}",
                        "who": won.label,
                        "time": format_record_time(won.best),
                        "margin": format_speedup(won.margin) if won.margin else "alone",
                    }
                )
    return rows


def model_rows(records: Sequence[Record]) -> list[Row]:
    """Each backend's fitted cost model (`analysis.fit_models`) at MODEL_POINTS values of m per n,
    for every thread count and dtype, in C order (where the grid fits them)."""
    course = [r for r in records if r.layout == "C"]
    if not course:
        return []
    m_line = np.geomspace(min(r.m for r in course), max(r.m for r in course), MODEL_POINTS)
    rows = []
    for threads, dtype in sorted({(t, d) for t, d, _ in _views(course)}):
        for backend, model in fit_models(course, threads, dtype).items():
            rows += [
                {"backend": backend, "m": _round(m), "n": n, "threads": threads, "dtype": dtype,
                 "predicted_s": _round(model.predict_s(m, n)), "model": model.describe()}
                for n in sorted({r.n for r in course})
                for m in map(float, m_line)
            ]  # fmt: skip
    return rows


def thread_rows(records: Sequence[Record]) -> list[Row]:
    """Speedup from 1 thread to the most (`analysis.ratio`), per backend and size timed at both."""
    most = max_threads(records)
    by_cell = {(r.backend, r.m, r.n, r.dtype, r.layout, r.threads): r for r in records}
    rows = []
    for (backend, m, n, dtype, layout, threads), one in by_cell.items():
        many = by_cell.get((backend, m, n, dtype, layout, most))
        speedup = ratio(one, many) if threads == 1 < most else None
        if speedup is not None:
            rows.append(
                {"backend": backend, "m": m, "n": n, "dtype": dtype, "layout": layout,
                 "speedup": _round(speedup.value), "low": _round(speedup.low),
                 "high": _round(speedup.high), "text": format_speedup(speedup), "most": most}
            )  # fmt: skip
    return rows


def training_rows(training: Sequence[TrainingRecord]) -> list[Row]:
    return [
        {
            "backend": r.backend,
            "loop": r.loop,
            "problem": f"{r.dataset}, m = {r.m:,}, n = {r.n:,}, {r.iterations:,} steps",
            "threads": r.threads,
            **_measured(r),
            "accuracy": _round(r.accuracy),
        }
        for r in training
    ]


def ceiling_rows(machine: dict[str, Any]) -> list[Row]:
    """The machine's measured read bandwidth per thread count."""
    return [
        {"threads": int(t), "gb_per_s": _round(v / GB), "label": f"{v / GB:.0f} GB/s at {t}"}
        for t, v in machine.get("read_bandwidth_bytes_per_s", {}).items()
    ]


def comparison_rows(comparisons: Sequence[Comparison]) -> list[Row]:
    """Each cell of two runs: both times and B/A with its interval and verdict (`compare_runs`)."""
    threaded = {c.a.backend for c in comparisons if c.a.threads > 1}
    return [
        {
            "cell": c.cell,
            "backend": c.a.backend,
            "m": c.a.m,
            "n": c.a.n,
            "threads": c.a.threads,
            "dtype": c.a.dtype if isinstance(c.a, Record) else "training",
            "layout": c.a.layout if isinstance(c.a, Record) else c.a.loop + " loop",
            "a_time": format_record_time(c.a),
            "b_time": format_record_time(c.b),
            "change": _round(c.ratio),
            "text": c.interval,
            "verdict": c.verdict,
            "code": "changed" if c.code_changed else "same",
            "threaded": c.a.backend in threaded,
        }
        for c in comparisons
    ]


# -- the charts: Vega-Lite through Altair, each reading the page's named datasets ---------------


@dataclass(frozen=True)
class Control:
    """A <select> of the page, bound to the chart's parameter of the same name."""

    name: str
    label: str
    options: list[Any]
    value: Any


def _choice(name: str, label: str, options: Sequence[Any], preferred: Sequence[Any]) -> Control:
    """A control starting at the first of `preferred` on offer, else at the first option."""
    value = next((p for p in preferred if p in options), options[0] if options else None)
    return Control(name, label, list(options), value)


def _params(controls: Iterable[Control]) -> list[alt.Parameter]:
    return [alt.param(name=c.name, value=c.value) for c in controls]


#: The cells of one view; with _AT_THREADS, a single-threaded backend's 1-thread cells appear at
#: any thread count, as in `analysis.at_threads`.
_SAME_VIEW = "datum.threads == threads && datum.dtype == dtype && datum.layout == layout"
_AT_THREADS = (
    "(datum.threads == threads || (datum.threads == 1 && !datum.threaded))"
    " && datum.dtype == dtype && datum.layout == layout"
)
_M = alt.X("m:O", title="m (examples)", axis=alt.Axis(labelAngle=0, format="~s"))
_N = alt.Y("n:O", title="n (features)", sort="descending")
_HEATMAP = {"width": alt.Step(105), "height": alt.Step(46)}
_LINES = {"width": 620, "height": 380}
_SI = alt.Axis(format="~s")  # seconds, bytes and rates with SI prefixes: 10µ, 1M, 100G
_LOG = alt.Scale(type="log")
_CELL_TIME = alt.LookupData(alt.NamedData(name="cells"), key="id", fields=["time"])
_SIZE = [
    alt.Tooltip("m:Q", format=","),
    alt.Tooltip("n:Q", format=","),
    alt.Tooltip("threads:Q"),
    alt.Tooltip("dtype:N"),
]
#: The fields of `_measured`.
_MEASURED = [
    alt.Tooltip("time:N", title="median ± 95 %"),
    alt.Tooltip("interval:N", title="95 % interval"),
    alt.Tooltip("rounds:Q"),
    alt.Tooltip("status:N"),
    alt.Tooltip("reason:N", title="reason or warning"),
]
_CELL = [alt.Tooltip("backend:N"), *_SIZE, alt.Tooltip("layout:N"), *_MEASURED]


def _ratio_scale(scheme: Literal["redblue", "blueorange"]) -> alt.Scale:
    """A log colour scale diverging at 1, full colour from 10x and 1/10x on (the label gives
    the number). Fixed, not fitted to the cells shown: the colours of two selections compare,
    and an empty selection (a = b) draws without a warning."""
    return alt.Scale(type="log", scheme=scheme, domain=[0.1, 10], clamp=True)


def _heatmap(
    base: alt.Chart, color: Any, tooltip: list[alt.Tooltip], label: Any, controls: Sequence[Control]
) -> Chart:
    """Cells of m (across) by n (up), coloured and labelled; the label carries the cell's
    tooltip too (it covers the cell's middle, where a pointer lands)."""
    base = base.encode(x=_M, y=_N, tooltip=tooltip)
    cells = base.mark_rect(stroke="white", invalid="show").encode(color=color)
    labels = base.mark_text(fontSize=10).encode(text=label)
    return alt.layer(cells, labels).add_params(*_params(controls)).properties(**_HEATMAP)


def speedup_chart(controls: Sequence[Control], scale: alt.Scale) -> Chart:
    """time b / time a per cell for the backends a and b the controls choose; ties grey."""
    base = (
        alt.Chart(alt.NamedData(name="pairs"))
        .transform_filter(f"datum.a == a && datum.b == b && {_SAME_VIEW}")
        .transform_lookup(lookup="ka", from_=_CELL_TIME, as_=["a_time"])
        .transform_lookup(lookup="kb", from_=_CELL_TIME, as_=["b_time"])
    )
    tooltip = [
        alt.Tooltip("a:N"),
        alt.Tooltip("b:N"),
        *_SIZE,
        alt.Tooltip("text:N", title="a over b (95 % interval)"),
        alt.Tooltip("verdict:N"),
        alt.Tooltip("a_time:N", title="a: median ± 95 %"),
        alt.Tooltip("b_time:N", title="b: median ± 95 %"),
    ]
    color = alt.condition(
        "datum.verdict == 'tie' || datum.verdict == 'no ratio'",
        alt.value(TIE),
        alt.Color("speedup:Q", title="a over b", scale=scale),
    )
    return _heatmap(base, color, tooltip, "label:N", controls)


def winners_chart(controls: Sequence[Control]) -> Chart:
    base = alt.Chart(alt.NamedData(name="winners")).transform_filter(_SAME_VIEW)
    tooltip = [
        alt.Tooltip("who:N", title="fastest"),
        *_SIZE,
        alt.Tooltip("time:N", title="median ± 95 %"),
        alt.Tooltip("margin:N", title="over the runner-up"),
    ]
    color = alt.condition(
        "datum.winner == 'tie'", alt.value(TIE), alt.Color("winner:N", title="fastest")
    )
    return _heatmap(base, color, tooltip, "label:N", controls)


def time_chart(controls: Sequence[Control]) -> Chart:
    """Times with their intervals against m, a panel per n, and the fitted cost models dashed.
    Cells and models share the dataset "time" (a facet needs one); a layer draws the rows its
    y holds. A legend click shows one backend."""
    shown = alt.selection_point(name="shown", fields=["backend"], bind="legend")
    base = alt.Chart().encode(
        x=alt.X("m:Q", title="m (examples)", scale=_LOG, axis=_SI),
        color=alt.Color("backend:N", title="backend (click to show one)"),
        opacity=alt.condition(shown, alt.value(1.0), alt.value(0.08)),
        detail="model:N",  # a line joins a backend's cells, or its model's points, never both
    )
    y = alt.Y("median_s:Q", title="time per gradient (s)", scale=_LOG, axis=_SI)
    points = base.mark_line(point=True).encode(y=y, tooltip=_CELL)
    bars = base.mark_rule().encode(y="low_s:Q", y2="high_s:Q")
    models = base.mark_line(strokeDash=[4, 3], strokeWidth=1).encode(
        y="predicted_s:Q", tooltip=["backend:N", alt.Tooltip("model:N", title="cost model")]
    )
    shown_here = (  # one filter for all layers: one per layer trips Vega-Lite's optimizer
        "isValid(datum.predicted_s) ? datum.threads == threads && datum.dtype == dtype"
        f" && layout == 'C' : datum.status == 'timed' && {_AT_THREADS}"
    )
    layers = alt.layer(points, bars, models).transform_filter(shown_here)
    panel = alt.layer(layers, data=alt.NamedData(name="time")).properties(width=420, height=300)
    chart: Chart = (
        panel.add_params(shown, *_params(controls))
        .facet(facet=alt.Facet("n:O", title="n (features)"), columns=2)
        .resolve_scale(y="independent")
    )
    return chart


def bandwidth_chart(controls: Sequence[Control]) -> Chart:
    """Bytes of X / time against bytes of X at one n, with the measured read bandwidth."""
    points = (
        alt.Chart(alt.NamedData(name="cells"))
        .transform_filter(f"datum.status == 'timed' && datum.n == n && {_AT_THREADS}")
        .mark_line(point=True)
        .encode(
            x=alt.X("x_bytes:Q", title="bytes of X", scale=_LOG, axis=_SI),
            y=alt.Y("gb_per_s:Q", title="bytes of X / time (GB/s)", scale=_LOG, axis=_SI),
            color=alt.Color("backend:N"),
            tooltip=[*_CELL, alt.Tooltip("gb_per_s:Q", title="GB/s", format=".3g")],
        )
    )
    ceiling = (
        alt.Chart(alt.NamedData(name="ceilings"))
        .transform_filter("datum.threads == threads")
        .mark_rule(strokeDash=[6, 4], color="black")
        .encode(y="gb_per_s:Q", tooltip=[alt.Tooltip("label:N", title="measured read")])
    )
    return alt.layer(points, ceiling).add_params(*_params(controls)).properties(**_LINES)


def memory_chart(controls: Sequence[Control]) -> Chart:
    """Time per gradient against peak bytes per call at one n, a point per size and a line per
    backend through its sizes in order of m: down and to the left is faster and leaner. A peak
    under 1 KiB is drawn at 1 KiB (a log axis has no 0)."""
    chart: Chart = (
        alt.Chart(alt.NamedData(name="cells"))
        .transform_filter(
            f"datum.status == 'timed' && isValid(datum.peak_bytes) && datum.n == n && {_AT_THREADS}"
        )
        .transform_calculate(drawn_bytes="max(datum.peak_bytes, 1024)")
        .mark_line(point=True)
        .encode(
            x=alt.X("median_s:Q", title="time per gradient (s)", scale=_LOG, axis=_SI),
            y=alt.Y("drawn_bytes:Q", title="peak bytes of one call", scale=_LOG, axis=_SI),
            order="m:Q",
            color=alt.Color("backend:N"),
            tooltip=[*_CELL, alt.Tooltip("memory:N", title="peak bytes of a call (x X)")],
        )
        .add_params(*_params(controls))
        .properties(**_LINES)
    )
    return chart


def threads_chart(controls: Sequence[Control]) -> Chart:
    """Speedup from 1 thread to all against m, per threaded backend; the ideal dashed."""
    base = alt.Chart(alt.NamedData(name="threads")).transform_filter(
        "datum.n == n && datum.dtype == dtype && datum.layout == layout"
    )
    x = alt.X("m:Q", title="m (examples)", scale=_LOG, axis=_SI)
    tooltip = [
        alt.Tooltip("backend:N"),
        alt.Tooltip("m:Q", format=","),
        alt.Tooltip("n:Q", format=","),
        alt.Tooltip("text:N", title="speedup (95 % interval)"),
        alt.Tooltip("most:Q", title="threads"),
    ]
    line = base.mark_line(point=True).encode(
        x=x, y=alt.Y("speedup:Q", title="speedup, 1 thread to all"), color="backend:N",
        tooltip=tooltip,
    )  # fmt: skip
    bars = base.mark_rule().encode(x=x, y="low:Q", y2="high:Q", color="backend:N")
    ideal = base.mark_rule(strokeDash=[6, 4], color="black").encode(y="max(most):Q")
    return alt.layer(line, bars, ideal).add_params(*_params(controls)).properties(**_LINES)


def training_chart(controls: Sequence[Control]) -> Chart:
    """Seconds per training run with its interval, per backend and outer loop, one problem."""
    base = alt.Chart(alt.NamedData(name="training")).transform_filter(
        "datum.problem == problem && datum.status == 'timed'"
    )
    y = alt.Y("backend:N", title=None, sort=None)
    tooltip = [
        alt.Tooltip("backend:N"),
        alt.Tooltip("loop:N"),
        alt.Tooltip("threads:Q"),
        *_MEASURED,
        alt.Tooltip("accuracy:Q", format=".4f"),
    ]
    points = base.mark_point(size=80, filled=True).encode(
        x=alt.X("median_s:Q", title="seconds per training run", scale=_LOG, axis=_SI),
        y=y, shape=alt.Shape("loop:N", title="outer loop"), color=alt.Color("loop:N"),
        tooltip=tooltip,
    )  # fmt: skip
    bars = base.mark_rule().encode(x="low_s:Q", x2="high_s:Q", y=y, color="loop:N")
    return alt.layer(points, bars).add_params(*_params(controls)).properties(**_LINES)


def comparison_chart(controls: Sequence[Control], scale: alt.Scale) -> Chart:
    """B/A per cell of one backend: blue faster in B, orange slower, grey the same."""
    base = alt.Chart(alt.NamedData(name="comparisons")).transform_filter(
        f"datum.backend == backend && {_AT_THREADS}"
    )
    tooltip = [
        alt.Tooltip("backend:N"),
        *_SIZE,
        alt.Tooltip("a_time:N", title="A"),
        alt.Tooltip("b_time:N", title="B"),
        alt.Tooltip("text:N", title="B / A (95 % interval)"),
        alt.Tooltip("verdict:N"),
        alt.Tooltip("code:N"),
    ]
    color = alt.condition(
        "datum.verdict == 'same'", alt.value(TIE), alt.Color("change:Q", title="B / A", scale=scale)
    )
    return _heatmap(base, color, tooltip, alt.Text("change:Q", format=".2f"), controls)


# -- the page ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class View:
    """One view of the page; `name` is its key in the URL's hash (#view=name&param=value...)."""

    name: str
    title: str
    sentence: str
    chart: Chart | None = None  # None: the view is HTML only (a table)
    controls: tuple[Control, ...] = ()


def _controls(records: Sequence[Record]) -> dict[str, Control]:
    """The selects every gradient view draws from: threads, dtype, layout, n."""
    views = _views(records)
    return {
        "threads": _choice("threads", "threads", sorted({t for t, _, _ in views}),
                           [max_threads(records)]),
        "dtype": _choice("dtype", "dtype", sorted({d for _, d, _ in views}), ["float64"]),
        "layout": _choice("layout", "layout of X", sorted({lay for _, _, lay in views}), ["C"]),
        "n": _choice("n", "n (features)", sorted({r.n for r in records}), [100]),
    }  # fmt: skip


def gradient_views(records: Sequence[Record], ceilings: Sequence[Row]) -> list[View]:
    """The views of one run's gradient cells (`ceilings`: the machine's `ceiling_rows`)."""
    if not any(r.timed for r in records):
        return []
    backends = backends_in(records)
    pick = _controls(records)
    same = (pick["threads"], pick["dtype"], pick["layout"])
    a = _choice("a", "backend a", backends, ["numba_fused", *backends])
    b = _choice("b", "over b", backends, ["numpy_vectorized", *backends[1:]])
    bandwidths = ", ".join(row["label"] for row in ceilings) or "not measured"
    at_n = (pick["n"], *same)
    return [
        View("speedup", "Speedup of a over b", "How many times faster a is than b in each cell "
             "(time b / time a, 95 % interval); grey: a tie, or no ratio (hover says why).",
             speedup_chart((a, b, *same), _ratio_scale("redblue")), (a, b, *same)),
        View("winners", "Fastest per cell", "The fastest backend of each cell with its margin "
             "over the runner-up; grey (≈ k): k backends tie for first (hover names them).",
             winners_chart(same), same),
        View("time", "Time against m", "Median time per gradient with its 95 % interval, one "
             "panel per n; dashed: each backend's fitted cost model. Click the legend to show "
             "one backend.", time_chart(same), same),
        View("bandwidth", "Bandwidth", "Bytes of X read per second against bytes of X; dashed: "
             f"the measured read bandwidth ({bandwidths} threads).", bandwidth_chart(at_n), at_n),
        *([View("memory", "Time and memory", "Time per gradient against the peak bytes one call "
                "allocates beyond its inputs, a point per m at one n: down and left is faster "
                "and leaner. Hover for the bytes as a multiple of X's.",
                memory_chart(at_n), at_n)] if any(r.call_bytes is not None for r in records)
          else []),
        View("threads", "Threads", "Speedup from 1 thread to all cores per threaded backend and "
             "size, with its 95 % interval; dashed: the ideal.",
             threads_chart((pick["n"], *same[1:])), (pick["n"], *same[1:])),
    ]  # fmt: skip


def training_views(rows: Sequence[Row]) -> list[View]:
    """The training view, if anything was trained (`rows`: `training_rows`)."""
    problems = list(dict.fromkeys(row["problem"] for row in rows if row["status"] == "timed"))
    if not problems:
        return []
    problem = _choice("problem", "problem", problems, problems)
    sentence = ("Seconds per whole training run with its 95 % interval, per backend, in the "
                "Python loop and the compiled loop.")  # fmt: skip
    return [View("training", "Training", sentence, training_chart([problem]), (problem,))]


def _spec(chart: Chart, backends: Sequence[str]) -> dict[str, Any]:
    """The chart's Vega-Lite, every backend in the colour it has in the PNGs."""
    spec: dict[str, Any] = chart.to_dict()
    spec.pop("$schema", None)  # an address: the page names nothing it does not carry
    colors = {
        "domain": list(backends),
        "range": [to_hex(backend_color(b, backends)) for b in backends],
    }

    def paint(node: Any) -> None:
        if isinstance(node, dict):
            color = node.get("color")
            if isinstance(color, dict) and color.get("field") in {"backend", "winner"}:
                color["scale"] = colors
            node = list(node.values())
        for child in node if isinstance(node, list) else ():
            paint(child)

    paint(spec)
    return spec


def _columns(rows: list[Row]) -> dict[str, list[Any]]:
    """Rows as columns (field -> values, None where a row lacks the field): a third the bytes."""
    fields = dict.fromkeys(key for row in rows for key in row)
    return {field: [row.get(field) for row in rows] for field in fields}


@cache
def vega_bundle() -> str:
    """Vega, Vega-Lite and vega-embed in one script, of the Vega-Lite version Altair writes:
    vl-convert's bundle, the one `altair.Chart.save(inline=True)` inlines. Kept in a file beside
    the compiled kernels, named by both versions: vl-convert takes 1.8 s to build it (a Zen 3),
    in every process that draws a page."""
    import vl_convert  # noqa: PLC0415 (a 900 kB string, built only for a page)

    version = "_".join(alt.SCHEMA_VERSION.split(".")[:2])  # v6.4.1 -> v6_4, as Altair asks
    built_by = f"vl-convert-{metadata.version('vl-convert-python')}"
    kept = cache_root() / "vega" / f"{built_by}-vega-lite-{version}.js"
    try:
        return kept.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        pass  # not built yet, or unreadable: built again
    bundle = vl_convert.javascript_bundle("window.vegaEmbed = vegaEmbed;", vl_version=version)
    with suppress(ResultsWriteError):  # a cache that cannot be written: built again next time
        write_bytes_atomic(kept, bundle.encode("utf-8"))
    return bundle


def _asset(name: str) -> str:
    return files("loopvec").joinpath("page", name).read_text(encoding="utf-8")


def _script_json(value: Any) -> Markup:
    """JSON to inline in a <script> element: "</" would end it, and JSON allows "<\\/"."""
    return Markup(json.dumps(value, separators=(",", ":"), allow_nan=False).replace("</", "<\\/"))


def _markdown_line(line: str) -> Markup:
    """One of the report's Markdown lines ('- **m = 10**: `numba_fused` ...') as HTML."""
    text = html.escape(line.removeprefix("- "))
    text = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", text)
    return Markup(re.sub(r"`(.+?)`", r"<code>\1</code>", text))


#: A table shown without JavaScript: its header, and rows of (text, sort key) cells.
Table = tuple[list[str], list[list[tuple[str, Any]]]]


def _page(
    title: str,
    lines: Sequence[str],
    views: Sequence[View],
    data: dict[str, list[Row]],
    table: Table,
) -> str:
    """The page: `lines` of the report's Markdown, the views, their data, and the table of every
    cell (the last view's, server-rendered)."""
    named = (row["backend"] for rows in data.values() for row in rows if "backend" in row)
    backends = list(dict.fromkeys(named))
    specs = {v.name: _spec(v.chart, backends) for v in views if v.chart is not None}
    template = jinja2.Environment(autoescape=True).from_string(_asset("report.html.j2"))
    return template.render(
        title=title,
        lines=[_markdown_line(line) for line in lines if line],
        views=views,
        table=table,
        data=_script_json({name: _columns(rows) for name, rows in data.items()}),
        specs=_script_json(specs),
        style=Markup(_asset("report.css")),
        script=Markup(_asset("report.js")),
        vega=Markup(vega_bundle().replace("</script", "<\\/script")),
    )


_CELL_HEADER = ["backend", "m", "n", "threads", "dtype", "layout", "status", "median ± 95 %",
                "95 % interval", "rounds", "compile", "peak bytes of a call",
                "reason or warning"]  # fmt: skip


def _cell_table(records: Sequence[AnyRecord]) -> Table:
    rows = []
    for r in records:
        layout = r.layout if isinstance(r, Record) else r.loop + " loop"
        dtype = r.dtype if isinstance(r, Record) else f"train {r.iterations:,} steps"
        compile_s = format_seconds(r.compile_s) if r.compile_s else ""
        peak = r.call_bytes if isinstance(r, Record) else r.peak_of("run")
        memory = format_memory(r) if isinstance(r, Record) else (
            f"{format_bytes(peak)} a run" if peak is not None else "")  # fmt: skip
        rows.append([
            (r.backend, r.backend), (f"{r.m:,}", r.m), (f"{r.n:,}", r.n),
            (str(r.threads), r.threads), (dtype, dtype), (layout, layout), (r.status, r.status),
            (format_record_time(r), r.median_s if r.median_s is not None else "untimed"),
            (_interval(r.estimate), r.low_s if r.low_s is not None else "untimed"),
            (str(r.rounds or ""), r.rounds or 0), (compile_s, r.compile_s or 0.0),
            (memory, peak if peak is not None else -1), (_why(r), _why(r)),
        ])  # fmt: skip
    return _CELL_HEADER, rows


def render_page(
    records: Sequence[Record], machine: dict[str, Any], training: Sequence[TrainingRecord] = ()
) -> str:
    """The interactive report of one machine's run (or runs)."""
    course = [r for r in records if r.layout == "C"]
    cells = at_threads(course, max_threads(course))
    intro = (
        f"{machine.get('cpu', '?')}, {machine.get('logical_cores', '?')} cores, host "
        f"`{machine.get('host', '?')}`. {METHOD}"
    )
    lines = [intro, *provenance([*records, *training])]
    if note := plugins_note([*records, *training]):  # plug-ins, marked as in the figures
        lines.append(f"Plug-ins, {note}: timed and checked as the others, never counted as ours.")
    timed = any(r.timed for r in cells.values())
    lines += headline(cells, {(m, n) for (_, m, n) in cells}) if timed else []
    data = {
        "cells": cell_rows(records),
        "pairs": pair_rows(records),
        "winners": winner_rows(records),
        "models": model_rows(records),
        "ceilings": ceiling_rows(machine),
        "threads": thread_rows(records),
        "training": training_rows(training),
    }
    views = [
        *gradient_views(records, data["ceilings"]),
        *training_views(data["training"]),
        View("cells", "Every cell", "Every cell of the run with its status and, for a skipped "
             "or failed cell, why. Click a column's head to sort."),
    ]  # fmt: skip
    return _page("loopvec report", lines, views, data, _cell_table([*records, *training]))


def render_comparison_page(
    a_label: str, b_label: str, comparisons: Sequence[Comparison], relative_to: str | None
) -> str:
    """Two runs side by side: each cell's time in both and B/A by the rules of `loopvec
    compare` (Welch's t over the passes; a change only beyond the tie band)."""
    counts = {v: sum(c.verdict == v for c in comparisons) for v in ("faster", "slower", "same")}
    relative = f", each time relative to {relative_to} in its own run" if relative_to else ""
    lines = [
        f"A: {a_label}", f"B: {b_label}",
        f"{len(comparisons)} cells compared{relative}: {counts['faster']} faster in B, "
        f"{counts['slower']} slower, {counts['same']} the same (within the "
        f"{DEFAULT_TIE_BAND:.0%} tie band or its interval); were nothing changed, at most "
        f"{expected_by_chance(len(comparisons)):.1f} would be called a change by chance.",
    ]  # fmt: skip
    if not relative_to and any(
        c.a.machine_fingerprint != c.b.machine_fingerprint for c in comparisons
    ):
        lines.append(
            "**A and B are different machine states**: B/A compares the machines, not only "
            "the code (`--relative-to BACKEND` compares their speedups instead)."
        )
    rows = comparison_rows(comparisons)
    views = []
    gradient = [c.a for c in comparisons if isinstance(c.a, Record)]
    if gradient:
        pick, backends = _controls(gradient), backends_in(gradient)
        backend = _choice("backend", "backend", backends, ["numba_fused", *backends])
        same = (backend, pick["threads"], pick["dtype"], pick["layout"])
        views.append(View("compare", "B against A", "B's time / A's time per cell with its 95 % "
                          "interval: blue faster in B, orange slower, grey the same.",
                          comparison_chart(same, _ratio_scale("blueorange")), same))  # fmt: skip
    views.append(View("cells", "Every cell", "Both runs' times and B/A; click a column's head "
                      "to sort."))  # fmt: skip
    table = [
        [(row["cell"], row["cell"]), (row["a_time"], c.a.median_s), (row["b_time"], c.b.median_s),
         (row["text"], row["change"]), (row["verdict"], row["verdict"]), (row["code"], row["code"])]
        for row, c in zip(rows, comparisons, strict=True)
    ]  # fmt: skip
    header = ["cell", "A", "B", "B / A [95 % interval]", "verdict", "code"]
    return _page("loopvec: two runs", lines, views, {"comparisons": rows}, (header, table))
