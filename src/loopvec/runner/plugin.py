"""The bench's pytest plugin: the options, the driver's entry, and one `BenchPlugin` per pass that
keeps the pass's state and answers pytest's hooks by delegating to `Pass`, `plan` and `Progress`.
Needs pytest and pytest-benchmark (the `bench` extra); bench/conftest.py registers it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import os
import signal
import sys
from collections.abc import Generator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

import loopvec
from loopvec import tuning
from loopvec.grid import (
    DEFAULT_BLOCKS,
    DEFAULT_BUDGET_S,
    DEFAULT_TRAIN_BUDGET_S,
    GRIDS,
    LAYOUTS,
    Cell,
    TrainingCell,
    make_cells,
    make_training_cells,
    no_cell_reason,
)
from loopvec.provenance import git_state, planned
from loopvec.results import RAW, REFERENCE_RUN, ResultsWriteError, write_json_atomic
from loopvec.runner.canary import PassCanary
from loopvec.runner.driver import PASS_ENV, Driver, PassSpec, begin, locate
from loopvec.runner.folder import FolderError, locked
from loopvec.runner.plan import pass_order, training_order
from loopvec.runner.session import Pass
from loopvec.runner.settings import (
    Settings,
    SettingsError,
    choices,
    int_list,
    limit_s,
    make_settings,
    names,
    positive,
    register_user_backends,
)
from loopvec.runner.versions import DEFAULT_PASSES, AgainstDriver
from loopvec.validation import DTYPES

_UNUSED = "pytest_benchmark.logger.PytestBenchmarkWarning"
#: The plugin's name in pytest's plugin manager.
NAME = "loopvec-bench"


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("loopvec", "loopvec benchmark grid")
    grids = "; ".join(f"{name}: {grid.summary}" for name, grid in GRIDS.items())
    group.addoption("--grid", default="default", choices=list(GRIDS), help=grids)
    group.addoption("--m", type=int_list, help="example counts, e.g. 1,1000,1e6 (overrides grid)")
    group.addoption("--n", type=int_list, help="feature counts, e.g. 1,100 (overrides grid)")
    group.addoption(
        "--backends",
        type=names,
        help=f"backend names (default: all): {', '.join(loopvec.backend_names())}, and yours",
    )
    group.addoption(
        "--data",
        metavar="PATH",
        help="time the gradient at your data's shape, and train on it: a .npz (X as (m, n) rows, "
        "y), a .npy (the last column the label), a .csv (with --label), a Zarr folder, or "
        "sklearn:NAME",
    )
    group.addoption("--label", metavar="COLUMN", help="with --data: the CSV's label column")
    group.addoption(
        "--standardize",
        action="store_true",
        help="with --data: scale each feature to mean 0, std 1 (recorded; never done silently)",
    )
    group.addoption(
        "--backend",
        action="append",
        metavar="NAME=TARGET",
        help="time your gradient too: TARGET as `loopvec check` takes it (FILE.py:FUNCTION or "
        "MODULE:FUNCTION), checked before it is timed; repeatable",
    )
    group.addoption("--threads", type=int_list, help="thread counts (default: 1 and all cores)")
    group.addoption(
        "--dtypes",
        type=choices(DTYPES),
        default=list(DTYPES),
        help="float64,float32 (each where a backend is registered for it)",
    )
    group.addoption(
        "--layouts",
        type=choices(LAYOUTS),
        default=list(LAYOUTS),
        help="memory orders of X: C (the course's), F (data.T of an (m, n) array); each backend "
        "in those it reads in place (the registry's layouts)",
    )
    group.addoption(
        "--budget",
        type=limit_s,
        default=DEFAULT_BUDGET_S,
        help="skip cells predicted slower than this per call (seconds; inf: no budget)",
    )
    group.addoption(
        "--train-budget",
        type=limit_s,
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
    group.addoption(
        "--no-memory",
        action="store_true",
        help="skip the peak memory of each cell (measured in its first pass, in calls of their "
        "own: 0.2 s each with torch and JAX loaded); its cells record why",
    )
    group.addoption("--passes", type=positive, help="passes, each a process (default: grid's)")
    group.addoption("--pass", type=positive, dest="pass_number", help="run this pass alone")
    group.addoption(
        "--blocks", type=positive, default=DEFAULT_BLOCKS, help="interleaved blocks per pass"
    )
    group.addoption("--order-seed", type=int, default=0, help="seed of the passes' orders")
    group.addoption(
        "--report",
        action="store_true",
        help="after the last pass, draw the run's figures, REPORT.md and report.html",
    )
    group.addoption(
        "--against",
        action="append",
        metavar="REV",
        help="time the working tree and git revision REV in one run, their passes alternating "
        f"(ABBA, {DEFAULT_PASSES} each unless --passes), then compare them; given twice, the two "
        "revisions",
    )


def settings_of(config: pytest.Config) -> Settings:
    """The run's settings from pytest's options, checked; a usage error naming what is wrong."""
    if config.getoption("benchmark_disable", False):
        raise pytest.UsageError(
            "--benchmark-disable: loopvec's bench exists to time the grid; to check every "
            "backend against the reference without timing, run the tests (python -m nox -s tests)"
        )
    dests = (
        *("grid", "m", "n", "backends", "backend", "threads", "dtypes", "layouts", "budget"),
        *("train_budget", "results_dir", "fresh", "update_reference", "no_bandwidth"),
        *("no_memory", "passes", "pass_number", "blocks", "order_seed", "report", "data", "label"),
        "standardize",
    )
    options = {dest: config.getoption(dest) for dest in dests}
    # The grid's time per cell, unless the command line says otherwise.
    given = any(a.startswith("--benchmark-max-time") for a in config.invocation_params.args)
    options["max_time_s"] = config.getoption("benchmark_max_time") if given else None
    try:
        return make_settings(options, loopvec.backend_names())
    except SettingsError as error:
        raise pytest.UsageError(str(error)) from None


def drive(config: pytest.Config) -> int | None:
    """Without --pass, run the passes one after the other, each in a child process, holding
    the run folder's lock for all of them (`Driver`); None to let pytest run this process."""
    if config.getoption("pass_number") and config.getoption("against"):
        raise pytest.UsageError("--pass runs one pass of a run; --against runs them all")
    if config.getoption("pass_number") or _only_shows(config):
        return None
    settings = settings_of(config)
    signal.signal(signal.SIGTERM, _interrupt)
    arguments, cwd = config.invocation_params.args, config.invocation_params.dir
    try:
        if revisions := config.getoption("against"):
            return AgainstDriver(_against(config, settings), revisions, arguments, cwd).run()
        return Driver(settings, arguments, cwd).run()
    except (FolderError, SettingsError) as error:
        raise pytest.UsageError(f"loopvec: {error}") from None


def _against(config: pytest.Config, settings: Settings) -> Settings:
    """The settings of a run of two versions: DEFAULT_PASSES passes each unless given."""
    if len(config.getoption("against")) > 2:
        raise SettingsError("--against: one revision (against the working tree) or two")
    if not config.getoption("passes"):
        return dataclasses.replace(settings, passes=DEFAULT_PASSES)
    if settings.passes < 2 or settings.passes % 2:
        raise SettingsError(
            "--passes: --against runs pairs in ABBA order, A first as often as B: an even "
            f"number, at least 2; got {settings.passes}"
        )
    return settings


def _only_shows(config: pytest.Config) -> bool:
    """pytest only shows something (--collect-only, --help, --markers, --fixtures): no run, no
    lock, nothing written."""
    shows = ("collectonly", "help", "markers", "showfixtures")
    return any(getattr(config.option, name, False) for name in shows)


def _interrupt(signum: int, frame: object) -> None:
    # pytest finishes the session on KeyboardInterrupt (raw JSON, summary); SIGTERM would not.
    raise KeyboardInterrupt(f"signal {signum}")


class BenchPlugin:
    """One pass, in pytest: its `Pass`, and the hooks that parametrize, order and report it."""

    def __init__(self, config: pytest.Config, bench: Path) -> None:
        self.config = config
        self.resources = ExitStack()  # a pass run alone holds the run's lock itself
        self.parent_pid = os.getppid()  # this process's parent when it started
        self.driven = PASS_ENV in os.environ
        if self.driven:
            spec = PassSpec.from_json(os.environ[PASS_ENV])
            register_user_backends(spec.settings.user_backends)  # the driver checked them
            notes: list[str] = []
        else:  # a pass run alone (--pass K), or pytest asked only to show: its own driver
            settings = settings_of(config)
            folder, machine = locate(settings)
            if _only_shows(config):
                spec, notes = PassSpec(settings, folder, machine), []
            else:
                try:
                    self.resources.enter_context(locked(folder))
                    spec, notes = begin(folder, settings, machine)
                except (FolderError, SettingsError) as error:
                    self.resources.close()
                    raise pytest.UsageError(f"loopvec: {error}") from None
        self.run = Pass(
            spec.settings,
            spec.folder,
            spec.machine,
            config.getoption("pass_number") or 1,
            git_state(bench),  # the checkout that runs the bench
            notes=notes,
        )
        if not _only_shows(config):
            self.run.load()
        self.cell_of: dict[str, str] = {}  # nodeid -> cell_id, for the progress line
        signal.signal(signal.SIGTERM, _interrupt)

    def close(self) -> None:
        self.resources.close()

    @property
    def settings(self) -> Settings:
        return self.run.settings

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        settings = self.settings
        if "cell" in metafunc.fixturenames:
            cells = make_cells(
                settings.m_values,
                settings.n_values,
                settings.available,
                settings.threads,
                settings.dtypes,
                settings.layouts,
            )
            blocks = range(settings.blocks)
            metafunc.parametrize(
                ("cell", "block"),
                [(c, b) for c in cells for b in blocks],
                ids=[f"{c.cell_id}-b{b}" for c in cells for b in blocks],
            )
        if "training_cell" in metafunc.fixturenames:
            problems = settings.training_problems()
            training = make_training_cells(problems, settings.available, settings.threads)
            metafunc.parametrize("training_cell", training, ids=[c.cell_id for c in training])

    @pytest.hookimpl(trylast=True)  # after -k and --deselect: the progress total is what runs
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        """Put the items, after any -k or deselection, in this pass's order (`pass_order`), and
        note the cells that will run: the progress total."""
        run, settings = self.run, self.settings
        cell_of = {item: cell for item in items if (cell := _cell_of(item)) is not None}
        gradient = {
            (cell.cell_id, _params(item)["block"]): item
            for item, cell in cell_of.items()
            if isinstance(cell, Cell)
        }
        cells = list(dict.fromkeys(c for c in cell_of.values() if isinstance(c, Cell)))
        order = pass_order(cells, run.number, settings.blocks, settings.order_seed)
        ordered = [gradient[(c.cell_id, b)] for c, b in order if (c.cell_id, b) in gradient]
        run.positions = {(c.cell_id, b): k for k, (c, b) in enumerate(order)}
        training = {i: c for i, c in cell_of.items() if isinstance(c, TrainingCell)}
        shuffled = training_order(list(training.values()), run.number, settings.order_seed)
        timed = [*ordered, *(list(training)[k] for k in shuffled)]
        items[:] = [*timed, *(item for item in items if item not in cell_of)]
        self.cell_of = {item.nodeid: cell_of[item].cell_id for item in timed}
        run.progress.cells = list(dict.fromkeys(cell_of[item] for item in timed))

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            for note in self.run.notes:
                reporter.write_line(f"loopvec: {note}", yellow=True)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtestloop(self, session: pytest.Session) -> Generator[None, object, object]:
        """The canary (`loopvec.runner.canary`) right before the pass's first cell and right
        after its last, outside every cell: how fast the machine itself was, for `compare`."""
        if session.config.option.collectonly or not self.run.progress.cells:
            return (yield)
        if any(planned(backend) for backend in self.settings.available):
            tuning.current()  # measured on this machine's first use: before the canary, untimed
        try:
            canary = PassCanary(self.run.folder, self.run.number)
            result = yield  # interrupted or stopped: the start moment alone is kept
            canary.finish(self.run.progress.counts["timed"])
        except ResultsWriteError as error:  # a full disk: what was written is intact
            pytest.exit(f"loopvec: stopping the run: {error}", returncode=3)
        return result

    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        """A pass whose driver died (killed) stops before its next cell, keeping what it wrote:
        the driver's lock is gone, and another run may now time into the folder."""
        if self.driven and os.getppid() != self.parent_pid:
            pytest.exit("loopvec: the run that started this pass has ended; stopping", returncode=3)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Generator[None, None, None]:
        try:
            return (yield)
        except ResultsWriteError as error:  # a full disk: what was written is intact
            pytest.exit(f"loopvec: stopping the run: {error}", returncode=3)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """One progress line per cell and pass: what became of it, counts, the time left."""
        cell_id = self.cell_of.get(report.nodeid)
        if cell_id is None or (report.when != "call" and report.passed):
            return
        progress = self.run.progress
        outcome = progress.failed(cell_id) if report.failed else progress.take(cell_id)
        if outcome is None:
            return  # a block before the cell's last, or after it
        label = f"pass {self.run.number}/{self.settings.passes}"
        line = progress.line(label, cell_id, outcome, self.run.time_left_s(progress.remaining))
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.ensure_newline()
            reporter.write_line(line)

    def pytest_benchmark_update_machine_info(
        self, config: pytest.Config, machine_info: dict[str, Any]
    ) -> None:
        machine_info["loopvec"] = self.run.machine

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        """Save pytest-benchmark's JSON of this pass (every round), atomically, in raw/."""
        if not self.run.benchmarks:
            return
        hook = self.config.hook
        machine_info = hook.pytest_benchmark_generate_machine_info(config=self.config)
        hook.pytest_benchmark_update_machine_info(config=self.config, machine_info=machine_info)
        output = hook.pytest_benchmark_generate_json(
            config=self.config,
            benchmarks=self.run.benchmarks,
            include_data=True,  # every round: the raw samples the cell files hold too
            machine_info=machine_info,
            commit_info=hook.pytest_benchmark_generate_commit_info(config=self.config),
        )
        stem = f"{dt.datetime.now():%Y%m%d-%H%M%S}-pass{self.run.number}-{os.getpid()}"
        path = self.run.folder / RAW / f"{stem}.json"
        for k in itertools.count(2):  # never over another's: a name is taken at most once
            if not path.exists():
                break
            path = path.with_name(f"{stem}-{k}.json")
        try:
            write_json_atomic(path, output)
        except ResultsWriteError as error:
            print(f"\nloopvec: {error}", file=sys.stderr)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        run = self.run
        threads = self.settings.threads
        no_cells = {b: r for b in self.settings.available if (r := no_cell_reason(b, threads))}
        for name, reason in {**self.settings.unavailable, **no_cells}.items():
            terminalreporter.write_line(
                f"loopvec: backend {name} was not timed: {reason}", yellow=True
            )
        for note in run.notes:
            terminalreporter.write_line(f"loopvec: {note}", yellow=True)
        if run.settled_s:
            terminalreporter.write_line(
                f"loopvec: {run.settled_s:.1f} s waited, untimed, for the thread pools of one "
                "backend to sleep before another's block"
            )
        terminalreporter.write_line(f"loopvec: cell files in {run.folder}")


def _params(item: pytest.Item) -> dict[str, Any]:
    callspec = getattr(item, "callspec", None)
    return dict(callspec.params) if callspec is not None else {}


def _cell_of(item: pytest.Item) -> Cell | TrainingCell | None:
    """The cell that a bench item times, or None for another test."""
    params = _params(item)
    cell = params.get("cell") or params.get("training_cell")
    return cell if isinstance(cell, Cell | TrainingCell) else None


def configure(config: pytest.Config, bench: Path) -> None:
    """Register the plugin of this pass of the bench in folder `bench` (its conftest's
    pytest_configure)."""
    # Interrupted before a cell calls its benchmark (while its problem is built, or as it is
    # resumed), pytest-benchmark warns that the fixture was not used: not an error of the run.
    config.addinivalue_line("filterwarnings", f"ignore:Benchmark fixture was not used:{_UNUSED}")
    plugin = BenchPlugin(config, bench)
    # pytest-benchmark reads its options after this hook (its pytest_configure runs last)
    config.option.benchmark_max_time = str(plugin.settings.max_time_s)
    config.pluginmanager.register(plugin, NAME)
    config.add_cleanup(plugin.close)


def run_of(config: pytest.Config) -> Pass:
    """The `Pass` of this pytest process."""
    plugin = config.pluginmanager.get_plugin(NAME)
    assert isinstance(plugin, BenchPlugin), "bench/conftest.py registers the plugin"
    return plugin.run
