"""Records in, Markdown out: the headline, the tables, the figures with what to see in each.

No file I/O here: the CLI renders the figures, writes them and passes their relative paths in.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from loopvec.agreement import REFERENCE, RTOL_TRAINING
from loopvec.analysis import (
    Cells,
    at_threads,
    backends_in,
    crossover_m,
    fit_models,
    in_course_layout,
    is_framework,
    layout_ratios,
    loop_costs,
    loop_crossover_m,
    max_threads,
    middle_n,
    ours_and_theirs,
    outer_loop_series,
    predicted_ratio,
    ratio,
    run_date,
    thread_speedups,
    training_view,
    winner,
)
from loopvec.formatting import (
    format_bytes,
    format_estimate,
    format_memory,
    format_ratio,
    format_record_time,
    format_seconds,
    format_signed_seconds,
    format_speedup,
    plugins_note,
    training_speedup,
)
from loopvec.results import AnyRecord, Record, TrainingRecord
from loopvec.stats import DEFAULT_TIE_BAND, Estimate, verdict
from loopvec.tuning import describe, from_json

#: Sizes the headline names, where the grid has them: overhead-bound, middle, bandwidth-bound.
HEADLINE_SIZES = ((10, 10), (1000, 100), (1_000_000, 100))
LOOPS = "python_loops"
METHOD = (
    "Each cell was timed in several passes, each a separate process; a time is the geometric "
    "mean of the passes' medians, ± the half-width of its 95 % interval (Student's t over the "
    "passes). A speedup is a ratio of times with its 95 % interval, paired block by block where "
    f"two backends were timed side by side; a lead within {DEFAULT_TIE_BAND:.0%} (or whose "
    "interval reaches into that band) is a tie, written ≈."
)


def run_tags(records: Sequence[AnyRecord]) -> dict[str, str]:
    """run -> '[1]', '[2]', ... in order of appearance where records of several runs merge;
    empty for one run (nothing to tell apart)."""
    runs = list(dict.fromkeys(r.run for r in records))
    return {run: f"[{k}]" for k, run in enumerate(runs, 1)} if len(runs) > 1 else {}


def _commits(records: Sequence[AnyRecord]) -> str:
    """'commit `e48df10`', with how many cells came from a checkout with uncommitted changes."""
    commits = sorted({r.git_commit[:7] for r in records if r.git_commit})
    dirty = sum(1 for r in records if r.git_dirty)
    text = f"commit{'s' if len(commits) > 1 else ''} " + ", ".join(f"`{c}`" for c in commits)
    text = text if commits else "no git commit (not run from a checkout)"
    return text + (f", {dirty} cells with uncommitted changes" if dirty else "")


def provenance(records: Sequence[AnyRecord]) -> list[str]:
    """Where the numbers come from: the run and its code, or, where several runs merge, each
    run with the tag its cells carry and a warning; backends timed at several code versions."""
    tags = run_tags(records)
    if not tags:
        run = records[0].run if records else "?"
        lines = [f"Run `{run}`, code of {_commits(records)}."]
    else:
        lines = [
            f"**This report merges {len(tags)} runs.** Each time carries its run's tag, and no "
            "ratio is formed between cells of different runs: it would not be a measured speedup.",
            "",
            *_table(
                ["tag", "run", "code", "cells"],
                [
                    [tag, f"`{run}`", _commits(mine), str(len(mine))]
                    for run, tag in tags.items()
                    if (mine := [r for r in records if r.run == run])
                ],
            ),
        ]
    lines += kernel_plan_lines(records)
    # A training cell's code is its backend's and the training loop's: compared apart.
    for kind, backend in dict.fromkeys((type(r), r.backend) for r in records):
        versions = sorted(
            {r.code_fingerprint for r in records if (type(r), r.backend) == (kind, backend)}
        )
        if len(versions) > 1:
            what = "training runs" if kind is TrainingRecord else "cells"
            lines += [
                "",
                f"**`{backend}` was timed at {len(versions)} versions of its code** "
                f"(fingerprints {', '.join(versions)}): its {what} are not one kernel's.",
            ]
    return lines


def plan_phrase(record: dict[str, Any]) -> str:
    """A recorded plan (`tuning.PlanState.as_json`, as a cell keeps it) in words: 'C order 512
    KiB blocks; ..., measured on this machine 2026-12-05 in 32.2 s', or today's constants."""
    text = describe(from_json(record["plan"]))
    if record.get("source") == "default":
        return f"today's constants, {text} ({record.get('note', 'no plan')})"
    return (
        f"{text}, measured on this machine {record['measured_at'][:10]} "
        f"in {record['measure_s']:.1f} s"
    )


def kernel_plan_lines(records: Sequence[AnyRecord]) -> list[str]:
    """Which kernel plan (`loopvec.tuning`) the blocked kernels' cells ran with, a line each."""
    backends_of: dict[str, dict[str, None]] = {}
    for record in records:
        if record.kernel_plan is not None:
            backends_of.setdefault(plan_phrase(record.kernel_plan), {})[record.backend] = None
    if not backends_of:
        return []
    return [
        "",
        *(
            f"Kernel plan of {', '.join(f'`{b}`' for b in backends)}: {text}."
            for text, backends in backends_of.items()
        ),
    ]


def _speedup(cells: Cells, backend: str, baseline: str, m: int, n: int) -> str:
    """'12x [11, 13]' (a tie says so), or '~12x' against a skipped baseline's predicted time,
    or '' if unknown."""
    mine, base = cells.get((backend, m, n)), cells.get((baseline, m, n))
    if (measured := ratio(base, mine)) is not None:
        return format_speedup(measured)
    predicted = predicted_ratio(base, mine) if base and not base.timed else None
    return f"~{format_ratio(predicted)}" if predicted is not None else ""


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def _column_name(record: Record, threaded: set[str]) -> str:
    """'numba_parallel (2t) f32': threads for threaded backends, f32 for float32 cells."""
    threads = f" ({record.threads}t)" if record.backend in threaded else ""
    return record.backend + threads + (" f32" if record.dtype == "float32" else "")


def _named(record: Record) -> str:
    """'`numba_fused`', or '`mine` (a plug-in)' for a backend that is not loopvec's own."""
    return f"`{record.backend}`" + (" (a plug-in)" if record.origin != "loopvec" else "")


def headline(cells: Cells, sizes: set[tuple[int, int]]) -> list[str]:
    lines = []
    for m, n in [s for s in HEADLINE_SIZES if s in sizes] or [max(sizes)]:
        won = winner(cells, m, n)
        if won is None:
            continue
        best = won.best
        versus = [
            f"{_speedup(cells, best.backend, other, m, n)} faster than {other}"
            for other in (LOOPS, REFERENCE)
            if other not in {r.backend for r in won.tied}
            and _speedup(cells, best.backend, other, m, n)
        ]
        who = (
            f"fastest is {_named(best)} (by {format_estimate(won.margin)})"
            if won.decisive and won.margin
            else f"fastest is {_named(best)}"
            if won.decisive
            else "a tie for fastest: " + " ≈ ".join(_named(r) for r in won.tied)
        )
        lines.append(
            f"- **m = {m:,}, n = {n:,}**: {who}, {format_record_time(best)} per gradient"
            + (f"; {' and '.join(versus)}" if versus else "")
            + "."
        )
    return lines or ["- No size has all its cells from one run: no fastest backend is named."]


def figure_sentences(records: Sequence[Record], machine: dict[str, Any]) -> dict[str, str]:
    """One sentence per figure saying what to see in it, computed from the records."""
    threads = max_threads(records)
    cells = at_threads(records, threads)
    sizes = {(m, n) for (_, m, n) in cells}
    sentences = {}

    ratios = [
        (speedup, r)
        for (b, m, n), r in cells.items()
        if b != LOOPS and (speedup := ratio(cells.get((LOOPS, m, n)), r)) is not None
    ]
    if ratios:
        top, record = max(ratios, key=lambda pair: pair[0].value)
        sentences["speedup_vs_python_loops"] = (
            f"Blue is faster than the plain loops; the largest measured speedup is "
            f"{format_estimate(top)} (`{record.backend}` at m = {record.m:,}, n = {record.n:,}); "
            f"hatched cells were skipped, with their predicted time."
        )

    wins = [won for m, n in sorted(sizes) if (won := winner(cells, m, n)) is not None]
    beaten = [won.best.backend for won in wins if won.decisive and won.best.backend != REFERENCE]
    ties = [won for won in wins if not won.decisive]
    winners = Counter(beaten)
    named = ", ".join(f"`{b}` at {k}" for b, k in winners.most_common())
    sentences["speedup_vs_numpy_vectorized"] = (
        f"Blue cells are where a backend beats `{REFERENCE}`, grey cells (≈) are ties: another "
        f"backend is decisively fastest at {len(beaten)} of {len(sizes)} sizes"
        + (f" ({named})" if beaten else "")
        + f", {len(ties)} sizes are a tie for fastest; red cells show how much slower the loops"
        " are."
    )

    models = fit_models(records, threads)
    if models:
        overheads = ", ".join(
            f"`{b}` {format_seconds(model.overhead_s)}" for b, model in models.items()
        )
        sentences["runtime_vs_m"] = (
            f"Each curve is flat while the fixed cost of a call dominates ({overheads}) and "
            f"turns into a straight line of slope 1 once the work per example and per element "
            f"does; the dashed lines are the fitted cost models."
        )

    n_mid = middle_n(sorted({n for _, n in sizes}))
    crossings = []
    for other in backends_in(records):
        if other == REFERENCE:
            continue
        kind, m = crossover_m(cells, REFERENCE, other, n_mid)
        if kind == "from" and m is not None:
            crossings.append(f"`{other}` from m ~ {m:,.0f}")
        elif kind in ("always", "never"):
            crossings.append(f"`{other}` {'at every m' if kind == 'always' else 'at no m'}")
    sentences["crossover"] = "The colour of a cell is its fastest backend, grey a tie" + (
        f"; at n = {n_mid}, `{REFERENCE}` beats " + ", ".join(crossings) + "." if crossings else "."
    )

    ceiling = machine.get("read_bandwidth_bytes_per_s", {}).get(str(threads))
    at_n = [r for (_, _, n), r in cells.items() if n == n_mid and r.timed and r.estimate]
    if ceiling and at_n:
        best = max(at_n, key=lambda r: r.x_bytes / (r.median_s or 1))
        biggest = max(r.x_bytes for r in at_n)
        largest_best = min(
            (r for r in at_n if r.x_bytes == biggest), key=lambda r: r.median_s or 0.0
        )
        sentences["effective_bandwidth"] = (
            f"The dashed line is the measured read bandwidth ({ceiling / 1e9:.0f} GB/s at "
            f"{threads} threads). At n = {n_mid} the best rate is {_rate(best, ceiling)} "
            f"(`{best.backend}`, {best.x_bytes / 1e6:,.0f} MB; above 100 % means X came from "
            f"cache); at the largest size, {largest_best.x_bytes / 1e9:.1f} GB from memory, it "
            f"is {_rate(largest_best, ceiling)} (`{largest_best.backend}`)."
        )

    scaling = [
        f"`{backend}` {format_speedup(speedup)} at m = {m:,}, n = {n:,}"
        for backend, (speedup, m, n) in thread_speedups(records).items()
    ]
    if scaling:
        sentences["thread_scaling"] = (
            f"From 1 to {threads} threads: " + "; ".join(scaling) + f" (ideal: {threads}x)."
        )
    sentences["loopvec_vs_frameworks"] = _frameworks_sentence(records, cells, sizes)
    return sentences


def _rate(record: Record, ceiling: float) -> str:
    """'41 GB/s, 82 % [80, 84] of the ceiling': bytes of X per second with its interval."""
    estimate = record.estimate
    assert estimate is not None
    share = estimate.inverse().scaled(record.x_bytes / ceiling)
    return (
        f"{share.value * ceiling / 1e9:.0f} GB/s, {share.value:.0%} "
        f"[{share.low:.0%}, {share.high:.0%}] of it"
    )


def _frameworks_sentence(
    records: Sequence[Record], cells: Cells, sizes: set[tuple[int, int]]
) -> str:
    """Where the fastest framework beats the fastest loopvec backend, decisively, and where the
    two tie."""
    peers = [b for b in backends_in(records) if is_framework(b)]
    if not peers:
        return (
            "No framework backend was timed in this run (`nox -s peers` installs and times them)."
        )
    behind, ties = [], 0
    for m, n in sorted(sizes):
        ours, theirs = ours_and_theirs(cells, m, n)
        lead = ratio(theirs, ours)
        if ours is None or theirs is None or lead is None:
            continue
        if verdict(lead) == "faster":
            behind.append(
                f"(m = {m:,}, n = {n:,}): `{theirs.backend}` {format_estimate(lead.inverse())} "
                f"ahead of `{ours.backend}`"
            )
        ties += verdict(lead) == "same"
    where = f"loopvec is behind at {'; '.join(behind)}" if behind else "loopvec is never behind"
    return (
        "Blue cells are where the fastest loopvec backend beats the fastest framework ("
        + ", ".join(f"`{p}`" for p in peers)
        + f"), grey cells are ties ({ties}); {where}."
    )


def training_sentence(training: Sequence[TrainingRecord]) -> str:
    """What to see in the training figure: per problem, the slowest and fastest whole run."""
    view = training_view(training)
    parts = []
    for problem in dict.fromkeys(r.problem for r in training):
        timed = [r for (p, _), r in view.items() if p == problem and r.timed and r.median_s]
        if not timed:
            continue
        fast = min(timed, key=lambda r: r.median_s or 0.0)
        slow = max(timed, key=lambda r: r.median_s or 0.0)
        speedup = training_speedup(fast, view.get((problem, LOOPS)))
        dataset, m, n, iterations = problem
        parts.append(
            f"on {dataset} ({iterations:,} iterations, m = {m:,}, n = {n:,}) a run takes "
            f"{format_seconds(slow.median_s or 0.0)} with `{slow.backend}` and "
            f"{format_seconds(fast.median_s or 0.0)} with `{fast.backend}`"
            + (f", {speedup} faster than `{LOOPS}`" if speedup else "")
        )
    if not parts:
        return "No training run was timed."
    return (
        "Each bar is a whole run of gradient descent: "
        + "; ".join(parts)
        + f". Every backend's learned w, b and cost curve matched {REFERENCE}'s to rtol "
        f"{RTOL_TRAINING:g} before it was timed."
    )


def _step_time(estimate: Estimate) -> str:
    """'12.3 us [11.9, 12.8]': seconds per step with its 95 % interval."""
    low, high = format_signed_seconds(estimate.low), format_signed_seconds(estimate.high)
    return f"{format_signed_seconds(estimate.value)} [{low}, {high}]"


def outer_loop_sentence(training: Sequence[TrainingRecord]) -> str:
    """What the outer-loop figure shows: per backend, the Python loop's cost per step and the m
    below which it is more than half of a step."""
    parts = []
    for backend, costs in outer_loop_series(training).items():
        crossover = loop_crossover_m(costs)
        smallest, largest = costs[0].python.m, costs[-1].python.m
        if costs[0].overhead_s.low <= 0:
            where = "no cost to remove" if costs[0].overhead_s.high >= 0 else "slower compiled"
        elif crossover is not None:
            where = f"more than half of a step below m ≈ {crossover:,.0f}"
        elif costs[0].compiled_step_s.value >= costs[0].overhead_s.value:
            where = f"less than half of a step from m = {smallest:,} on"
        else:
            where = f"more than half of a step up to m = {largest:,}"
        parts.append(f"`{backend}` {_step_time(costs[0].overhead_s)} ({where})")
    if not parts:
        return "No backend was timed in both loops."
    return (
        "The Python loop's cost per step (its step's time minus the compiled loop's, at the "
        "smallest m, with its 95 % interval): " + "; ".join(parts) + "."
    )


def outer_loop_table(training: Sequence[TrainingRecord]) -> list[str]:
    """Every problem and backend timed in both loops: a step in each, their ratio, the cost."""
    costs = loop_costs(training)
    if not costs:
        return []
    rows = [
        [
            f"{c.python.dataset} ({c.python.m:,} x {c.python.n:,})",
            c.python.backend,
            str(c.python.threads),
            _step_time(c.python_step_s),
            _step_time(c.compiled_step_s),
            format_speedup(c.speedup),
            _step_time(c.overhead_s),
        ]
        for c in sorted(costs, key=lambda c: (c.python.dataset, c.python.m))
    ]
    header = [
        "dataset (m x n)",
        "backend",
        "threads",
        "Python loop, per step",
        "compiled loop, per step",
        "Python / compiled",
        "the Python loop's cost per step",
    ]
    return [
        "## The outer loop: Python against compiled",
        "",
        "The same steps in a Python for loop (each framework's idiom: JAX jits the step, torch "
        "steps an SGD optimizer) and in the backend's compiled loop (numba: one jitted loop; JAX: "
        "lax.fori_loop under jit; torch: torch.compile), timed whole and divided by the steps. "
        "The cost of the Python loop is the difference, per pass, with its 95 % interval.",
        "",
        *_table(header, rows),
    ]


def training_table(
    training: Sequence[TrainingRecord], tags: dict[str, str] | None = None
) -> list[str]:
    """Every training cell: time per run and per iteration, speedup, what it learned, and the
    peak bytes of one step and of a whole run."""
    if not training:
        return []
    loops = {r.problem: r for r in training if r.backend == LOOPS and r.loop == "python"}
    iterations = sorted({r.iterations for r in training})
    rows = [
        [
            f"{r.dataset} ({r.m:,} x {r.n:,})",
            r.backend,
            r.loop,
            str(r.threads),
            format_record_time(r, tags),
            format_seconds(r.median_s / r.iterations) if r.timed and r.median_s else "",
            training_speedup(r, loops.get(r.problem)),
            f"{r.accuracy:.2%}" if r.accuracy is not None else "",
            f"{r.final_cost:.6g}" if r.final_cost is not None else "",
            str(r.rounds or ""),
            *(
                "" if (peak := r.peak_of(what)) is None else format_bytes(peak)
                for what in ("step", "run")
            ),
        ]
        for r in training
    ]
    header = [
        "dataset (m x n)",
        "backend",
        "loop",
        "threads",
        "time per run",
        "per iteration",
        f"speedup over {LOOPS}",
        "accuracy",
        "final cost",
        "rounds",
        "peak of a step",
        "peak of a run",
    ]
    settings = sorted({(r.learning_rate, r.record_every) for r in training})
    described = "; ".join(
        f"learning rate {rate:g}, cost recorded every {every} iterations"
        for rate, every in settings
    )
    return [
        f"## Training: {', '.join(f'{i:,}' for i in iterations)} iterations of gradient descent",
        "",
        f"From w = 0, b = 0 ({described}); medians of whole runs (kernel, update and the "
        "recorded cost). Accuracy and cost on the training data.",
        "",
        *_table(header, rows),
    ]


def float32_table(records: Sequence[Record], threads: int) -> list[str]:
    """float64 time / float32 time at the largest m of each n: 2x where only bytes matter."""
    singles, doubles = at_threads(records, threads, "float32"), at_threads(records, threads)
    rows = []
    both = [
        (key, single, doubles[key])
        for key, single in singles.items()
        if ratio(doubles.get(key), single) is not None
    ]
    for n in sorted({n for (_, _, n), *_ in both}):
        m = max(m for (_, m, nn), *_ in both if nn == n)
        for (backend, mm, nn), single, double in both:
            if (mm, nn) == (m, n):
                halving = ratio(double, single)
                rows.append(
                    [
                        backend,
                        f"{m:,}",
                        f"{n:,}",
                        format_record_time(double),
                        format_record_time(single),
                        format_estimate(halving) if halving else "",
                    ]
                )
    if not rows:
        return []
    heading = f"## float32 against float64 ({threads} threads): half the bytes of X"
    header = ["backend", "m", "n", "float64", "float32", "float64 / float32"]
    return [heading, "", *_table(header, rows), ""]


#: Sizes the layout table names, where the grid has them (the issue that made layout an axis).
LAYOUT_SIZES = ((1000, 100), (100_000, 10), (100_000, 1000), (1_000_000, 10), (1_000_000, 100))


def _layout_verdict(estimate: Estimate) -> str:
    """The verdict on an F/C time ratio, in words about F: above 1, F is slower."""
    return {"slower": "F slower", "faster": "F faster", "same": "tie"}[verdict(estimate)]


def layout_sentence(records: Sequence[Record], threads: int) -> str:
    """Per backend: at how many sizes Fortran order is slower than C order beyond the tie band."""
    ratios = layout_ratios(records, threads)
    parts = []
    for backend in dict.fromkeys(b for (b, _, _) in ratios):
        mine = [e for (b, _, _), e in ratios.items() if b == backend]
        slower = sum(verdict(e) == "slower" for e in mine)
        parts.append(f"`{backend}` slower in F order at {slower} of {len(mine)} sizes")
    return (
        "Below 1, X in Fortran order (the transpose of the (m, n) arrays users hold) is faster "
        f"than in C order; within the grey band, a tie ({threads} threads): "
        + "; ".join(parts)
        + "."
    )


def layout_table(records: Sequence[Record], threads: int, machine: dict[str, Any]) -> list[str]:
    """F/C time ratio with its interval per backend at LAYOUT_SIZES and the largest m of each
    n, and the share of the measured read bandwidth in each layout."""
    ratios = layout_ratios(records, threads)
    fortran, course = at_threads(records, threads, layout="F"), at_threads(records, threads)
    ceiling = machine.get("read_bandwidth_bytes_per_s", {}).get(str(threads))
    largest = {(max(m for (_, m, nn) in ratios if nn == n), n) for (_, _, n) in ratios}
    sizes = sorted({*(s for s in LAYOUT_SIZES if s in {(m, n) for (_, m, n) in ratios})} | largest,
                   key=lambda size: (size[1], size[0]))  # fmt: skip
    rows = []
    for m, n in sizes:
        for (backend, mm, nn), estimate in ratios.items():
            if (mm, nn) == (m, n):
                f, c = fortran[(backend, m, n)], course[(backend, m, n)]
                shares = [_rate(r, ceiling) if ceiling else "" for r in (c, f)]
                times = [format_record_time(c), format_record_time(f), format_estimate(estimate)]
                rows.append(
                    [backend, f"{m:,}", f"{n:,}", *times, _layout_verdict(estimate), *shares]
                )
    if not rows:
        return []
    heading = f"## Fortran order against C order ({threads} threads): data.T costs no copy"
    header = ["backend", "m", "n", "C", "F", "F / C", "", "C: read bandwidth", "F: read bandwidth"]
    return ["", heading, "", layout_sentence(records, threads), "", *_table(header, rows), ""]


def memory_sentence(records: Sequence[Record], threads: int) -> str:
    """At the largest size timed at n = 100 (or the largest n): each backend's peak bytes per
    call as a multiple of X's, leanest first."""
    measured = [r for r in at_threads(records, threads).values() if r.call_bytes is not None]
    if not measured:
        return ""
    n = middle_n(sorted({r.n for r in measured}))
    m = max(r.m for r in measured if r.n == n)
    at_size = sorted((r for r in measured if (r.m, r.n) == (m, n)), key=lambda r: r.call_bytes or 0)
    said = ", ".join(f"`{r.backend}` {format_memory(r)}" for r in at_size)
    return (
        f"Peak bytes a call allocates beyond its inputs (one call of its own, untimed), at m = "
        f"{m:,}, n = {n:,} ({format_bytes(at_size[0].x_bytes)} of X): {said}."
    )


def memory_table(records: Sequence[Record], threads: int) -> list[str]:
    """Peak bytes per call, and as a multiple of X's bytes, per size and backend
    (`loopvec.memory`); where no cell was measured, why (nothing for cells older than it)."""
    cells = at_threads(records, threads)
    if not any(r.call_bytes is not None for r in cells.values()):
        if why := sorted({r.peak_method for r in cells.values() if r.peak_method}):
            return ["", f"Memory per gradient call ({threads} threads): {'; '.join(why)}.", ""]
        return []
    backends = [b for b in backends_in(records) if any(c[0] == b for c in cells)]
    sizes = sorted({(m, n) for (_, m, n) in cells}, key=lambda s: (s[1], s[0]))
    rows = [
        [f"{m:,}", f"{n:,}", *(format_memory(cells.get((b, m, n))) for b in backends)]
        for m, n in sizes
    ]
    dask = [b for b in backends if any(r.worker_peak_bytes is not None for r in cells.values()
                                       if r.backend == b)]  # fmt: skip
    workers = (
        f" For {', '.join(f'`{b}`' for b in dask)}: this process's peak and the workers' added."
        if dask
        else ""
    )
    method = next(r.peak_method for r in cells.values() if r.call_bytes is not None)
    return [
        "",
        f"## Memory per gradient call ({threads} threads): peak bytes beyond its inputs",
        "",
        memory_sentence(records, threads) + workers,
        "",
        *_table(["m", "n", *backends], rows),
        "",
        f"Method: {method}.",
        "",
    ]


def _user_lines(records: Sequence[Record | TrainingRecord]) -> list[str]:
    """The paragraphs that name what the user brought: plug-ins, data (none: no lines)."""
    lines = []
    if note := plugins_note(records):
        lines += [
            f"**Plug-ins.** {note[0].upper()}{note[1:]}: timed and checked as the others, never "
            "counted as loopvec's in a comparison with the frameworks.",
            "",
        ]
    for name, sha256, scaled, m, n in sorted(
        {(r.data, r.data_sha256, r.data_standardized, r.m, r.n) for r in records if r.data}
    ):
        how = "standardized" if scaled else "as stored, not standardized"
        lines += [
            f"**Data.** `{name}`: {m:,} examples x {n} features, {how}, sha256 "
            f"`{(sha256 or '')[:16]}`: the gradient timed at its shape, and trained on.",
            "",
        ]
    return lines


def render_report(
    records: Sequence[Record],
    machine: dict[str, Any],
    figures: dict[str, str],
    training: Sequence[TrainingRecord] = (),
) -> str:
    """The whole REPORT.md for one host; `figures` maps figure name -> relative path. Every
    section compares cells in the course's layout (C order) but the layout's own."""
    every_layout, records = records, in_course_layout(records)
    if not any(r.timed for r in records):
        if any(r.timed for r in training):
            return _training_report(machine, figures, training)
        return _nothing_timed_report(records, machine, training)
    threads = max_threads(records)
    cells = at_threads(records, threads)
    sizes = {(m, n) for (_, m, n) in cells}
    threaded = {r.backend for r in records if r.threads > 1}
    date = run_date(records)
    tags = run_tags([*records, *training])
    if not cells:
        raise ValueError("the report compares float64 cells, and this run has none")
    lines = [
        "# loopvec report",
        "",
        f"{machine.get('cpu', '?')}, {machine.get('logical_cores', '?')} cores, "
        f"host `{machine.get('host', '?')}`, run of {date}. {METHOD} Comparisons at {threads} "
        "threads unless marked.",
        "",
        *provenance([*records, *training]),
        "",
        *_user_lines([*every_layout, *training]),
        "## Headline",
        "",
        *headline(cells, sizes),
        "",
        "## Figures",
        "",
    ]
    sentences = {
        **figure_sentences(records, machine),
        **training_sentences(training),
        "layout_effect": layout_sentence(every_layout, threads),
        "peak_memory": memory_sentence(records, threads),
    }
    for name, path in figures.items():
        lines += [f"![{name}]({path})", "", sentences.get(name, ""), ""]

    order = backends_in(records)
    column_records = sorted(
        {(r.backend, r.dtype, r.threads): r for r in records}.values(),
        key=lambda r: (order.index(r.backend), r.dtype != "float64", r.threads),
    )
    columns = [_column_name(r, threaded) for r in column_records]
    by_column = {(_column_name(r, threaded), r.m, r.n): r for r in records}
    ordered_sizes = sorted(sizes, key=lambda s: (s[1], s[0]))
    lines += ["## Median time per gradient", ""]
    lines += _table(
        ["m", "n", *columns],
        [
            [
                f"{m:,}",
                f"{n:,}",
                *(format_record_time(by_column.get((c, m, n)), tags) for c in columns),
            ]
            for m, n in ordered_sizes
        ],
    )
    others = [b for b in backends_in(records) if b != REFERENCE]
    lines += ["", f"## Speedup over `{REFERENCE}` ({threads} threads)", ""]
    lines += _table(
        ["m", "n", *others],
        [
            [f"{m:,}", f"{n:,}", *(_speedup(cells, b, REFERENCE, m, n) for b in others)]
            for m, n in ordered_sizes
        ],
    )

    lines += ["", *training_table(training, tags)] if training else []
    lines += ["", *outer_loop_table(training)] if loop_costs(training) else []
    lines += ["", "## Cost model: t = overhead + per example x m + per element x m x n", ""]
    model_rows = [
        [
            backend,
            dtype,
            str(t),
            f"{model.overhead_s * 1e6:.3g}",
            f"{model.per_example_s * 1e9:.3g}",
            f"{model.per_element_s * 1e9:.3g}",
        ]
        for dtype in sorted({r.dtype for r in records}, reverse=True)
        for t in sorted({r.threads for r in records})
        for backend, model in fit_models([r for r in records if r.threads == t], t, dtype).items()
    ]
    lines += _table(
        ["backend", "dtype", "threads", "overhead (us)", "per example (ns)", "per element (ns)"],
        model_rows,
    )

    compile_rows: dict[tuple[str, str], list[str]] = {}
    for r in records:
        if r.timed and r.compile_s is not None:
            compile_rows.setdefault(
                (r.backend, r.dtype), [r.backend, r.dtype, format_seconds(r.compile_s)]
            )
    lines += ["", "## First call in the process (JIT compile or cache load included)", ""]
    lines += _table(["backend", "dtype", "compile_s"], list(compile_rows.values()))
    lines += memory_table(records, threads)
    lines += ["", *float32_table(records, threads)]
    lines += layout_table(every_layout, threads, machine)

    untimed = [r for r in every_layout if not r.timed]
    lines += ["", f"## Skipped or failed cells ({len(untimed)})", ""]
    lines += _table(
        ["backend", "dtype", "layout", "threads", "m", "n", "status", "reason"],
        [
            [
                r.backend,
                r.dtype,
                r.layout,
                str(r.threads),
                f"{r.m:,}",
                f"{r.n:,}",
                r.status + (f" {tags[r.run]}" if tags else ""),
                r.reason or "",
            ]
            for r in untimed
        ],
    )
    unstable = [r for r in every_layout if r.timed and r.unstable]
    lines += ["", f"## Unstable cells ({len(unstable)})", ""]
    lines += _table(
        ["backend", "dtype", "layout", "threads", "m", "n", "time", "passes", "rounds", "why"],
        [
            [
                r.backend,
                r.dtype,
                r.layout,
                str(r.threads),
                f"{r.m:,}",
                f"{r.n:,}",
                format_record_time(r),
                str(len(r.passes)),
                str(r.rounds),
                "; ".join(r.unstable),
            ]
            for r in unstable
        ],
    )
    return "\n".join([*lines, "", *_machine_section(machine)]) + "\n"


def _nothing_timed_report(
    records: Sequence[Record], machine: dict[str, Any], training: Sequence[TrainingRecord]
) -> str:
    """A run in which no cell was timed: what happened to each cell, and no figures."""
    cells: Sequence[AnyRecord] = [*records, *training]
    counts = Counter(r.status for r in cells)
    said = ", ".join(f"{count} {status}" for status, count in sorted(counts.items()))
    rows = [[_cell_name(r), r.status, (r.reason or "").replace("|", "/")] for r in cells]
    return "\n".join(
        [
            "# loopvec report",
            "",
            f"{machine.get('cpu', '?')}, {machine.get('logical_cores', '?')} cores, "
            f"host `{machine.get('host', '?')}`.",
            "",
            f"**Nothing was timed in this run** ({said}), so there is nothing to compare or draw. "
            "Each cell and why:",
            "",
            *_table(["cell", "status", "reason"], rows),
            "",
        ]
    )


def _cell_name(record: AnyRecord) -> str:
    if isinstance(record, TrainingRecord):
        loop = "" if record.loop == "python" else f" {record.loop} loop"
        return f"train {record.dataset} {record.backend} t={record.threads}{loop}"
    return f"{record.backend} m={record.m} n={record.n} t={record.threads} {record.dtype}"


def _training_report(
    machine: dict[str, Any], figures: dict[str, str], training: Sequence[TrainingRecord]
) -> str:
    """REPORT.md of a run with training cells only (pytest bench/test_training.py)."""
    lines = [
        "# loopvec report: training runs",
        "",
        f"{machine.get('cpu', '?')}, {machine.get('logical_cores', '?')} cores, "
        f"host `{machine.get('host', '?')}`, run of {run_date(training)}.",
        "",
        *provenance(training),
        "",
    ]
    sentences = training_sentences(training)
    for name, path in figures.items():
        lines += [f"![{name}]({path})", "", sentences.get(name, ""), ""]
    lines += [*training_table(training), ""]
    lines += [*outer_loop_table(training), ""] if loop_costs(training) else []
    return "\n".join([*lines, *_machine_section(machine)]) + "\n"


def training_sentences(training: Sequence[TrainingRecord]) -> dict[str, str]:
    """What to read in each figure of the training benchmark."""
    return {
        "training_time": training_sentence(training),
        "outer_loop": outer_loop_sentence(training),
    }


def _machine_section(machine: dict[str, Any]) -> list[str]:
    return ["## Machine", "", *(f"- {k}: {_machine_value(k, v)}" for k, v in machine.items())]


def _machine_value(key: str, value: Any) -> str:
    """One machine-record entry as a readable phrase."""
    if key == "read_bandwidth_bytes_per_s":
        return ", ".join(f"{v / 1e9:.1f} GB/s at {t} thread(s)" for t, v in value.items())
    if key == "memory_bytes":
        return f"{value / 2**30:.1f} GiB"
    if isinstance(value, dict):
        return ", ".join(f"{k} {v}" for k, v in value.items()) or "none"
    if isinstance(value, list):  # BLAS pools (dicts) or SIMD features (names)
        return "; ".join(
            ", ".join(f"{k} {v}" for k, v in item.items()) if isinstance(item, dict) else item
            for item in value
        )
    return str(value)
