"""The benchmark grid's plumbing: options, parametrization, budget, resume, cell files, progress.

    pytest bench --grid quick                 # a named grid from loopvec.grid.GRIDS
    pytest bench --m 1000,1e6 --n 100         # explicit sizes (grid name "custom")
    pytest bench --backends numba_loops --threads 1 --budget 0.2 --fresh
    pytest bench/test_gradient.py              # the gradient grid alone, no training runs
    pytest bench --update-reference            # time into results/reference/ (re-make it)

Every finished cell is written to its own file in the run folder the moment it finishes: under
--results-dir (default results/), a folder named by host, CPU, cores, grid and the machine
fingerprint (`loopvec.provenance.run_name`). A rerun resumes a cell only when its machine
fingerprint, its backend's code fingerprint and every parameter match; any other cell is timed
again, and the progress line says why. SIGTERM is turned into KeyboardInterrupt so that pytest
still finishes the session and writes what it has.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import json
import os
import signal
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
from loopvec.machine import machine_record, read_bandwidths
from loopvec.plots import format_seconds
from loopvec.problem import Problem
from loopvec.provenance import FORMAT, code_identity, git_state, run_name
from loopvec.results import (
    MACHINE_FILE,
    RAW,
    REFERENCE_RUN,
    ResultsWriteError,
    cell_paths,
    read_cells,
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
    group.addoption("--fresh", action="store_true", help="delete this run's cells, start over")
    group.addoption(
        "--update-reference",
        action="store_true",
        help=f"time into <results-dir>/{REFERENCE_RUN}/, the committed reference run (re-make it)",
    )
    group.addoption(
        "--no-bandwidth", action="store_true", help="skip the memory bandwidth measurement"
    )


@dataclass
class BenchRun:
    """The state of one grid run: where it writes, what is done, what each backend costs."""

    grid: str
    folder: Path
    budget_s: float
    train_budget_s: float
    max_time_s: float  # pytest-benchmark's --benchmark-max-time
    min_rounds: int  # and --benchmark-min-rounds
    machine: dict[str, Any]  # the machine record; its bandwidth is measured at session start
    git: dict[str, Any]  # the commit of the checkout that runs the bench, and whether it is dirty
    cells: list[Cell | TrainingCell] = field(default_factory=list)
    done: dict[str, dict[str, Any]] = field(default_factory=dict)  # cell_id -> timed record
    retimed: dict[str, str] = field(default_factory=dict)  # cell_id -> why it was not resumed
    compile_s: dict[tuple[str, str, str], float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    started_s: float = field(default_factory=time.perf_counter)
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

    def timed_before(self, cell: Cell | TrainingCell) -> bool:
        """Whether this folder holds a timed record of exactly `cell`: same parameters, same
        machine state, same code. Where it holds one that differs, `retimed` says how."""
        record = self.done.get(cell.cell_id)
        if record is None:
            return False
        mine = self.provenance(cell)
        if record.get("format") != FORMAT:
            why = "its earlier cell file is of an older format"
        elif record.get("machine_fingerprint") != mine["machine_fingerprint"]:
            why = f"machine changed (was {record.get('machine_fingerprint')})"
        elif record.get("code_fingerprint") != mine["code_fingerprint"]:
            before, now = record.get("code_modules") or {}, mine["code_modules"]
            changed = sorted(k for k in before.keys() | now.keys() if before.get(k) != now.get(k))
            why = f"code changed: {', '.join(changed) or 'versions ' + str(mine['code_versions'])}"
        elif any(record.get(k) != v for k, v in cell.params().items()):
            why = "parameters changed"
        else:
            return True
        self.retimed[cell.cell_id] = why
        return False

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
            "host": self.machine["host"],
            "grid": self.grid,
            "status": status,
            "reason": None,
            "finished_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
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

    def skip(self, cell: Cell | TrainingCell, reason: str, **fields: Any) -> None:
        """Record `cell` as skipped with its reason, then skip it visibly."""
        self.write_cell(cell, "skipped", reason=reason, **fields)
        pytest.skip(f"{cell.cell_id}: {reason}")


@functools.cache
def _code(backend: str, *, training: bool) -> dict[str, Any]:
    return code_identity(backend, training=training)  # read and hashed once per run


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
    machine = machine_record(measure_bandwidth=False)  # the bandwidth at session start
    results_dir: Path = config.getoption("--results-dir")
    update_reference = config.getoption("--update-reference")
    folder = results_dir / (REFERENCE_RUN if update_reference else run_name(machine, grid_name))
    run = BenchRun(
        grid=grid_name,
        folder=folder,
        budget_s=config.getoption("--budget"),
        train_budget_s=config.getoption("--train-budget"),
        max_time_s=float(config.getoption("benchmark_max_time")),
        min_rounds=int(config.getoption("benchmark_min_rounds")),
        machine=machine,
        git=git_state(Path(__file__).parent),
    )
    if config.getoption("--fresh") and not config.option.collectonly:
        for path in [*cell_paths(folder), folder / MACHINE_FILE, *folder.glob(f"{RAW}/*.json")]:
            path.unlink(missing_ok=True)
    _check_same_machine(folder, machine, update_reference)
    for record in read_cells(folder) if folder.exists() else []:
        if record.get("status") == "timed":
            run.done[record["cell_id"]] = record
    config.stash[RUN] = run
    _CONFIG[:] = [config]
    signal.signal(signal.SIGTERM, _interrupt)


def _check_same_machine(folder: Path, machine: dict[str, Any], update_reference: bool) -> None:
    """A run folder holds one machine state's run: its record is never replaced by another's."""
    path = folder / MACHINE_FILE
    if not path.exists():
        return
    earlier = json.loads(path.read_text(encoding="utf-8"))
    if earlier.get("fingerprint") != machine["fingerprint"]:
        what = "the reference run" if update_reference else "a run"
        raise pytest.UsageError(
            f"{folder} holds {what} of another machine state (host {earlier.get('host')!r}, "
            f"fingerprint {earlier.get('fingerprint', 'none: an older format')}); this machine is "
            f"{machine['fingerprint']}. A machine record is never replaced by another's: add "
            "--fresh to replace that run, or time into another --results-dir"
        )


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
    previous = run.folder / MACHINE_FILE
    if not session.config.getoption("--no-bandwidth"):
        run.machine["read_bandwidth_bytes_per_s"] = read_bandwidths()
    elif previous.exists():  # a resumed run keeps the ceiling measured before (same machine)
        earlier = json.loads(previous.read_text(encoding="utf-8"))
        if "read_bandwidth_bytes_per_s" in earlier:
            run.machine["read_bandwidth_bytes_per_s"] = earlier["read_bandwidth_bytes_per_s"]
    run.machine["run"], run.machine["grid"] = run.folder.name, run.grid
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
    try:  # the pid: two sessions finishing in the same second never share a name
        write_json_atomic(run.folder / RAW / f"{stamp}-{os.getpid()}.json", output)
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
        f"[{finished}/{len(run.cells)}] {cell_id} {outcome}: {detail} | "
        f"timed {run.counts['timed']}, resumed {run.counts['resumed']}, "
        f"skipped {run.counts['skipped']}, failed {run.counts['failed']}, left {left}, {eta}"
    )
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.ensure_newline()
        reporter.write_line(line)
