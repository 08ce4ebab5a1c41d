"""The benchmark grid's plumbing: options, passes, parametrization, budget, resume, cell files.

    pytest bench --grid quick                 # a named grid from loopvec.grid.GRIDS
    pytest bench --m 1000,1e6 --n 100         # explicit sizes (grid "custom-" + their hash)
    pytest bench --backends numba_loops --threads 1 --budget 0.2 --fresh
    pytest bench/test_gradient.py              # the gradient grid alone, no training runs
    pytest bench --passes 3                    # passes (default: the grid's)
    pytest bench --update-reference            # time into results/reference/ (re-make it)

A run is several passes. `pytest bench` without --pass is the driver: it checks the options, takes
the run folder's lock (`loopvec.runlock`) and runs each pass as a child process (`pytest bench ...
--pass K`), one after the other, so that every pass gets a fresh process (memory layout, hash
seeds, JIT caches loaded anew). A pass visits the grid in the order
of `loopvec.grid.pass_order`: the backends of one problem and thread count side by side, in
interleaved blocks; each block is one pytest-benchmark measurement (pedantic rounds). Training
cells come after the grid, one measurement per cell and pass.

Every cell is written to its own file in the run folder when its pass is done: under
--results-dir (default results/), a folder named by host, CPU, cores, grid and the machine
fingerprint (`loopvec.provenance.run_name`). The file keeps every round of every block of every
pass, with the pass's pid, start time and load average. A rerun resumes a cell's pass only when
its machine fingerprint, its backend's code fingerprint and every parameter match; any other cell
is timed again from pass 1 on, and the progress line says why. A run interrupted in pass 3
resumes in pass 3. SIGTERM is turned into KeyboardInterrupt so that pytest still finishes the
session and writes what it has.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import functools
import itertools
import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numba
import numpy as np
import psutil
import pytest
from timing import wait_until_quiet

import loopvec
from loopvec.agreement import REFERENCE, Reference
from loopvec.backends import BACKENDS, get_kernel
from loopvec.datasets import load
from loopvec.grid import (
    DEFAULT_BLOCKS,
    DEFAULT_BUDGET_S,
    DEFAULT_TRAIN_BUDGET_S,
    GRIDS,
    LAYOUTS,
    Cell,
    CostModel,
    RoundPlan,
    TrainingCell,
    cell_pass_s,
    default_threads,
    fit_cost_model,
    make_cells,
    make_training_cells,
    pass_order,
    rest_before_s,
    training_cell_s,
    training_order,
    training_rounds,
)
from loopvec.machine import machine_record, read_bandwidths
from loopvec.plots import format_seconds
from loopvec.problem import Problem
from loopvec.provenance import FORMAT, code_identity, git_state, run_name
from loopvec.results import (
    DAMAGED,
    MACHINE_FILE,
    RAW,
    REFERENCE_RUN,
    TEMPORARY_GLOB,
    ResultsWriteError,
    cell_paths,
    read_cells,
    samples_of,
    write_json_atomic,
)
from loopvec.runlock import RunInUseError, run_lock
from loopvec.sources import json_digest
from loopvec.stats import time_estimate
from loopvec.training import Descent, TrainResult
from loopvec.validation import DTYPES

# Option types: a bad value stops pytest's argument parsing with one line that names the option,
# what it expects and what it got ("argument --m: expected ...; got '0'"), before any work.


def _int_list(text: str) -> list[int]:
    """'1,10,1e6' -> [1, 10, 1000000]; exponents are welcome in sizes."""
    try:
        values = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        values = []
    if not values or any(not math.isfinite(v) or v < 1 or v != int(v) for v in values):
        raise argparse.ArgumentTypeError(
            f"expected positive whole numbers like 1,10,1e6; got {text!r}"
        )
    return [int(v) for v in values]


def _positive(text: str) -> int:
    values = _int_list(text)
    if len(values) != 1:
        raise argparse.ArgumentTypeError(f"expected one positive whole number; got {text!r}")
    return values[0]


def _limit_s(text: str) -> float:
    """Seconds > 0, or inf for no limit."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not value > 0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"expected seconds > 0, or inf for no limit; got {text!r}")
    return value


def _choices(allowed: Sequence[str]) -> Callable[[str], list[str]]:
    """An option type: a comma-separated subset of `allowed`, or a usage error naming them."""

    def parse(text: str) -> list[str]:
        values = list(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
        wrong = [v for v in values if v not in allowed]
        if wrong or not values:
            raise argparse.ArgumentTypeError(f"expected some of {', '.join(allowed)}; got {text!r}")
        return values

    return parse


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("loopvec", "loopvec benchmark grid")
    grids = "; ".join(f"{name}: {grid.summary}" for name, grid in GRIDS.items())
    group.addoption("--grid", default="default", choices=list(GRIDS), help=grids)
    group.addoption("--m", type=_int_list, help="example counts, e.g. 1,1000,1e6 (overrides grid)")
    group.addoption("--n", type=_int_list, help="feature counts, e.g. 1,100 (overrides grid)")
    group.addoption(
        "--backends", type=_choices(list(BACKENDS)), help="backend names (default: all)"
    )
    group.addoption("--threads", type=_int_list, help="thread counts (default: 1 and all cores)")
    group.addoption(
        "--dtypes",
        type=_choices(DTYPES),
        default=list(DTYPES),
        help="float64,float32 (each where a backend is registered for it)",
    )
    group.addoption(
        "--layouts",
        type=_choices(LAYOUTS),
        default=list(LAYOUTS),
        help="memory orders of X: C (the course's), F (data.T of an (m, n) array); each backend "
        "in those it reads in place (the registry's layouts)",
    )
    group.addoption(
        "--budget",
        type=_limit_s,
        default=DEFAULT_BUDGET_S,
        help="skip cells predicted slower than this per call (seconds; inf: no budget)",
    )
    group.addoption(
        "--train-budget",
        type=_limit_s,
        default=DEFAULT_TRAIN_BUDGET_S,
        help="skip training cells whose runs over all passes (a checked run, then one a pass "
        "at least) are predicted to take longer (seconds)",
    )
    group.addoption("--results-dir", type=Path, default=Path("results"), help="where to write")
    group.addoption("--fresh", action="store_true", help="delete this run's cells, start over")
    group.addoption(
        "--update-reference",
        action="store_true",
        help=f"time into <results-dir>/{REFERENCE_RUN}/, the committed reference run (re-make it)",
    )
    group.addoption(
        "--no-bandwidth", action="store_true", help="skip the memory bandwidth measurement"
    )
    group.addoption("--passes", type=_positive, help="passes, each a process (default: grid's)")
    group.addoption("--pass", type=_positive, dest="pass_number", help="run this pass alone")
    group.addoption(
        "--blocks", type=_positive, default=DEFAULT_BLOCKS, help="interleaved blocks per pass"
    )
    group.addoption("--order-seed", type=int, default=0, help="seed of the passes' orders")


@dataclass
class BenchRun:
    """The state of one pass of a run: where it writes, what is done, what each backend costs."""

    grid: str
    folder: Path
    budget_s: float
    train_budget_s: float
    pass_time_s: float  # time per cell in one pass: the grid's max time over its passes
    pass_number: int
    passes: int
    blocks: int
    seed: int
    machine: dict[str, Any]  # the machine record; its bandwidth is measured at session start
    git: dict[str, Any]  # the commit of the checkout that runs the bench, and whether it is dirty
    started_at: str = field(default_factory=lambda: _now())  # noqa: PLW0108 (defined below)
    cells: list[Cell | TrainingCell] = field(default_factory=list)
    done: dict[str, dict[str, Any]] = field(default_factory=dict)  # cell_id -> timed record
    skips: dict[str, dict[str, Any]] = field(default_factory=dict)  # cell_id -> skipped record
    retimed: dict[str, str] = field(default_factory=dict)  # cell_id -> why it was not resumed
    positions: dict[tuple[str, int], int] = field(default_factory=dict)  # place in pass order
    timing: dict[str, Timing] = field(default_factory=dict)  # cells being timed in this pass
    predicted: dict[str, float | None] = field(default_factory=dict)  # by the cost model
    written: set[str] = field(default_factory=set)  # cells whose pass was written, to report
    compile_s: dict[tuple[str, str, str], float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    notes: list[str] = field(default_factory=list)  # said at the start and in the summary
    started_s: float = field(default_factory=time.perf_counter)
    last_block: tuple[str, int] | None = None  # (backend, threads) of the block timed last
    settled_s: float = 0.0  # waited for other backends' thread pools to sleep, untimed
    _medians: dict[tuple[str, int], float] = field(default_factory=dict)
    _models: dict[tuple[str, int, str, str], CostModel | None] = field(default_factory=dict)
    _generated: tuple[tuple[int, int, str], Problem] | None = None
    _problem: tuple[tuple[int, int, str, str], Problem, Reference] | None = None
    _training: dict[tuple[Any, ...], tuple[Problem, TrainResult]] = field(default_factory=dict)

    def provenance(self, cell: Cell | TrainingCell) -> dict[str, Any]:
        """What a record of `cell` says of its origin: format, run, machine and code, git."""
        training = isinstance(cell, TrainingCell)
        return {
            "format": FORMAT,
            "run": self.folder.name,
            "machine_fingerprint": self.machine["fingerprint"],
            **_code(cell.backend, training=training),
            **self.git,
        }

    def stale(self, cell: Cell | TrainingCell, record: dict[str, Any]) -> str | None:
        """Why `record` (of `cell`, from this folder) is not this machine's and code's timing of
        these parameters, or None if it is."""
        mine = self.provenance(cell)
        if record.get("format") != FORMAT:
            return "its earlier cell file is of an older format"
        if record.get("machine_fingerprint") != mine["machine_fingerprint"]:
            return f"machine changed (was {record.get('machine_fingerprint')})"
        if record.get("code_fingerprint") != mine["code_fingerprint"]:
            before, now = record.get("code_modules") or {}, mine["code_modules"]
            changed = sorted(k for k in before.keys() | now.keys() if before.get(k) != now.get(k))
            return f"code changed: {', '.join(changed) or 'versions ' + str(mine['code_versions'])}"
        if any(record.get(k) != v for k, v in cell.params().items()):
            return "parameters changed"
        return None

    def earlier_passes(self, cell: Cell | TrainingCell) -> list[dict[str, Any]]:
        """The passes of `cell` this folder holds for the same parameters, machine state and
        code, other than this one. Where it holds a record that differs, `retimed` says how."""
        record = self.done.get(cell.cell_id)
        if record is None:
            return []
        if why := self.stale(cell, record):
            self.retimed[cell.cell_id] = why
            return []
        return [p for p in record["passes"] if p["pass"] != self.pass_number]

    def skipped_before(self, cell: Cell | TrainingCell) -> str | None:
        """Why an earlier pass of this run skipped `cell` (same machine and code), or None: a
        cell is skipped, or timed, in every pass alike."""
        record = self.skips.get(cell.cell_id)
        if record is None or self.pass_number == 1 or self.stale(cell, record):
            return None
        return str(record["reason"])

    def check_budget(self, cell: Cell | TrainingCell, reason: str | None, **fields: Any) -> None:
        """Skip `cell` for `reason` in its first pass; in later passes as the first pass did.
        A cell timed in earlier passes is timed in this one too, whatever the prediction."""
        if self.earlier_passes(cell):
            return
        if before := self.skipped_before(cell):
            pytest.skip(f"{cell.cell_id}: {before}")
        if reason:
            self.skip(cell, reason, **fields)

    def settle(self, cell: Cell | TrainingCell) -> None:
        """Wait if the block before ran another backend on several threads: its thread pools
        may still spin on the cores `cell` is about to use (`rest_before_s`)."""
        before, self.last_block = self.last_block, (cell.backend, cell.threads)
        if max_s := rest_before_s(before, cell.backend):
            self.settled_s += wait_until_quiet(max_s)

    def timed_before(self, cell: Cell | TrainingCell) -> bool:
        """Whether this pass of `cell` is already in the folder, for this machine and code."""
        record = self.done.get(cell.cell_id)
        if record is None:
            return False
        self.earlier_passes(cell)  # notes in `retimed` why an earlier record is not used
        return cell.cell_id not in self.retimed and any(
            p["pass"] == self.pass_number for p in record["passes"]
        )

    def median_s(self, record: dict[str, Any]) -> float:
        key = (record["cell_id"], len(record["passes"]))
        if key not in self._medians:
            self._medians[key] = time_estimate(samples_of(record)).value
        return self._medians[key]

    def model(self, cell: Cell | TrainingCell) -> CostModel | None:
        """The cost model of `cell`'s backend at its threads and dtype (a training cell: float64,
        course layout), from the gradient cells timed so far (kept until another is timed)."""
        dtype, layout = (cell.dtype, cell.layout) if isinstance(cell, Cell) else ("float64", "C")
        key = (cell.backend, cell.threads, dtype, layout)
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

    def time_left_s(self, cells: list[Cell | TrainingCell]) -> float:
        """Estimated wall time of `cells`: from the cost models, else the mean cell so far."""
        finished = sum(self.counts.values())
        mean_s = (time.perf_counter() - self.started_s) / max(finished, 1)
        estimates = [self.wall_s(c) for c in cells]
        return sum(mean_s if e is None else e for e in estimates)

    def wall_s(self, cell: Cell | TrainingCell) -> float | None:
        model = self.model(cell)
        if isinstance(cell, Cell):
            return cell_pass_s(model, cell, self.budget_s, self.pass_time_s, self.blocks)
        if model is None:
            return None
        run_s = cell.iterations * model.predict_s(cell.m, cell.n)
        if training_cell_s(run_s, self.passes) > self.train_budget_s:
            return 0.0
        return (1 + training_rounds(run_s, self.pass_time_s)) * run_s  # checked run + timed

    def training_problem(self, cell: TrainingCell) -> tuple[Problem, TrainResult]:
        """The dataset of `cell` as a problem starting at w = 0, b = 0 (the course's start), and
        the reference run on it: numpy_vectorized with the same settings. Built once per dataset.

        ImportError if the dataset needs a package that is not installed.
        """
        self._problem = self._generated = None  # the grid is done: free its last problems
        key = (cell.dataset, cell.m, cell.n, cell.iterations, cell.learning_rate, cell.record_every)
        if key not in self._training:
            data = (
                loopvec.make_problem(cell.m, cell.n, seed=0)
                if cell.dataset == "synthetic"
                else load(cell.dataset)
            )
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
                generated = loopvec.make_problem(cell.m, cell.n, seed=0)
                if cell.layout == "F":
                    generated = dataclasses.replace(generated, X=np.asfortranarray(generated.X))
                self._generated = (size, generated)
            problem = self._generated[1].astype(cell.dtype)
            self._problem = (key, problem, Reference.of(problem))  # of its values exactly
        return self._problem[1], self._problem[2]

    def available_bytes(self, cell: Cell) -> int:
        """Free memory, counting the cached problems as free where this cell's size replaces
        them. Within a size they stay counted as used: a framework's transient buffers (XLA's at
        m = 1e6, n = 1000) are not in the memory rule, and this margin has kept them in memory."""
        available = int(psutil.virtual_memory().available)
        if self._generated is not None and self._generated[0] != (cell.m, cell.n, cell.layout):
            cached = [c[1] for c in (self._generated, self._problem) if c is not None]
            available += sum({id(p.X): p.X.nbytes for p in cached}.values())
        return available

    def pass_entry(self, cell: Cell | TrainingCell, **fields: Any) -> dict[str, Any]:
        """What one pass of `cell` records besides its samples: which pass, which process, when,
        how loaded the machine was, where in the pass order."""
        blocks = range(self.blocks) if isinstance(cell, Cell) else [0]
        return {
            "pass": self.pass_number,
            "pid": os.getpid(),
            "pass_started_at": self.started_at,
            "load_avg_1m": os.getloadavg()[0],
            "order": [self.positions.get((cell.cell_id, b)) for b in blocks],
            **fields,
        }

    def write_cell(self, cell: Cell | TrainingCell, status: str, **fields: Any) -> None:
        record = {
            "cell_id": cell.cell_id,
            **cell.params(),
            "host": self.machine["host"],
            "grid": self.grid,
            "status": status,
            "reason": None,
            "finished_at": _now(),
            "loopvec_version": loopvec.__version__,
            **self.provenance(cell),
            **fields,
        }
        try:
            write_json_atomic(self.folder / f"{cell.cell_id}.json", record)
        except ResultsWriteError as error:
            pytest.exit(f"loopvec: stopping the run: {error}", returncode=3)
        if status == "timed":
            self.done[cell.cell_id] = record
            self.written.add(cell.cell_id)
            self._models.clear()

    def write_pass(self, cell: Cell | TrainingCell, entry: dict[str, Any], **fields: Any) -> None:
        """Add this pass (`entry`, with its samples) to the passes of `cell` kept before."""
        passes = sorted([*self.earlier_passes(cell), entry], key=lambda p: p["pass"])
        self.write_cell(cell, "timed", passes=passes, compile_s=passes[0]["compile_s"], **fields)

    def skip(self, cell: Cell | TrainingCell, reason: str, **fields: Any) -> None:
        """Record `cell` as skipped with its reason, then skip it visibly."""
        self.write_cell(cell, "skipped", reason=reason, **fields)
        pytest.skip(f"{cell.cell_id}: {reason}")


@dataclass
class Timing:
    """One gradient cell while its blocks are timed in this pass."""

    kernel: Callable[..., Any]
    args: tuple[Any, ...] | None  # None: made again for each block (a copy of the problem)
    plan: RoundPlan
    entry: dict[str, Any]  # the pass entry, without its blocks
    blocks: list[list[float]] = field(default_factory=list)


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


@functools.cache
def _code(backend: str, *, training: bool) -> dict[str, Any]:
    return code_identity(backend, training=training)  # read and hashed once per run


RUN = pytest.StashKey[BenchRun]()
_CONFIG: list[pytest.Config] = []  # the logreport hook is given no config; set at configure


def _interrupt(signum: int, frame: object) -> None:
    # pytest finishes the session on KeyboardInterrupt (raw JSON, summary); SIGTERM would not.
    raise KeyboardInterrupt(f"signal {signum}")


def _grid_name(config: pytest.Config) -> str:
    """The grid's name, or for explicit sizes "custom-" and a hash of them: runs of other sizes
    never merge into one folder."""
    m_values, n_values = config.getoption("--m"), config.getoption("--n")
    if not (m_values or n_values):
        name: str = config.getoption("--grid")
        return name
    grid = GRIDS[config.getoption("--grid")]
    sizes = [sorted(set(m_values or grid.m_values)), sorted(set(n_values or grid.n_values))]
    return f"custom-{json_digest(sizes)[:6]}"


def _passes(config: pytest.Config) -> int:
    passes: int = config.getoption("--passes") or GRIDS[config.getoption("--grid")].passes
    return passes


def _run_folder(config: pytest.Config, machine: dict[str, Any]) -> Path:
    results_dir: Path = config.getoption("--results-dir")
    if config.getoption("--update-reference"):
        return results_dir / REFERENCE_RUN
    return results_dir / run_name(machine, _grid_name(config))


def _check_options(config: pytest.Config) -> None:
    """What parsing each option alone cannot check; before any work or write."""
    passes, pass_number = _passes(config), config.getoption("pass_number") or 1
    if pass_number > passes:
        raise pytest.UsageError(f"--pass: this run has {passes} passes; got {pass_number}")
    _threads(config)
    if config.getoption("benchmark_disable", False):
        raise pytest.UsageError(
            "--benchmark-disable: loopvec's bench exists to time the grid; to check every "
            "backend against the reference without timing, run the tests (python -m nox -s tests)"
        )
    results_dir: Path = config.getoption("--results-dir")
    if results_dir.exists() and not results_dir.is_dir():
        raise pytest.UsageError(f"--results-dir: expected a folder; got the file {results_dir}")


_UNUSED = "pytest_benchmark.logger.PytestBenchmarkWarning"
#: Set for the passes a driver runs: the run folder whose lock the driver holds for them.
_LOCKED = "LOOPVEC_RUN_LOCKED"


@contextlib.contextmanager
def _lock(folder: Path) -> Iterator[None]:
    """The run folder's lock (`loopvec.runlock`), or a usage error naming its holder."""
    try:
        with run_lock(folder):
            yield
    except RunInUseError as error:
        raise pytest.UsageError(f"loopvec: {error}") from None
    except OSError as error:
        raise pytest.UsageError(f"--results-dir: cannot write {folder}: {error}") from None


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> int | None:
    """Without --pass, run the passes one after the other, each in a child process, holding
    the run folder's lock for all of them."""
    if config.getoption("pass_number") or config.option.collectonly or config.option.help:
        return None
    _check_options(config)
    signal.signal(signal.SIGTERM, _interrupt)
    folder = _run_folder(config, machine_record(measure_bandwidth=False)).absolute()
    args = list(config.invocation_params.args)
    with _lock(folder):
        for number in range(1, _passes(config) + 1):
            # --fresh clears the run before pass 1, not again before each pass
            child_args = args if number == 1 else [a for a in args if a != "--fresh"]
            command = [sys.executable, "-m", "pytest", *child_args, f"--pass={number}"]
            env = {**os.environ, _LOCKED: str(folder)}
            child = subprocess.Popen(command, cwd=config.invocation_params.dir, env=env)
            try:
                code = child.wait()
            except KeyboardInterrupt:  # Ctrl-C reaches the child too; SIGTERM is passed on
                child.terminate()
                child.wait()
                return int(pytest.ExitCode.INTERRUPTED)
            if code not in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
                return code
    return int(pytest.ExitCode.OK)


def pytest_runtest_setup(item: pytest.Item) -> None:
    """A pass whose driver died (killed) stops before its next cell, keeping what it wrote:
    the driver's lock is gone, and another run may now time into the folder."""
    if os.environ.get(_LOCKED) and os.getppid() != _PARENT[0]:
        pytest.exit("loopvec: the run that started this pass has ended; stopping", returncode=3)


_PARENT = [os.getppid()]  # this process's parent when it started


def pytest_configure(config: pytest.Config) -> None:
    _check_options(config)
    grid_name = _grid_name(config)
    passes, pass_number = _passes(config), config.getoption("pass_number") or 1
    # Interrupted before a cell calls its benchmark (while its problem is built, or as it is
    # resumed), pytest-benchmark warns that the fixture was not used: not an error of the run.
    config.addinivalue_line("filterwarnings", f"ignore:Benchmark fixture was not used:{_UNUSED}")
    # The grid's time per cell, unless the command line says otherwise (pytest-benchmark reads
    # the option after this hook: its pytest_configure runs last).
    if not any(a.startswith("--benchmark-max-time") for a in config.invocation_params.args):
        config.option.benchmark_max_time = str(GRIDS[config.getoption("--grid")].max_time_s)
    machine = machine_record(measure_bandwidth=False)  # the bandwidth at session start
    folder = _run_folder(config, machine)
    update_reference = config.getoption("--update-reference")
    if not config.option.collectonly and os.environ.get(_LOCKED) != str(folder.absolute()):
        lock = _lock(folder)  # a pass run alone holds the lock itself, until unconfigure
        lock.__enter__()
        config.add_cleanup(lambda: lock.__exit__(None, None, None))
    run = BenchRun(
        grid=grid_name,
        folder=folder,
        budget_s=config.getoption("--budget"),
        train_budget_s=config.getoption("--train-budget"),
        pass_time_s=float(config.getoption("benchmark_max_time")) / passes,
        pass_number=pass_number,
        passes=passes,
        blocks=config.getoption("--blocks"),
        seed=config.getoption("--order-seed"),
        machine=machine,
        git=git_state(Path(__file__).parent),
    )
    if config.getoption("--fresh") and not config.option.collectonly:
        for path in [*cell_paths(folder), folder / MACHINE_FILE, *folder.glob(f"{RAW}/*.json")]:
            path.unlink(missing_ok=True)
    if not config.option.collectonly:
        _clean_temporaries(folder)
    if note := _check_same_machine(folder, machine, update_reference):
        run.notes.append(note)
    records, damaged = read_cells(folder) if folder.exists() else ({}, [])
    run.notes.extend(_set_aside(path, why) for path, why in damaged)
    for record in records.values():
        if record.get("status") == "timed":
            run.done[record["cell_id"]] = record
        elif record.get("status") == "skipped":
            run.skips[record["cell_id"]] = record
    config.stash[RUN] = run
    _CONFIG[:] = [config]
    signal.signal(signal.SIGTERM, _interrupt)


def _clean_temporaries(folder: Path) -> None:
    """Remove what a killed run left half-written (`write_bytes_atomic`'s temporary files);
    under the run's lock, so never another run's."""
    for path in [*folder.glob(TEMPORARY_GLOB), *folder.glob(f"{RAW}/{TEMPORARY_GLOB}")]:
        path.unlink(missing_ok=True)


def _set_aside(path: Path, why: str) -> str:
    """Move a damaged file into the run's damaged/ folder, kept for inspection; what to say."""
    aside = path.parent / DAMAGED / f"{path.name}.{dt.datetime.now():%Y%m%d-%H%M%S}"
    aside.parent.mkdir(exist_ok=True)
    path.replace(aside)
    return f"warning: {path} cannot be read ({why}); moved to {aside}, its cell is timed again"


def _check_same_machine(
    folder: Path, machine: dict[str, Any], update_reference: bool
) -> str | None:
    """A run folder holds one machine state's run: its record is never replaced by another's.
    A machine record that cannot be read is set aside (what to say is returned)."""
    path = folder / MACHINE_FILE
    if not path.exists():
        return None
    try:
        earlier = json.loads(path.read_text(encoding="utf-8"))
        fingerprint = earlier.get("fingerprint")
    except (ValueError, AttributeError) as error:
        return _set_aside(path, f"{type(error).__name__}: {error}")
    if fingerprint != machine["fingerprint"]:
        what = "the reference run" if update_reference else "a run"
        raise pytest.UsageError(
            f"{folder} holds {what} of another machine state (host {earlier.get('host')!r}, "
            f"fingerprint {fingerprint or 'none: an older format'}); this machine is "
            f"{machine['fingerprint']}. A machine record is never replaced by another's: add "
            "--fresh to replace that run, or time into another --results-dir"
        )
    return None


def _selected_backends(config: pytest.Config) -> list[str]:
    names: list[str] = config.getoption("--backends") or loopvec.backend_names()
    return names


def _unavailable(config: pytest.Config) -> dict[str, str]:
    """Selected backends that cannot run here, each with the ImportError that says why."""
    reasons = {}
    for name in _selected_backends(config):
        try:
            get_kernel(name)
        except ImportError as error:
            reasons[name] = str(error)
    return reasons


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    config = metafunc.config
    missing = _unavailable(config)
    available = [name for name in _selected_backends(config) if name not in missing]
    if "cell" in metafunc.fixturenames:
        grid = GRIDS[config.getoption("--grid")]
        cells = make_cells(
            config.getoption("--m") or grid.m_values,
            config.getoption("--n") or grid.n_values,
            available,
            _threads(config),
            config.getoption("--dtypes"),
            config.getoption("--layouts"),
        )
        blocks = range(config.getoption("--blocks"))
        metafunc.parametrize(
            ("cell", "block"),
            [(c, b) for c in cells for b in blocks],
            ids=[f"{c.cell_id}-b{b}" for c in cells for b in blocks],
        )
    if "training_cell" in metafunc.fixturenames:
        training = GRIDS[config.getoption("--grid")].training
        cells = make_training_cells(training.problems(), available, _threads(config))
        metafunc.parametrize("training_cell", cells, ids=[c.cell_id for c in cells])


def _threads(config: pytest.Config) -> list[int]:
    threads: list[int] = config.getoption("--threads") or list(default_threads())
    most = numba.config.NUMBA_NUM_THREADS
    if max(threads) > most:
        raise pytest.UsageError(
            f"--threads: numba can use at most {most} threads here; got {threads}"
        )
    return threads


@pytest.fixture
def run(request: pytest.FixtureRequest) -> BenchRun:
    return request.config.stash[RUN]


def pytest_sessionstart(session: pytest.Session) -> None:
    run = session.config.stash[RUN]
    if session.config.option.collectonly:
        return
    previous = run.folder / MACHINE_FILE
    earlier = json.loads(previous.read_text(encoding="utf-8")) if previous.exists() else {}
    if "read_bandwidth_bytes_per_s" in earlier:  # measured in an earlier pass (same machine)
        run.machine["read_bandwidth_bytes_per_s"] = earlier["read_bandwidth_bytes_per_s"]
    elif not session.config.getoption("--no-bandwidth"):
        run.machine["read_bandwidth_bytes_per_s"] = read_bandwidths()
    run.machine["run"], run.machine["grid"] = run.folder.name, run.grid
    run.machine["passes"], run.machine["blocks"] = run.passes, run.blocks
    # JSON has no inf: "no budget" is written as null
    for key, budget_s in (("budget_s", run.budget_s), ("train_budget_s", run.train_budget_s)):
        run.machine[key] = budget_s if math.isfinite(budget_s) else None
    run.machine["unavailable_backends"] = _unavailable(session.config)
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    for note in run.notes if reporter is not None else []:
        reporter.write_line(f"loopvec: {note}", yellow=True)
    try:
        write_json_atomic(run.folder / MACHINE_FILE, run.machine)
    except ResultsWriteError as error:
        raise pytest.UsageError(f"loopvec: cannot start the run: {error}") from None


def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict) -> None:
    machine_info["loopvec"] = config.stash[RUN].machine


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Save pytest-benchmark's own JSON of this session (stats, no raw data), atomically."""
    config = session.config
    run = config.stash[RUN]
    benchmark_session = getattr(config, "_benchmarksession", None)
    if benchmark_session is None or not benchmark_session.benchmarks:
        return
    hook = config.hook
    output = hook.pytest_benchmark_generate_json(
        config=config,
        benchmarks=benchmark_session.benchmarks,
        include_data=True,  # every round: the raw samples the cell files hold too
        machine_info=benchmark_session.get_machine_info(),
        commit_info=hook.pytest_benchmark_generate_commit_info(config=config),
    )
    stem = f"{dt.datetime.now():%Y%m%d-%H%M%S}-pass{run.pass_number}-{os.getpid()}"
    path = run.folder / RAW / f"{stem}.json"
    for k in itertools.count(2):  # never over another's: a name is taken at most once
        if not path.exists():
            break
        path = path.with_name(f"{stem}-{k}.json")
    try:
        write_json_atomic(path, output)
    except ResultsWriteError as error:
        print(f"\nloopvec: {error}")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Put the items, after any -k or deselection, in this pass's order (`pass_order`), and
    note the cells that will run: the progress total."""
    if not _CONFIG:
        return
    run = _CONFIG[0].stash[RUN]
    gradient = {
        (item.callspec.params["cell"].cell_id, item.callspec.params["block"]): item
        for item in items
        if "cell" in item.fixturenames
    }
    cells = list(dict.fromkeys(item.callspec.params["cell"] for item in gradient.values()))
    order = [(c, b) for c, b in pass_order(cells, run.pass_number, run.blocks, run.seed)]
    ordered = [gradient[(c.cell_id, b)] for c, b in order if (c.cell_id, b) in gradient]
    run.positions = {(c.cell_id, b): k for k, (c, b) in enumerate(order)}
    training = [item for item in items if "training_cell" in item.fixturenames]
    training = [training[k] for k in training_order(training, run.pass_number, run.seed)]
    others = [item for item in items if item not in ordered and item not in training]
    items[:] = [*ordered, *training, *others]
    run.cells = [
        *dict.fromkeys(item.callspec.params["cell"] for item in ordered),
        *(item.callspec.params["training_cell"] for item in training),
    ]


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    run = config.stash[RUN]
    for name, reason in run.machine.get("unavailable_backends", {}).items():
        terminalreporter.write_line(f"loopvec: backend {name} was not timed: {reason}", yellow=True)
    for note in run.notes:
        terminalreporter.write_line(f"loopvec: {note}", yellow=True)
    if run.settled_s:
        terminalreporter.write_line(
            f"loopvec: {run.settled_s:.1f} s waited, untimed, for the thread pools of one backend"
            " to sleep before another's block"
        )
    terminalreporter.write_line(f"loopvec: cell files in {run.folder}")


_BLOCK = re.compile(r"^(?P<cell>.*)-b(?P<block>\d+)$")


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """One progress line per cell and pass: done, skipped, remaining, an estimate of the time
    left. A gradient cell's line comes with its last timed block (or its first, where it
    ended)."""
    benchmarks = ("::test_gradient[", "::test_training[")
    if not any(b in report.nodeid for b in benchmarks) or (
        report.when != "call" and not report.skipped
    ):
        return
    config = _CONFIG[0]
    run = config.stash[RUN]
    cell_id = report.nodeid.split("[")[-1].rstrip("]")
    if match := _BLOCK.match(cell_id):
        cell_id, block = match["cell"], int(match["block"])
        if (report.passed and cell_id not in run.written) or (report.skipped and block > 0):
            return  # a block before the cell's last, or after it
    run.written.discard(cell_id)
    if report.passed:
        median_s = run.median_s(run.done[cell_id])
        passes = len(run.done[cell_id]["passes"])
        outcome, detail = "timed", f"median {format_seconds(median_s)} over {passes} pass(es)"
        if cell_id in run.retimed:
            detail += f" (not resumed: {run.retimed[cell_id]})"
    elif report.skipped:
        detail = report.longrepr[-1] if isinstance(report.longrepr, tuple) else ""
        outcome = "resumed" if "already timed" in detail else "skipped"
        detail = detail.removeprefix("Skipped: ").removeprefix(f"{cell_id}: ")
    else:
        outcome, detail = "failed", ""
    run.counts[outcome] += 1
    finished = sum(run.counts.values())
    left = len(run.cells) - finished
    eta = f"about {run.time_left_s(run.cells[finished:]) / 60:.1f} min left" if left else "done"
    line = (
        f"[pass {run.pass_number}/{run.passes}] [{finished}/{len(run.cells)}] {cell_id} "
        f"{outcome}: {detail} | timed {run.counts['timed']}, resumed {run.counts['resumed']}, "
        f"skipped {run.counts['skipped']}, failed {run.counts['failed']}, left {left}, {eta}"
    )
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.ensure_newline()
        reporter.write_line(line)
