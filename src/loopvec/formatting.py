"""Numbers as a reader sees them in titles, tables and tooltips: 3.4 ms, 2.0x [1.9, 2.1], ≈ for
a tie. No drawing, no file I/O."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from loopvec.analysis import not_ours, predicted_ratio, ratio, run_date
from loopvec.results import AnyRecord, Record, TrainingRecord
from loopvec.stats import DEFAULT_TIE_BAND, Estimate, verdict

#: Bytes in a GB (bandwidths are written in GB/s).
GB = 1e9


def format_seconds(seconds: float) -> str:
    """A time with a unit a reader knows: 850 ns, 12 us, 3.4 ms, 1.2 s."""
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def format_bytes(size_bytes: float) -> str:
    """A size with a binary unit: 824 B, 130 KiB, 38.1 MiB, 7.45 GiB (3 significant digits)."""
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if size_bytes >= scale:
            return f"{size_bytes / scale:.3g} {unit}"
    return f"{size_bytes:.0f} B"


def format_memory(record: Record | None) -> str:
    """A gradient cell's peak bytes per call, workers' included, and as a multiple of X's bytes:
    '38.1 MiB (0.5 X)'; '' where it was not measured."""
    if record is None or (peak := record.call_bytes) is None:
        return ""
    times = peak / record.x_bytes
    return (
        f"{format_bytes(peak)} ({times:,.0f} X)"
        if times >= 10
        else f"{format_bytes(peak)} ({times:.2g} X)"
    )


def format_signed_seconds(seconds: float) -> str:
    """format_seconds with a minus sign where the time is negative (a difference)."""
    return ("-" if seconds < 0 else "") + format_seconds(abs(seconds))


def format_record_time(record: AnyRecord | None, tags: dict[str, str] | None = None) -> str:
    """'12 us ±2%' (the half-width of its 95 % interval), 'failed', 'skip (~3 s)'; with the
    run's tag where a report merges runs."""
    if record is None:
        return ""
    if record.timed and (estimate := record.estimate) is not None:
        text = f"{format_seconds(estimate.value)} ±{estimate.half_width:.0%}"
    elif record.status == "failed":
        text = "failed"
    else:
        text = f"skip (~{format_seconds(record.predicted_s)})" if record.predicted_s else "skip"
    return f"{text} {tags[record.run]}" if tags else text


def format_ratio(ratio: float) -> str:
    """12x, 3.4x, 0.52x: two significant digits, never scientific."""
    if ratio >= 10:
        return f"{ratio:.0f}x"
    return f"{ratio:.2g}x"


def format_estimate(estimate: Estimate) -> str:
    """'2.0x [1.9, 2.1]': a ratio and its 95 % interval."""
    low, high = format_ratio(estimate.low)[:-1], format_ratio(estimate.high)[:-1]
    return f"{format_ratio(estimate.value)} [{low}, {high}]"


def format_speedup(estimate: Estimate, tie_band: float = DEFAULT_TIE_BAND) -> str:
    """'2.0x [1.9, 2.1]', or 'tie (1.01x [0.99, 1.03])' where the interval allows one."""
    text = format_estimate(estimate)
    return text if verdict(estimate, tie_band) != "same" else f"tie ({text})"


def size_label(value: int) -> str:
    """1, 10, 100, then powers of ten as 10^3 ... (any other value as written)."""
    exponent = math.log10(value)
    if value >= 1000 and exponent == int(exponent):
        return f"$10^{{{int(exponent)}}}$"
    return f"{value:,}"


def context(machine: dict[str, Any], records: Sequence[AnyRecord], threads: int | None) -> str:
    """'AMD EPYC, 2 cores, 2 threads, 2026-11-28': what every title says; and on a line of its
    own, the backends that are not loopvec's own."""
    date = run_date(records)
    parts = [machine.get("cpu", "unknown CPU"), f"{machine.get('logical_cores', '?')} cores"]
    if threads is not None:
        parts.append(f"{threads} thread{'s' if threads > 1 else ''}")
    text = ", ".join([*parts, date] if date else parts)
    others = not_ours(records)  # short in a title: REPORT.md and the page say where from
    return f"{text}\nnot loopvec's own: {', '.join(others)}" if others else text


def plugins_note(records: Sequence[AnyRecord]) -> str:
    """'not loopvec's own: mine (--backend alice.py:gradient)': what marks a plug-in; '' if the
    records hold none."""
    others = not_ours(records)
    listed = ", ".join(f"{backend} ({origin})" for backend, origin in others.items())
    return f"not loopvec's own: {listed}" if others else ""


def training_speedup(mine: TrainingRecord | None, loops: TrainingRecord | None) -> str:
    """'7000x [6900, 7100]': loops' time / mine, '~7000x' against the loops' predicted time, or
    '' (also across runs: see `ratio`)."""
    if (measured := ratio(loops, mine)) is not None:
        return format_speedup(measured)
    predicted = predicted_ratio(loops, mine) if loops and not loops.timed else None
    return f"~{format_ratio(predicted)}" if predicted is not None else ""


def loop_cost_words(overhead_s: Estimate) -> str:
    """'Python loop costs 2.7 us a step', or that the compiled loop is slower (the interval
    wholly below zero), or '... about 0 ...' where the interval holds zero."""
    if overhead_s.high < 0:
        return f"compiled loop {format_seconds(-overhead_s.value)} slower a step"
    if overhead_s.low <= 0:
        return f"Python loop costs about 0 ({format_signed_seconds(overhead_s.value)}) a step"
    return f"Python loop costs {format_seconds(overhead_s.value)} a step"
