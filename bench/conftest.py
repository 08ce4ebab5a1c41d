"""The benchmark grid's plumbing: options, parametrization, budget, resume, cell files, progress.

    pytest bench --grid quick                 # a named grid from loopvec.grid.GRIDS
    pytest bench --m 1000,1e6 --n 100         # explicit sizes (grid name "custom")
    pytest bench --backends numba_loops --threads 1 --budget 0.2 --fresh
    pytest bench/test_gradient.py              # the gradient grid alone, no training runs

Every finished cell is written to its own file under results/cells/<host>-<grid>/ the moment it
finishes; a rerun of the same grid skips the cells already timed there. SIGTERM is turned into
KeyboardInterrupt so that pytest still finishes the session and writes what it has.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import signal
import socket
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numba
import numpy as np
import psutil
import pytest

import loopvec
from loopvec.agreement import REFERENCE, Reference
from loopvec.backends import BACKENDS, get_kernel
from loopvec.datasets import SIZES, load
from loopvec.grid import (
    DEFAULT_BUDGET_S,
    DEFAULT_TRAIN_BUDGET_S,
    GRIDS,
    LAYOUTS,
    Cell,
    CostModel,
    TrainingCell,
    cell_wall_s,
    default_threads,
    fit_cost_model,
    make_cells,
    make_training_cells,
    training_rounds,
)
from loopvec.machine import machine_record
from loopvec.plots import format_seconds
from loopvec.problem import Problem
from loopvec.results import (
    MACHINE_FILE,
    RAW,
    ResultsWriteError,
    read_cells,
    run_dir,
    write_json_atomic,
)
from loopvec.training import Descent, TrainResult
from loopvec.validation import DTYPES


def _int_list(text: str) -> list[int]:
    """'1,10,1e6' -> [1, 10, 1000000]; exponents are welcome in sizes."""
    values = [float(part) for part in text.split(",") if part.strip()]
    if not values or any(v < 1 or v != int(v) for v in values):
        raise pytest.UsageError(f"expected positive whole numbers like 1,10,1e6; got {text!r}")
    return [int(v) for v in values]


def _choices(allowed: Sequence[str]) -> Callable[[str], list[str]]:
    """An option type: a comma-separated subset of `allowed`, or a usage error naming them."""

    def parse(text: str) -> list[str]:
        values = list(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
        wrong = [v for v in values if v not in allowed]
        if wrong or not values:
            raise pytest.UsageError(f"expected some of {', '.join(allowed)}; got {text!r}")
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
        "--layouts", type=_choices(LAYOUTS), default=["C"], help="memory order of X: C (course), F"
    )
    group.addoption(
        "--budget", type=float, default=DEFAULT_BUDGET_S, help="skip cells predicted slower"
    )
    group.addoption(
        "--train-budget",
        type=float,
        default=DEFAULT_TRAIN_BUDGET_S,
        help="skip training runs predicted slower (seconds per run)",
    )
    group.addoption("--results-dir", type=Path, default=Path("results"), help="where to write")
    group.addoption("--fresh", action="store_true", help="delete this grid's cells, start over")
    group.addoption(
        "--no-bandwidth", action="store_true", help="skip the memory bandwidth measurement"
    )


@dataclass
class BenchRun:
    """The state of one grid run: where it writes, what is done, what each backend costs."""

    grid: str
    folder: Path
    raw_folder: Path
    budget_s: float
    train_budget_s: float
    max_time_s: float  # pytest-benchmark's --benchmark-max-time
    min_rounds: int  # and --benchmark-min-rounds
    host: str
    machine: dict[str, Any]
    cells: list[Cell | TrainingCell] = field(default_factory=list)
    done: dict[str, dict[str, Any]] = field(default_factory=dict)  # cell_id -> timed record
    compile_s: dict[tuple[str, str, str], float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    started_s: float = field(default_factory=time.perf_counter)
    _problem: tuple[tuple[int, int, str, str], Problem, Reference] | None = None
    _training: dict[tuple[Any, ...], tuple[Problem, TrainResult]] = field(default_factory=dict)

    def timed_before(self, cell: Cell | TrainingCell) -> bool:
        """Whether this folder holds a timed record of exactly `cell` (every parameter equal)."""
        record = self.done.get(cell.cell_id)
        return record is not None and all(record.get(k) == v for k, v in cell.params().items())

    def model(self, cell: Cell | TrainingCell) -> CostModel | None:
        """The cost model of `cell`'s backend at its threads and dtype (a training cell: float64,
        course layout), from the gradient cells timed so far."""
        dtype, layout = (cell.dtype, cell.layout) if isinstance(cell, Cell) else ("float64", "C")
        same = [
            record
            for record in self.done.values()
            if record.get("kind") != "training"
            and (record["backend"], record["threads"], record["dtype"], record["layout"])
            == (cell.backend, cell.threads, dtype, layout)
        ]
        return fit_cost_model(
            [r["m"] for r in same], [r["n"] for r in same], [r["median_s"] for r in same]
        )

    def time_left_s(self, cells: list[Cell | TrainingCell]) -> float:
        """Estimated wall time of `cells`: from the cost models, else the mean cell so far."""
        finished = sum(self.counts.values())
        mean_s = (time.perf_counter() - self.started_s) / max(finished, 1)
        estimates = [self.wall_s(c) for c in cells]
        return sum(mean_s if e is None else e for e in estimates)

    def wall_s(self, cell: Cell | TrainingCell) -> float | None:
        model = self.model(cell)
        if isinstance(cell, Cell):
            return cell_wall_s(model, cell, self.budget_s, self.max_time_s, self.min_rounds)
        if model is None:
            return None
        run_s = cell.iterations * model.predict_s(cell.m, cell.n)
        if run_s > self.train_budget_s:
            return 0.0
        return (1 + training_rounds(run_s, self.max_time_s)) * run_s  # checked run + timed

    def training_problem(self, cell: TrainingCell) -> tuple[Problem, TrainResult]:
        """The dataset of `cell` as a problem starting at w = 0, b = 0 (the course's start), and
        the reference run on it: numpy_vectorized with the same settings. Built once per dataset.

        ImportError if the dataset needs a package that is not installed.
        """
        self._problem = None  # the grid is done: free its last (largest) problem
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
        the same values), built once per size and dtype."""
        key = (cell.m, cell.n, cell.dtype, cell.layout)
        if self._problem is None or self._problem[0] != key:
            self._problem = None  # free the previous problem before building a larger one
            problem = loopvec.make_problem(cell.m, cell.n, seed=0).astype(cell.dtype)
            if cell.layout == "F":
                problem = dataclasses.replace(problem, X=np.asfortranarray(problem.X))
            self._problem = (key, problem, Reference.of(problem.astype("float64")))
        return self._problem[1], self._problem[2]

    def available_bytes(self, cell: Cell) -> int:
        """Free memory, counting the cached problem as free when this cell would replace it."""
        available = int(psutil.virtual_memory().available)
        key = (cell.m, cell.n, cell.dtype, cell.layout)
        if self._problem is not None and self._problem[0] != key:
            available += self._problem[1].X.nbytes
        return available

    def write_cell(self, cell: Cell | TrainingCell, status: str, **fields: Any) -> None:
        record = {
            "cell_id": cell.cell_id,
            **cell.params(),
            "host": self.host,
            "grid": self.grid,
            "status": status,
            "reason": None,
            "finished_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "loopvec_version": loopvec.__version__,
            **fields,
        }
        try:
            write_json_atomic(self.folder / f"{cell.cell_id}.json", record)
        except ResultsWriteError as error:
            pytest.exit(f"loopvec: stopping the run: {error}", returncode=3)
        if status == "timed":
            self.done[cell.cell_id] = record

    def skip(self, cell: Cell | TrainingCell, reason: str, **fields: Any) -> None:
        """Record `cell` as skipped with its reason, then skip it visibly."""
        self.write_cell(cell, "skipped", reason=reason, **fields)
        pytest.skip(f"{cell.cell_id}: {reason}")


RUN = pytest.StashKey[BenchRun]()
_CONFIG: list[pytest.Config] = []  # the logreport hook is given no config; set at configure


def _interrupt(signum: int, frame: object) -> None:
    # pytest finishes the session on KeyboardInterrupt (raw JSON, summary); SIGTERM would not.
    raise KeyboardInterrupt(f"signal {signum}")


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("--m") or config.getoption("--n"):
        grid_name = "custom"
    else:
        grid_name = config.getoption("--grid")
    # The grid's time per cell, unless the command line says otherwise (pytest-benchmark reads
    # the option after this hook: its pytest_configure runs last).
    if not any(a.startswith("--benchmark-max-time") for a in config.invocation_params.args):
        config.option.benchmark_max_time = str(GRIDS[config.getoption("--grid")].max_time_s)
    host = socket.gethostname()
    results_dir: Path = config.getoption("--results-dir")
    folder = run_dir(results_dir, host, grid_name)
    run = BenchRun(
        grid=grid_name,
        folder=folder,
        raw_folder=results_dir / RAW,
        budget_s=config.getoption("--budget"),
        train_budget_s=config.getoption("--train-budget"),
        max_time_s=float(config.getoption("benchmark_max_time")),
        min_rounds=int(config.getoption("benchmark_min_rounds")),
        host=host,
        machine={},
    )
    if config.getoption("--fresh") and not config.option.collectonly:
        for path in folder.glob("*.json"):
            path.unlink()
    for record in read_cells(folder) if folder.exists() else []:
        if record.get("status") == "timed":
            run.done[record["cell_id"]] = record
    config.stash[RUN] = run
    _CONFIG[:] = [config]
    signal.signal(signal.SIGTERM, _interrupt)


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
        metafunc.parametrize("cell", cells, ids=[c.cell_id for c in cells])
    if "training_cell" in metafunc.fixturenames:
        training = GRIDS[config.getoption("--grid")].training
        sizes = {**SIZES, "synthetic": (training.synthetic_m, training.synthetic_n)}
        cells = make_training_cells(sizes, training.iterations, available, _threads(config))
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
    measure = not session.config.getoption("--no-bandwidth")
    run.machine = machine_record(measure_bandwidth=measure)
    previous = run.folder / MACHINE_FILE
    if not measure and previous.exists():  # a resumed run keeps the ceiling measured before
        earlier = json.loads(previous.read_text(encoding="utf-8"))
        if "read_bandwidth_bytes_per_s" in earlier:
            run.machine["read_bandwidth_bytes_per_s"] = earlier["read_bandwidth_bytes_per_s"]
    run.machine["grid"] = run.grid
    run.machine["budget_s"], run.machine["train_budget_s"] = run.budget_s, run.train_budget_s
    run.machine["unavailable_backends"] = _unavailable(session.config)
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
        include_data=False,
        machine_info=benchmark_session.get_machine_info(),
        commit_info=hook.pytest_benchmark_generate_commit_info(config=config),
    )
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    try:
        write_json_atomic(run.raw_folder / f"{stamp}-{run.host}-{run.grid}.json", output)
    except ResultsWriteError as error:
        print(f"\nloopvec: {error}")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The cells that will run, after any -k or deselection, in run order: the progress total."""
    if _CONFIG:
        _CONFIG[0].stash[RUN].cells = [
            item.callspec.params[name]
            for item in items
            for name in ("cell", "training_cell")
            if name in item.fixturenames
        ]


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    run = config.stash[RUN]
    for name, reason in run.machine.get("unavailable_backends", {}).items():
        terminalreporter.write_line(f"loopvec: backend {name} was not timed: {reason}", yellow=True)
    terminalreporter.write_line(f"loopvec: cell files in {run.folder}")


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """One progress line per cell: done, skipped, remaining, and an estimate of the time left."""
    benchmarks = ("::test_gradient[", "::test_training[")
    if not any(b in report.nodeid for b in benchmarks) or (
        report.when != "call" and not report.skipped
    ):
        return
    config = _CONFIG[0]
    run = config.stash[RUN]
    cell_id = report.nodeid.split("[")[-1].rstrip("]")
    if report.passed:
        outcome, detail = "timed", f"median {format_seconds(run.done[cell_id]['median_s'])}"
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
        f"[{finished}/{len(run.cells)}] {cell_id} {outcome}: {detail} | "
        f"timed {run.counts['timed']}, resumed {run.counts['resumed']}, "
        f"skipped {run.counts['skipped']}, failed {run.counts['failed']}, left {left}, {eta}"
    )
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.ensure_newline()
        reporter.write_line(line)
