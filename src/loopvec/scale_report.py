"""The scale study's figure and SCALE.md, from its records (`loopvec.scale`). Pure: no I/O.

The task overhead's crossover: over the chunk-size sweep, dask_fused's time per gradient is fitted
as kernels_s + chunks * task_s (least squares; task_s's 95 % interval from its standard error),
and the crossover is the chunk size where the tasks' overhead equals the kernels' time:
crossover_bytes = x_bytes * task_s / kernels_s. Chunks below it spend more on tasks than on X.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter
from scipy import stats as scipy_stats

from loopvec.formatting import format_estimate
from loopvec.plots import backend_color
from loopvec.stats import Estimate

MiB = 2**20
GB = 1e9
BACKENDS = ("numba_parallel", "dask_fused", "dask_array")
PEERS = ("dask_fused", "dask-ml", "dask-glm", "numba_parallel")


def of_study(records: Sequence[dict[str, Any]], study: str, **match: Any) -> list[dict[str, Any]]:
    """The timed records of `study` whose fields equal `match`."""
    return [
        r
        for r in records
        if r["study"] == study
        and r.get("status", "timed") == "timed"
        and all(r.get(key) == value for key, value in match.items())
    ]


def estimate_of(record: dict[str, Any]) -> Estimate:
    return Estimate(record["median_s"], record["low_s"], record["high_s"])


def ratio(slow: dict[str, Any], fast: dict[str, Any]) -> Estimate:
    """slow / fast with a conservative interval: the ends of independent intervals divided
    (NaN ends where an interval reaches zero: the ratio is then unbounded)."""
    a, b = estimate_of(slow), estimate_of(fast)
    if min(a.low, b.low) <= 0:
        return Estimate(a.value / b.value, math.nan, math.nan)
    return Estimate(a.value / b.value, a.low / b.high, a.high / b.low)


def _ratio_text(estimate: Estimate) -> str:
    if math.isnan(estimate.low):
        return f"{estimate.value:.2g}x (an interval reaches 0)"
    return format_estimate(estimate)


@dataclass(frozen=True)
class Crossover:
    kernels_s: float  #: the fit's time with no tasks' overhead
    task_s: Estimate  #: overhead per chunk, with its 95 % interval
    crossover_bytes: Estimate  #: chunk size where the tasks' overhead equals kernels_s


def crossover(records: Sequence[dict[str, Any]], backend: str = "dask_fused") -> Crossover | None:
    """The fit of time = kernels_s + chunks * task_s over the sweep (None below 3 sizes, or
    where the time does not grow with the number of chunks)."""
    sweep = of_study(records, "chunk_size", backend=backend)
    if len(sweep) < 3:
        return None
    chunks = np.array([r["chunks"] for r in sweep], dtype=float)
    times = np.array([r["median_s"] for r in sweep])
    fit = scipy_stats.linregress(chunks, times)
    if fit.slope <= 0 or fit.intercept <= 0:
        return None
    half = scipy_stats.t.ppf(0.975, len(sweep) - 2) * fit.stderr
    task_s = Estimate(fit.slope, max(fit.slope - half, 0.0), fit.slope + half)
    x_bytes = sweep[0]["x_bytes"]
    return Crossover(fit.intercept, task_s, task_s.scaled(x_bytes / fit.intercept))


def _gb_per_s(record: dict[str, Any]) -> Estimate:
    return estimate_of(record).inverse().scaled(record["x_bytes"] / GB)


def _errors(points: Sequence[dict[str, Any]], scale: float) -> tuple[Any, Any]:
    """Medians and matplotlib's yerr (below, above) of records, times `scale`."""
    values = np.array([[r["median_s"], r["low_s"], r["high_s"]] for r in points]) * scale
    return values[:, 0], [values[:, 0] - values[:, 1], values[:, 2] - values[:, 0]]


def _sweep_panel(ax: Any, scale: dict[str, Any], colors: dict[str, Any]) -> None:
    records = scale["records"]
    for backend in ("dask_fused", "dask_array"):
        points = sorted(of_study(records, "chunk_size", backend=backend), key=lambda r: r["chunks"])
        if points:
            medians, errors = _errors(points, 1e3)
            x = [r["chunk_bytes"] / MiB for r in points]
            ax.errorbar(x, medians, yerr=errors, marker="o", capsize=3, color=colors[backend],
                        label=backend)  # fmt: skip
    for r in of_study(records, "chunk_size", backend="numba_parallel"):
        color = colors["numba_parallel"]
        label = f"numba_parallel, {r['threads']} threads (band: 95 % interval)"
        ax.axhspan(r["low_s"] * 1e3, r["high_s"] * 1e3, color=color, alpha=0.3, label=label)
        ax.axhline(r["median_s"] * 1e3, color=color)
    fit = crossover(records)
    if fit is not None:
        at_mib = fit.crossover_bytes.value / MiB
        label = f"tasks' overhead = kernels' time ({at_mib:.2g} MiB)"
        ax.axvline(at_mib, color="0.4", linestyle="--", label=label)
    sweep = of_study(records, "chunk_size")
    if sweep:
        ax.set_title(f"Time per gradient vs chunk size\n(m = {sweep[0]['m']:,}, n = "
                     f"{sweep[0]['n']}, {scale['workers']} workers)")  # fmt: skip
    ax.set(xscale="log", yscale="log", xlabel="chunk of X (MiB)", ylabel="ms per gradient")
    ax.xaxis.set_minor_formatter(NullFormatter())  # labels at powers of ten only: no overlap


def _rate_panel(ax: Any, scale: dict[str, Any], colors: dict[str, Any]) -> None:
    records = scale["records"]
    for backend in BACKENDS:
        points = sorted(of_study(records, "in_memory", backend=backend), key=lambda r: r["m"])
        rates = [_gb_per_s(r).value for r in points]
        x = [r["x_bytes"] / GB for r in points]
        ax.plot(x, rates, marker="o", color=colors[backend], label=f"{backend}, in memory")
    for cache, marker in (("cold", "v"), ("warm", "^")):
        points = sorted(of_study(records, "out_of_core", cache=cache), key=lambda r: r["m"])
        x, rates = [r["x_bytes"] / GB for r in points], [_gb_per_s(r).value for r in points]
        ax.plot(x, rates, marker=marker, linestyle=":", color=colors["dask_fused"],
                label=f"dask_fused from Zarr, {cache} page cache")  # fmt: skip
    disks = [r["disk_read_bytes_per_s"] for r in of_study(records, "out_of_core")]
    if disks:
        ax.axhline(max(disks) / GB, color="0.3", linestyle="-.", label="disk read")
    memory_read = scale["memory_read_bytes_per_s"] / GB
    ax.axhline(memory_read, color="0.3", linestyle="--", label="memory read, all cores")
    memory = scale["machine"].get("memory_bytes")
    if memory:
        ax.axvline(memory / GB, color="0.6", linewidth=1, label="this machine's memory")
    ax.set(xscale="log", yscale="log", xlabel="X (GB)", ylabel="GB/s of X read",
           title="Throughput in memory and out of core")  # fmt: skip


def _training_panel(ax: Any, scale: dict[str, Any], colors: dict[str, Any]) -> None:
    training = of_study(scale["records"], "training")
    if training:
        names = [r["backend"] for r in training]
        medians, errors = _errors(training, 1.0)
        ax.barh(names, medians, xerr=errors, capsize=4, color=[colors[b] for b in names])
        ax.set_title(f"Gradient descent, per iteration\n(m = {training[0]['m']:,}, "
                     f"n = {training[0]['n']}, same cluster)")  # fmt: skip
        ax.invert_yaxis()
    ax.set(xscale="log", xlabel="seconds per iteration")


def figure(scale: dict[str, Any]) -> Figure:
    """Three panels: time per gradient against chunk size; GB/s against X's size (in memory
    and out of core, with the disk's and memory's read bandwidth); training per iteration.
    One legend, below the panels."""
    fig = Figure(figsize=(16, 6), layout="constrained")
    axes = fig.subplots(1, 3)
    names = [*BACKENDS, "dask-ml", "dask-glm"]
    colors = {name: backend_color(name, names) for name in names}
    panels = {
        _sweep_panel: ("chunk_size",),
        _rate_panel: ("in_memory", "out_of_core"),
        _training_panel: ("training",),
    }
    for (panel, studies), ax in zip(panels.items(), axes, strict=True):
        if any(of_study(scale["records"], study) for study in studies):
            panel(ax, scale, colors)
        else:  # a study not run, interrupted, or with nothing resolved: an axis would be empty
            ax.set_axis_off()
            ax.text(0.5, 0.5, f"nothing measured in {' or '.join(studies)}", ha="center",
                    va="center", transform=ax.transAxes, color="0.4")  # fmt: skip
    handles: dict[str, Any] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(label, handle)
    fig.legend(handles.values(), handles.keys(), loc="outside lower center", ncols=4)
    return fig


def _number(estimate: Estimate) -> str:
    """'12.3 [11.9, 12.8]': three significant digits."""
    return f"{estimate.value:.3g} [{estimate.low:.3g}, {estimate.high:.3g}]"


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def markdown(scale: dict[str, Any], figure_name: str = "scale.png") -> str:
    """SCALE.md: each study's table, every time with its interval."""
    records = scale["records"]
    machine = scale["machine"]
    lines = [
        "# Beyond one process: the gradient on Dask",
        "",
        f"{machine.get('cpu', '?')}, {machine.get('logical_cores', '?')} cores; {scale['workers']} "
        f"Dask workers of {scale['threads_per_worker']} thread(s). Medians with 95 % intervals "
        "(rounds in one process, bootstrap; training: Student's t over pairs); a ratio's "
        "interval divides the ends of the two intervals (conservative).",
        "",
        f"![scale]({figure_name})",
    ]
    fit = crossover(records)
    sweep = of_study(records, "chunk_size")
    if sweep:
        lines += ["", "## Chunk size (task overhead)", "",
                  _row(["backend", "chunk", "chunks", "ms per gradient"]),
                  _row(["---"] * 4)]  # fmt: skip
        for r in sorted(sweep, key=lambda r: (r["backend"], r.get("chunks", 0))):
            chunk = f"{r['chunk_bytes'] / MiB:.2f} MiB" if "chunk_bytes" in r else "-"
            lines.append(_row([r["backend"], chunk, str(r.get("chunks", "-")),
                               _number(estimate_of(r).scaled(1e3))]))  # fmt: skip
        if fit is not None:
            lines += ["", f"Fit over the sweep: kernels {fit.kernels_s * 1e3:.1f} ms + "
                      f"{_number(fit.task_s.scaled(1e3))} ms per chunk; the overhead "
                      f"equals the kernels' time at chunks of "
                      f"{_number(fit.crossover_bytes.scaled(1 / MiB))} MiB."]  # fmt: skip
    in_memory = of_study(records, "in_memory")
    if in_memory:
        lines += ["", "## In memory", "",
                  _row(["m", "n", "backend", "ms per gradient", "GB/s", "vs numba_parallel"]),
                  _row(["---"] * 6)]  # fmt: skip
        for r in sorted(in_memory, key=lambda r: (r["m"], BACKENDS.index(r["backend"]))):
            base = of_study(records, "in_memory", backend="numba_parallel", m=r["m"])
            versus = _ratio_text(ratio(r, base[0])) if base else "-"
            lines.append(_row([f"{r['m']:,}", str(r["n"]), r["backend"],
                               _number(estimate_of(r).scaled(1e3)),
                               _number(_gb_per_s(r)), versus]))  # fmt: skip
    out_of_core = of_study(records, "out_of_core")
    if out_of_core:
        lines += ["", "## Out of core (dask_fused from a Zarr store)", "",
                  f"Memory read bandwidth: {scale['memory_read_bytes_per_s'] / GB:.1f} GB/s.", "",
                  _row(["m", "X (GB)", "page cache", "held before", "s per gradient", "GB/s",
                        "disk read GB/s"]),
                  _row(["---"] * 7)]  # fmt: skip
        for r in sorted(out_of_core, key=lambda r: (r["m"], r["cache"])):
            held = r["page_cache_share_before"]
            lines.append(_row([f"{r['m']:,}", f"{r['x_bytes'] / GB:.1f}", r["cache"],
                               "unknown" if held is None else f"{held:.0%}",
                               _number(estimate_of(r)), _number(_gb_per_s(r)),
                               f"{r['disk_read_bytes_per_s'] / GB:.2f}"]))  # fmt: skip
    training = [r for r in records if r["study"] == "training"]
    if training:
        ours = of_study(records, "training", backend="dask_fused")
        lines += ["", "## Gradient descent, time per iteration", "",
                  _row(["engine", "ms per iteration", "dask_fused is faster by", "warnings"]),
                  _row(["---"] * 4)]  # fmt: skip
        for r in training:
            if r.get("status", "timed") != "timed":  # its why is in the table of those below
                lines.append(_row([r["backend"], r["status"], "-", "-"]))
                continue
            versus = _ratio_text(ratio(r, ours[0])) if ours else "-"
            lines.append(_row([r["backend"], _number(estimate_of(r).scaled(1e3)), versus,
                               "; ".join(r.get("warnings", [])) or "none"]))  # fmt: skip
    untimed = [r for r in records if r.get("status", "timed") != "timed"]
    if untimed:
        lines += ["", f"## Not timed or not resolved ({len(untimed)})", "",
                  _row(["study", "backend", "m", "chunks", "status", "why"]),
                  _row(["---"] * 6)]  # fmt: skip
        for r in untimed:
            lines.append(_row([r["study"], r["backend"], f"{r['m']:,}", str(r.get("chunks", "-")),
                               r["status"], r["reason"]]))  # fmt: skip
    return "\n".join(lines) + "\n"
