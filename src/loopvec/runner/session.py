"""One pass of a run: a process that times every cell of the grid once, in its own order.

A `Pass` knows the run (settings, folder, machine record) and what the folder already holds; it
decides, with `loopvec.runner.rules`, whether each cell is resumed, skipped or timed, builds the
problems outside the timing, and writes each cell's file when its pass of it is done. It knows
nothing of pytest: the bench's tests time the blocks and raise pytest's skips with its words.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psutil

import loopvec
from loopvec.agreement import REFERENCE, Reference
from loopvec.backends import call, get_backend
from loopvec.checks import check
from loopvec.datasets import load
from loopvec.formatting import format_seconds
from loopvec.grid import Cell, CostModel, TrainingCell, fit_cost_model
from loopvec.memory import backend_bytes, fit_memory_model, peaks_of_passes
from loopvec.problem import Problem, make_problem
from loopvec.provenance import FORMAT, code_identity
from loopvec.results import read_cells, samples_of, utc_now, write_json_atomic
from loopvec.runner.folder import set_aside
from loopvec.runner.plan import RoundPlan, cell_pass_s, rest_before_s, training_rounds
from loopvec.runner.progress import Progress
from loopvec.runner.rules import History, as_earlier_passes, resume_refused, training_reason
from loopvec.runner.settings import Settings
from loopvec.runner.timing import wait_until_quiet
from loopvec.stats import time_estimate
from loopvec.training import Descent, TrainResult
from loopvec.userdata import UserData

AnyCell = Cell | TrainingCell


@dataclass
class Timing:
    """One gradient cell while its blocks are timed in this pass."""

    kernel: Callable[..., Any]
    args: tuple[Any, ...] | None  # None: made again for each block (a copy of the problem)
    plan: RoundPlan
    entry: dict[str, Any]  # the pass entry, without its blocks
    blocks: list[list[float]] = field(default_factory=list)


@dataclass
class Pass:
    """The state of one pass of a run: where it writes, what is done, what each backend costs."""

    settings: Settings
    folder: Path
    machine: dict[str, Any]  # the run's machine record (machine.json)
    number: int
    git: dict[str, Any]  # the commit of the checkout that runs the bench, and whether it is dirty
    started_at: str = field(default_factory=utc_now)
    done: dict[str, dict[str, Any]] = field(default_factory=dict)  # cell_id -> timed record
    timed_here: set[str] = field(default_factory=set)  # cells this process timed
    skips: dict[str, dict[str, Any]] = field(default_factory=dict)  # cell_id -> skipped record
    retimed: dict[str, str] = field(default_factory=dict)  # cell_id -> why it was not resumed
    positions: dict[tuple[str, int], int] = field(default_factory=dict)  # place in pass order
    timing: dict[str, Timing] = field(default_factory=dict)  # cells being timed in this pass
    predicted: dict[str, float | None] = field(default_factory=dict)  # by the cost model
    compile_s: dict[tuple[str, str, str], float] = field(default_factory=dict)
    benchmarks: list[Any] = field(default_factory=list)  # pytest-benchmark's stats, for raw/
    progress: Progress = field(default_factory=Progress)
    notes: list[str] = field(default_factory=list)  # said at the start and in the summary
    last_block: tuple[str, int] | None = None  # (backend, threads) of the block timed last
    settled_s: float = 0.0  # waited for other backends' thread pools to sleep, untimed
    refused: dict[str, str | None] = field(default_factory=dict)  # plug-in -> why not timed
    _medians: dict[tuple[str, int], float] = field(default_factory=dict)
    _models: dict[tuple[str, int, str, str], CostModel | None] = field(default_factory=dict)
    _generated: tuple[tuple[int, int, str], Problem] | None = None
    _problem: tuple[tuple[int, int, str, str], Problem, Reference] | None = None
    _training: dict[tuple[Any, ...], tuple[Problem, TrainResult]] = field(default_factory=dict)

    def load(self) -> None:
        """Read what the folder holds: timed and skipped cells; a file that cannot be read is
        set aside (its cell is timed again) and named in the notes."""
        records, damaged = read_cells(self.folder) if self.folder.exists() else ({}, [])
        self.notes.extend(set_aside(path, why) for path, why in damaged)
        for record in records.values():
            if record.get("status") == "timed":
                self.done[record["cell_id"]] = record
            elif record.get("status") == "skipped":
                self.skips[record["cell_id"]] = record

    def plugin_refused(self, backend: str) -> str | None:
        """Why a backend that is not loopvec's own is never timed: it fails `loopvec check`
        (run once a process, before its first cell); None if it passes, or is loopvec's."""
        if get_backend(backend).own:
            return None
        if backend not in self.refused:
            # `call`: numpy in, numpy out, through the backend's own arrays
            failed = check(functools.partial(call, backend)).failed
            first = failed[0] if failed else None
            self.refused[backend] = (
                f"fails loopvec check ({first.name}: {first.detail.splitlines()[0]})"
                if first
                else None
            )
        return self.refused[backend]

    def not_timed(self, cell: AnyCell) -> str | None:
        """Why `cell` is not timed in this pass, decided before anything is built: its passes
        were resumed, or it is a plug-in's that `plugin_refused`; the words of its skip."""
        if self.timed_before(cell):
            return self.resumed(cell)
        if why := self.plugin_refused(cell.backend):  # a plug-in that is wrong is never timed
            return self.skip_this_pass(cell, why)
        return None

    def failed(self, cell: AnyCell, error: Exception, prefix: str = "") -> str | None:
        """Record `cell` as failed. A plug-in's failure is its own: its other cells are refused
        in this pass, and the words of the skip are returned (the run goes on without it); for
        loopvec's own backends None (the run stops: it is loopvec's bug)."""
        reason = f"{prefix}{type(error).__name__}: {error}"
        self.write_cell(cell, "failed", reason=reason)
        if get_backend(cell.backend).own:
            return None
        self.refused[cell.backend] = f"failed an earlier cell ({reason.splitlines()[0]})"
        return f"{cell.cell_id}: {reason}"

    # What is resumed, and what the earlier passes decided

    def provenance(self, cell: AnyCell) -> dict[str, Any]:
        """What a record of `cell` says of its origin: format, run, machine and code, git."""
        return {
            "format": FORMAT,
            "run": self.folder.name,
            "machine_fingerprint": self.machine["fingerprint"],
            **_code(cell.backend, training=isinstance(cell, TrainingCell)),
            **self.git,
            **(self.data.provenance() if self.settings.data else {}),
        }

    @functools.cached_property
    def data(self) -> UserData:
        """The --data set, loaded once in this process, outside any timing."""
        return self.settings.load_data()

    def stale(self, cell: AnyCell, record: dict[str, Any]) -> str | None:
        return resume_refused(record, cell.params(), self.provenance(cell))

    def earlier_passes(self, cell: AnyCell) -> list[dict[str, Any]]:
        """The passes of `cell` this folder holds for the same parameters, machine state and
        code, other than this one. Where it holds a record that differs, `retimed` says how."""
        record = self.done.get(cell.cell_id)
        if record is None:
            return []
        if why := self.stale(cell, record):
            self.retimed[cell.cell_id] = why
            return []
        return [p for p in record["passes"] if p["pass"] != self.number]

    def history(self, cell: AnyCell) -> History:
        """What the earlier passes of this run did with `cell`: a skip counts from pass 2 on
        (pass 1 decides afresh), and only for the same machine and code."""
        record = self.skips.get(cell.cell_id)
        skipped = (
            None
            if record is None or self.number == 1 or self.stale(cell, record)
            else str(record["reason"])
        )
        return History(timed=bool(self.earlier_passes(cell)), skipped=skipped)

    def timed_before(self, cell: AnyCell) -> bool:
        """Whether this pass of `cell` is already in the folder, for this machine and code,
        timed by an earlier process (one this process timed is not resumed: its later blocks
        are the blocks its timing ended before)."""
        record = self.done.get(cell.cell_id)
        if record is None or cell.cell_id in self.timed_here:
            return False
        self.earlier_passes(cell)  # notes in `retimed` why an earlier record is not used
        return cell.cell_id not in self.retimed and any(
            p["pass"] == self.number for p in record["passes"]
        )

    def resumed(self, cell: AnyCell) -> str:
        """Count `cell` as resumed; the words of its skip."""
        message = f"pass {self.number} already timed in {self.folder}"
        self.progress.decided(cell.cell_id, "resumed", message)
        return f"{cell.cell_id}: {message}"

    def check_budget(self, cell: AnyCell, reason: str | None, **fields: Any) -> str | None:
        """The budget's verdict (`rules.as_earlier_passes`) on `cell`, whose prediction in this
        pass gives `reason`: why it is skipped, recorded where this pass decided it; or None."""
        history = self.history(cell)
        verdict = as_earlier_passes(reason, history)
        if verdict is None:
            return None
        if history.skipped is None:
            return self.skip(cell, verdict, **fields)
        self.progress.decided(cell.cell_id, "skipped", verdict)
        return f"{cell.cell_id}: {verdict}"

    def skip(self, cell: AnyCell, reason: str, **fields: Any) -> str:
        """Record `cell` as skipped with its reason; the words of its skip."""
        self.write_cell(cell, "skipped", reason=reason, **fields)
        self.progress.decided(cell.cell_id, "skipped", reason)
        return f"{cell.cell_id}: {reason}"

    def skip_this_pass(self, cell: AnyCell, reason: str, **fields: Any) -> str:
        """Skip `cell` for a reason of this pass (it does not fit in the free memory now, a
        plug-in failed in this pass): recorded, unless earlier passes timed it (they are kept;
        this pass alone cannot run). The words of its skip."""
        if not self.earlier_passes(cell):
            return self.skip(cell, reason, **fields)
        reason = f"{reason} (pass {self.number} only)"
        self.progress.decided(cell.cell_id, "skipped", reason)
        return f"{cell.cell_id}: {reason}"

    # Costs: the cost models, and the rests between blocks

    def settle(self, cell: AnyCell) -> None:
        """Wait if the block before ran another backend on several threads: its thread pools
        may still spin on the cores `cell` is about to use (`rest_before_s`)."""
        before, self.last_block = self.last_block, (cell.backend, cell.threads)
        if max_s := rest_before_s(before, cell.backend):
            self.settled_s += wait_until_quiet(max_s)

    def median_s(self, record: dict[str, Any]) -> float:
        key = (record["cell_id"], len(record["passes"]))
        if key not in self._medians:
            self._medians[key] = time_estimate(samples_of(record)).value
        return self._medians[key]

    def model(self, cell: AnyCell) -> CostModel | None:
        """The cost model of `cell`'s backend at its threads and dtype (a training cell: float64,
        course layout), from the gradient cells timed so far (kept until another of them is)."""
        key = _model_key(cell)
        if key not in self._models:
            same = [
                record
                for record in self.done.values()
                if record.get("kind") != "training"
                and (record["backend"], record["threads"], record["dtype"], record["layout"]) == key
            ]
            self._models[key] = fit_cost_model(
                [r["m"] for r in same], [r["n"] for r in same], [self.median_s(r) for r in same]
            )
        return self._models[key]

    def predicted_bytes(self, cell: Cell) -> int | None:
        """The memory `cell`'s backend takes beyond X (`memory.backend_bytes`), predicted from its
        cells of the same dtype and layout measured so far, at any thread count
        (`memory.fit_memory_model`); None before two sizes are."""
        key = (cell.backend, cell.dtype, cell.layout)
        measured = [
            (record["m"], record["n"], used)
            for record in self.done.values()
            if record.get("kind") != "training"
            and (record["backend"], record["dtype"], record["layout"]) == key
            and (used := backend_bytes(record)) is not None
        ]
        if not measured:
            return None
        m_values, n_values, used_bytes = (list(column) for column in zip(*measured, strict=True))
        model = fit_memory_model(m_values, n_values, used_bytes)
        return None if model is None else round(model.predict_s(cell.m, cell.n))

    def time_left_s(self, cells: list[AnyCell]) -> float:
        """Estimated wall time of `cells`: from the cost models, else the mean cell so far."""
        mean_s = self.progress.mean_cell_s()
        estimates = [self.wall_s(c) for c in cells]
        return sum(mean_s if e is None else e for e in estimates)

    def wall_s(self, cell: AnyCell) -> float | None:
        model = self.model(cell)
        settings = self.settings
        if isinstance(cell, Cell):
            return cell_pass_s(
                model, cell, settings.budget_s, settings.pass_time_s, settings.blocks
            )
        if model is None:
            return None
        call_s = model.predict_s(cell.m, cell.n)
        if training_reason(cell, call_s, settings.passes, settings.train_budget_s):
            return 0.0  # the budget will skip it
        run_s = cell.iterations * call_s
        return (1 + training_rounds(run_s, settings.pass_time_s)) * run_s  # checked + timed

    # Problems, built outside the timing

    def training_problem(self, cell: TrainingCell) -> tuple[Problem, TrainResult]:
        """The dataset of `cell` as a problem starting at w = 0, b = 0 (the course's start), and
        the reference run on it: numpy_vectorized with the same settings. Built once per dataset.

        ImportError if the dataset needs a package that is not installed.
        """
        self._problem = self._generated = None  # the grid is done: free its last problems
        key = (cell.dataset, cell.m, cell.n, cell.iterations, cell.learning_rate, cell.record_every)
        if key not in self._training:
            if cell.dataset == "data":  # in the course's layout, as every training problem
                data: Any = dataclasses.replace(self.data, X=np.ascontiguousarray(self.data.X))
            elif cell.dataset == "synthetic":
                data = loopvec.make_problem(cell.m, cell.n, seed=0)
            else:
                data = load(cell.dataset)
            problem = Problem(w=np.zeros((cell.n, 1)), b=0.0, X=data.X, Y=data.Y)
            reference = Descent(REFERENCE, problem.w, problem.b, data.X, data.Y).run(
                learning_rate=cell.learning_rate,
                iterations=cell.iterations,
                record_every=cell.record_every,
            )
            self._training[key] = (problem, reference)
        return self._training[key]

    def problem(self, cell: Cell) -> tuple[Problem, Reference]:
        """The problem of `cell`'s size in its dtype, and the reference gradient (in float64, of
        the same values), built once per size and dtype. The generated float64 problem is kept
        while the other dtypes of its size are timed: generating X, and the fresh memory it
        takes, is most of a large cell's cost."""
        key, size = (cell.m, cell.n, cell.dtype, cell.layout), (cell.m, cell.n, cell.layout)
        if self._problem is None or self._problem[0] != key:
            self._problem = None  # free the previous problem before building a larger one
            if self._generated is None or self._generated[0] != size:
                self._generated = None
                generated = (
                    self._data_problem() if self.settings.data else make_problem(cell.m, cell.n)
                )
                in_order = np.asfortranarray if cell.layout == "F" else np.ascontiguousarray
                generated = dataclasses.replace(generated, X=in_order(generated.X))
                self._generated = (size, generated)
            problem = self._generated[1].astype(cell.dtype)
            self._problem = (key, problem, Reference.of(problem))  # of its values exactly
        return self._problem[1], self._problem[2]

    def _data_problem(self) -> Problem:
        """The gradient problem of the --data set: its X and Y as loaded (X in Fortran order,
        the transpose of the rows), at a small random w and b seeded by the data's hash (not at
        zero, so that every term of the sum matters, as in `make_problem`); for C order the
        caller copies X, outside the timing."""
        data = self.data
        rng = np.random.default_rng(int(data.sha256[:16], 16))
        w = 0.01 * rng.standard_normal((data.n, 1))
        return Problem(w=w, b=0.01 * float(rng.standard_normal()), X=data.X, Y=data.Y)

    def available_bytes(self, cell: Cell) -> int:
        """Free memory, counting the cached problems as free where this cell's size replaces
        them. Within a size they stay counted as used: a framework's transient buffers (XLA's at
        m = 1e6, n = 1000) are not in the memory rule, and this margin has kept them in memory."""
        available = int(psutil.virtual_memory().available)
        if self._generated is not None and self._generated[0] != (cell.m, cell.n, cell.layout):
            cached = [c[1] for c in (self._generated, self._problem) if c is not None]
            available += sum({id(p.X): p.X.nbytes for p in cached}.values())
        return available

    # Cell files

    def pass_entry(self, cell: AnyCell, **fields: Any) -> dict[str, Any]:
        """What one pass of `cell` records besides its samples: which pass, which process, when,
        how loaded the machine was, where in the pass order."""
        blocks = range(self.settings.blocks) if isinstance(cell, Cell) else [0]
        return {
            "pass": self.number,
            "pid": os.getpid(),
            "pass_started_at": self.started_at,
            "load_avg_1m": os.getloadavg()[0],
            "order": [self.positions.get((cell.cell_id, b)) for b in blocks],
            **fields,
        }

    def write_cell(self, cell: AnyCell, status: str, **fields: Any) -> None:
        """Write the file of `cell` (ResultsWriteError if it cannot be: the run stops)."""
        record = {
            "cell_id": cell.cell_id,
            **cell.params(),
            "host": self.machine["host"],
            "grid": self.settings.run_grid,
            "status": status,
            "reason": None,
            "finished_at": utc_now(),
            "loopvec_version": loopvec.__version__,
            **self.provenance(cell),
            **fields,
        }
        write_json_atomic(self.folder / f"{cell.cell_id}.json", record)
        if status == "timed":
            self.done[cell.cell_id] = record
            self.timed_here.add(cell.cell_id)
            if isinstance(cell, Cell):
                # Only its model changes: refitting every model after each cell made the
                # progress line's estimate of the time left 3.5 s of a warm 66 s smoke pass
                # (0.17 s so), and it grows with the square of the grid.
                self._models.pop(_model_key(cell), None)
        elif status == "failed":
            self.progress.decided(cell.cell_id, "failed", str(fields.get("reason") or ""))

    def write_pass(self, cell: AnyCell, entry: dict[str, Any], **fields: Any) -> None:
        """Add this pass (`entry`, with its samples) to the passes of `cell` kept before."""
        passes = sorted([*self.earlier_passes(cell), entry], key=lambda p: p["pass"])
        peaks = peaks_of_passes(passes)
        self.write_cell(
            cell, "timed", passes=passes, compile_s=passes[0]["compile_s"], **peaks, **fields
        )
        detail = f"median {format_seconds(self.median_s(self.done[cell.cell_id]))} over "
        detail += f"{len(passes)} pass(es)"
        if cell.cell_id in self.retimed:
            detail += f" (not resumed: {self.retimed[cell.cell_id]})"
        self.progress.decided(cell.cell_id, "timed", detail)


@functools.cache
def _code(backend: str, *, training: bool) -> dict[str, Any]:
    return code_identity(backend, training=training)  # read and hashed once per run


def _model_key(cell: AnyCell) -> tuple[str, int, str, str]:
    """The cost model `cell`'s time is predicted by (a training cell: float64, course layout)."""
    dtype, layout = (cell.dtype, cell.layout) if isinstance(cell, Cell) else ("float64", "C")
    return cell.backend, cell.threads, dtype, layout
