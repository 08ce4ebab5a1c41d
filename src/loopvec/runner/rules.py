"""The rules that decide what a pass does with a cell, as pure functions: whether an earlier
record of it is resumed, and whether it is skipped (time budget, memory). Each returns the reason,
in words for the cell file and the progress line, or None.

The budget rule, whole: a gradient cell is skipped when its backend's cost model (fitted on the
smaller cells timed before it) predicts a call slower than the budget; with no model yet (a
backend's first sizes), when its checked first call, compilation left out, is. A training cell is
skipped when its runs over all passes are predicted to exceed the training budget. Later passes
decide as the first did: a cell timed in an earlier pass of the run is timed again whatever the
prediction, and a cell skipped in one is skipped for the same reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from loopvec.backends import BACKENDS
from loopvec.grid import Cell, CostModel, TrainingCell
from loopvec.provenance import FORMAT

#: Share of the free memory a cell may plan to use; the rest is for the system and the report.
MEMORY_HEADROOM = 0.8
#: Bytes a cell needs beyond its arrays and the backend's own extra: temporaries, interpreter.
MEMORY_SLACK_BYTES = 256 * 2**20


def resume_refused(
    record: dict[str, Any], params: dict[str, Any], provenance: dict[str, Any]
) -> str | None:
    """Why the cell file `record` is not this machine's and code's timing of the cell with
    `params` (`provenance`: this pass's format, fingerprints and code modules), or None if its
    passes may be resumed."""
    if record.get("format") != FORMAT:
        return "its earlier cell file is of an older format"
    if record.get("machine_fingerprint") != provenance["machine_fingerprint"]:
        return f"machine changed (was {record.get('machine_fingerprint')})"
    if record.get("code_fingerprint") != provenance["code_fingerprint"]:
        before, now = record.get("code_modules") or {}, provenance["code_modules"]
        changed = sorted(k for k in before.keys() | now.keys() if before.get(k) != now.get(k))
        versions = "versions " + str(provenance["code_versions"])
        return f"code changed: {', '.join(changed) or versions}"
    if any(record.get(k) != v for k, v in params.items()):
        return "parameters changed"
    return None


@dataclass(frozen=True)
class History:
    """What the earlier passes of this run (same machine, code and parameters) did with a cell."""

    timed: bool = False  #: it was timed in at least one of them
    skipped: str | None = None  #: why they skipped it (passes after the first only)


def as_earlier_passes(reason: str | None, history: History) -> str | None:
    """The budget's verdict on a cell in this pass: `reason` (this pass's prediction) in the first
    pass of a cell; a cell timed before is timed again, one skipped before is skipped again."""
    if history.timed:
        return None
    if history.skipped is not None:
        return history.skipped
    return reason


def cost_model_reason(model: CostModel | None, cell: Cell, budget_s: float) -> str | None:
    """Why `cell` is over the time budget by its backend's cost model, or None (also with no
    model yet)."""
    if model is None:
        return None
    predicted_s = model.predict_s(cell.m, cell.n)
    if predicted_s <= budget_s:
        return None
    return (
        f"predicted {predicted_s:.3g} s per call > budget {budget_s:g} s "
        f"(model: {model.describe()})"
    )


def first_call_cost_s(first_call_s: float, compile_s: float, compiles_per_shape: bool) -> float:
    """What a cell's checked first call says one call costs: the call, less the compilation it
    included where the backend compiles again for each shape (JAX's jit)."""
    return max(first_call_s - (compile_s if compiles_per_shape else 0.0), 0.0)


def first_call_reason(call_s: float, budget_s: float) -> str | None:
    """Why a cell with no cost model yet is over the time budget by its checked first call
    (`call_s`, compilation left out), or None."""
    if call_s <= budget_s:
        return None
    return f"its first call took {call_s:.3g} s > budget {budget_s:g} s (no cost model yet)"


def training_cell_s(run_s: float, passes: int) -> float:
    """The least a training cell of runs of `run_s` takes over a run: one checked run, then one
    timed run in each pass."""
    return (1 + passes) * run_s


def training_reason(
    cell: TrainingCell, call_s: float, passes: int, train_budget_s: float
) -> str | None:
    """Why a training cell is over the training budget: its runs over all passes, each
    `cell.iterations` warm gradient calls of `call_s`, predicted longer than it; or None."""
    run_s = cell.iterations * call_s
    cell_s = training_cell_s(run_s, passes)
    if cell_s <= train_budget_s:
        return None
    return (
        f"predicted {run_s:.3g} s per training run ({cell.iterations} x {call_s:.3g} s per "
        f"gradient), {cell_s:.3g} s over {passes} passes > train budget {train_budget_s:g} s"
    )


def memory_needed_bytes(cell: Cell, measured_bytes: int | None = None) -> int:
    """Bytes a cell needs at its peak: X as generated (float64), as timed, and the backend's own:
    `measured_bytes` as its smaller cells predict it (`Pass.predicted_bytes`), else its declared
    guess (`Backend.extra_bytes_per_element`)."""
    generated = cell.elements * 8 + (cell.x_bytes if cell.dtype != "float64" else 0)
    if measured_bytes is None:
        measured_bytes = BACKENDS[cell.backend].extra_bytes_per_element * cell.elements
    return generated + measured_bytes + MEMORY_SLACK_BYTES


def memory_reason(
    cell: Cell, available_bytes: int, measured_bytes: int | None = None
) -> str | None:
    """Why `cell` is skipped for lack of memory, or None if it fits (`memory_needed_bytes`)."""
    needed = memory_needed_bytes(cell, measured_bytes)
    if needed <= MEMORY_HEADROOM * available_bytes:
        return None
    source = "measured on its smaller cells" if measured_bytes is not None else "its guess"
    return (
        f"needs about {needed / 2**30:.1f} GiB (X and the backend's own, {source}), more than "
        f"{MEMORY_HEADROOM:.0%} of the {available_bytes / 2**30:.1f} GiB free"
    )
