"""A run's settings: the options of `pytest bench`, parsed and checked once, by the driver.

The passes it starts receive them checked (`Settings.to_json`), with the run folder and the
machine record; they never derive them again.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numba

from loopvec.backends import get_backend, not_installed, plugin_problems, register
from loopvec.grid import GRIDS, Grid, default_threads
from loopvec.provenance import run_name
from loopvec.results import REFERENCE_RUN
from loopvec.sources import json_digest
from loopvec.userdata import UserData, load_data


class SettingsError(ValueError):
    """Options that cannot make a run, each named with what was expected and what was given."""


# Option types: a bad value stops the argument parsing with one line that names the option, what
# it expects and what it got ("argument --m: expected ...; got '0'"), before any work.


def int_list(text: str) -> list[int]:
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


def positive(text: str) -> int:
    values = int_list(text)
    if len(values) != 1:
        raise argparse.ArgumentTypeError(f"expected one positive whole number; got {text!r}")
    return values[0]


def limit_s(text: str) -> float:
    """Seconds > 0, or inf for no limit."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not value > 0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"expected seconds > 0, or inf for no limit; got {text!r}")
    return value


def names(text: str) -> list[str]:
    """'a,b' -> ['a', 'b'] (checked against the backends once plug-ins are registered)."""
    return [part.strip() for part in text.split(",") if part.strip()]


def choices(allowed: Sequence[str]) -> Callable[[str], list[str]]:
    """An option type: a comma-separated subset of `allowed`, or a usage error naming them."""

    def parse(text: str) -> list[str]:
        values = list(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
        wrong = [v for v in values if v not in allowed]
        if wrong or not values:
            raise argparse.ArgumentTypeError(f"expected some of {', '.join(allowed)}; got {text!r}")
        return values

    return parse


@dataclass(frozen=True)
class Settings:
    """What one run times and how: the grid's sizes, backends, threads, dtypes and layouts, the
    budgets, the passes and blocks, and where the run folder goes. Sizes and threads are those
    the cells use (the grid's unless given); `unavailable` names the selected backends that
    cannot run here, each with the ImportError that says why."""

    grid: str
    m_values: tuple[int, ...]
    n_values: tuple[int, ...]
    backends: tuple[str, ...]
    unavailable: dict[str, str]
    threads: tuple[int, ...]
    dtypes: tuple[str, ...]
    layouts: tuple[str, ...]
    budget_s: float
    train_budget_s: float
    max_time_s: float  #: time per cell over all passes
    passes: int
    blocks: int
    order_seed: int
    results_dir: Path
    custom_sizes: bool = False  #: --m or --n given: the run's grid is named by their hash
    fresh: bool = False
    update_reference: bool = False
    measure_bandwidth: bool = True
    measure_memory: bool = True  #: each cell's peak memory, in its first pass
    report: bool = False  #: draw the run's report when its last pass is done
    #: --backend NAME=TARGET: backends that are not loopvec's own, registered in every process
    user_backends: dict[str, str] = dataclasses.field(default_factory=dict)
    #: --data: the user's data set (`loopvec.userdata`), its label column and whether to
    #: standardize it; its content hash, so that every pass times the same data
    data: str | None = None
    data_label: str | None = None
    standardize: bool = False
    data_sha256: str | None = None

    @property
    def available(self) -> list[str]:
        return [name for name in self.backends if name not in self.unavailable]

    @property
    def grid_spec(self) -> Grid:
        return GRIDS[self.grid]

    @property
    def run_grid(self) -> str:
        """The grid's name, or for explicit sizes "custom-" and a hash of them, or for --data
        "data-" and the data's hash: runs of other sizes or data never merge into one folder."""
        if self.data_sha256 is not None:  # standardized data is other data
            return f"data-{self.data_sha256[:8]}{'-std' if self.standardize else ''}"
        if not self.custom_sizes:
            return self.grid
        sizes = [sorted(set(self.m_values)), sorted(set(self.n_values))]
        return f"custom-{json_digest(sizes)[:6]}"

    def training_problems(self) -> list[tuple[str, int, int, int]]:
        """(dataset, m, n, iterations) of the training cells: the grid's, or with --data the
        user's data alone ("data")."""
        training = self.grid_spec.training
        if self.data_sha256 is not None:
            return [("data", self.m_values[0], self.n_values[0], training.iterations)]
        return training.problems()

    def load_data(self) -> UserData:
        """The --data set (loaded once a process: see `Pass`), the content this run began with."""
        assert self.data is not None
        return checked_data(self.data, self.data_label, self.standardize, self.data_sha256)

    @property
    def pass_time_s(self) -> float:
        """Time per cell in one pass: the grid's time per cell over its passes."""
        return self.max_time_s / self.passes

    def run_folder(self, machine: dict[str, Any]) -> Path:
        """Where this run's cells go on `machine`: a folder named by the machine state and grid
        (`loopvec.provenance.run_name`), or the reference run."""
        if self.update_reference:
            return self.results_dir / REFERENCE_RUN
        return self.results_dir / run_name(machine, self.run_grid)

    def to_json(self) -> str:
        values = dataclasses.asdict(self)
        values["results_dir"] = str(self.results_dir)
        for key in ("budget_s", "train_budget_s"):
            values[key] = json_seconds(values[key])
        return json.dumps(values)

    @classmethod
    def from_json(cls, text: str) -> Settings:
        values = json.loads(text)
        for key in ("budget_s", "train_budget_s"):
            values[key] = math.inf if values[key] is None else values[key]
        tuples = ("m_values", "n_values", "backends", "threads", "dtypes", "layouts")
        values.update({key: tuple(values[key]) for key in tuples})
        return cls(**{**values, "results_dir": Path(values["results_dir"])})


def json_seconds(limit_s: float) -> float | None:
    """A limit as JSON, which has no inf: "no limit" is written as null."""
    return limit_s if math.isfinite(limit_s) else None


def unavailable_backends(names: Sequence[str]) -> dict[str, str]:
    """Of `names`, the backends whose packages are not installed here, each with why. Found
    without importing them: the driver stays light (torch, JAX and Dask would hold memory the
    passes' memory rule counts as taken); a pass that cannot import one fails, saying why."""
    reasons = {name: f"plug-in {name}: {why}" for name, why in plugin_problems().items()}
    reasons = {name: why for name, why in reasons.items() if name in names}
    for name in names:
        for package in get_backend(name).requires:
            if importlib.util.find_spec(package) is None:
                reasons[name] = not_installed(name, package)
    return reasons


def make_settings(options: dict[str, Any], all_backends: Sequence[str]) -> Settings:
    """Settings from parsed option values (keyed as the options' dests, each option's type has
    checked it alone), checking what no option can check alone. SettingsError if they cannot
    make a run."""
    grid = GRIDS[options["grid"]]
    passes = options["passes"] or grid.passes
    if (options.get("pass_number") or 1) > passes:
        raise SettingsError(f"--pass: this run has {passes} passes; got {options['pass_number']}")
    threads = tuple(options["threads"] or default_threads())
    most = numba.config.NUMBA_NUM_THREADS  # type: ignore[attr-defined]
    if max(threads) > most:
        raise SettingsError(
            f"--threads: numba can use at most {most} threads here; got {list(threads)}"
        )
    results_dir = Path(options["results_dir"])
    if results_dir.exists() and not results_dir.is_dir():
        raise SettingsError(f"--results-dir: expected a folder; got the file {results_dir}")
    user_backends = register_user_backends(options.get("backend") or [])
    known = [*all_backends, *(name for name in user_backends if name not in all_backends)]
    if unknown := [name for name in options["backends"] or () if name not in known]:
        raise SettingsError(
            f"--backends: {', '.join(unknown)} not a backend; the backends: {', '.join(known)} "
            "(add yours with --backend NAME=TARGET)"
        )
    backends = tuple(options["backends"] or known)
    max_time_s = options["max_time_s"]
    m_values, n_values = tuple(options["m"] or grid.m_values), tuple(options["n"] or grid.n_values)
    data = None
    if options.get("data") is not None:
        if options["m"] or options["n"]:
            raise SettingsError("--data times the data's own shape: leave out --m and --n")
        data = checked_data(
            str(options["data"]), options.get("label"), bool(options.get("standardize"))
        )
        m_values, n_values = (data.m,), (data.n,)
    elif options.get("label") or options.get("standardize"):
        raise SettingsError("--label and --standardize are options of --data")
    return Settings(
        grid=options["grid"],
        m_values=m_values,
        n_values=n_values,
        custom_sizes=bool(options["m"] or options["n"]),
        backends=backends,
        unavailable=unavailable_backends(backends),
        threads=threads,
        dtypes=tuple(options["dtypes"]),
        layouts=tuple(options["layouts"]),
        budget_s=options["budget"],
        train_budget_s=options["train_budget"],
        max_time_s=grid.max_time_s if max_time_s is None else float(max_time_s),
        passes=passes,
        blocks=options["blocks"],
        order_seed=options["order_seed"],
        results_dir=results_dir,
        fresh=options["fresh"],
        update_reference=options["update_reference"],
        measure_bandwidth=not options["no_bandwidth"],
        measure_memory=not options["no_memory"],
        report=options["report"],
        user_backends=user_backends,
        data=None if data is None else str(options["data"]),
        data_label=options.get("label"),
        standardize=bool(options.get("standardize")),
        data_sha256=None if data is None else data.sha256,
    )


def checked_data(
    path: str, label: str | None, standardize: bool, sha256: str | None = None
) -> UserData:
    """`loopvec.userdata.load_data`, its errors a SettingsError; and where `sha256` is given,
    a SettingsError unless the content is still that."""
    try:
        data = load_data(path, label=label, standardize=standardize)
    except (OSError, ValueError, MemoryError) as error:
        raise SettingsError(f"--data {path}: {error}") from None
    if sha256 is not None and data.sha256 != sha256:
        raise SettingsError(f"--data {path}: its content changed since the run began")
    return data


def register_user_backends(given: Sequence[str] | dict[str, str]) -> dict[str, str]:
    """Register each NAME=TARGET (`loopvec.backends.register`) in this process; {name: target}.
    SettingsError naming the one that cannot be loaded."""
    if isinstance(given, dict):
        pairs = dict(given)
    else:
        named = [_name_and_target(g) for g in given]
        pairs = dict(named)
        if len(pairs) < len(named):
            twice = sorted({n for n, _ in named if [m for m, _ in named].count(n) > 1})
            raise SettingsError(f"--backend: each name once; {', '.join(twice)} given twice")
    for name, target in pairs.items():
        try:
            register(name, target)
        except ValueError as error:  # TargetError included: one line naming the file
            raise SettingsError(f"--backend {name}={target}: {error}") from None
    return pairs


def _name_and_target(text: str) -> tuple[str, str]:
    name, equals, target = text.partition("=")
    if not equals or not name or not target:
        raise SettingsError(
            f"--backend: expected NAME=TARGET (mine=solutions/alice.py:gradient); got {text!r}"
        )
    return name, target
