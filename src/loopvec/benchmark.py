"""`loopvec.bench(...)`: the benchmark grid from Python (a notebook), returning its results.

    results = loopvec.bench(["numpy_vectorized", "numba_fused", my_gradient], m=[1e3, 1e5], n=[100])
    results.speedup("python_loops", "numba_fused", m=100_000, n=100)   # 95 % interval
    results.winner(m=100_000, n=100)
    results.plot()["runtime_vs_m"]                                     # matplotlib figures
    results                                                           # a table, in Jupyter

It runs the bench itself, not a copy of it: `python -m pytest <loopvec/suite>` with the options
given, which is the driver that runs each pass as a process of its own, in interleaved blocks,
into a run folder (docs/method.md). Its progress lines are passed on as they come (printed: a
terminal and Jupyter both show them). A function among the backends is sent to the passes with
cloudpickle and timed as `--backend NAME=FILE.pkl:NAME`, checked before it is timed.
"""

from __future__ import annotations

import html
import importlib.util
import math
import signal
import subprocess
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loopvec.analysis import Winner, at_threads, max_threads, ratio, winner
from loopvec.backends import BACKENDS
from loopvec.formatting import format_estimate, format_record_time
from loopvec.results import Record, Results, TrainingRecord, load_results
from loopvec.stats import Estimate
from loopvec.target import pickled_target

SUITE = Path(__file__).parent / "suite"
#: Where the functions a notebook hands over are written for the passes (inside results_dir).
FUNCTIONS = ".loopvec-functions"
#: The lines of the passes' output passed on: progress, loopvec's notes, the summary.
_SHOWN = ("[pass ", "loopvec:", "wrote ")


class BenchError(RuntimeError):
    """The run did not finish: what the passes said is in the message."""


@dataclass(frozen=True)
class BenchResults:
    """A finished run: its folder, tidy `records` (gradient cells) and `training` records."""

    folder: Path
    results: Results

    @property
    def records(self) -> list[Record]:
        return list(self.results.records)

    @property
    def training(self) -> list[TrainingRecord]:
        return list(self.results.training)

    @property
    def machine(self) -> dict[str, Any]:
        (machine,) = self.results.machines.values()
        return machine

    def _cell(self, backend: str, m: int, n: int, threads: int | None) -> Record | None:
        threads = threads or max_threads(self.records)
        return at_threads(self.records, threads).get((backend, m, n))

    def speedup(
        self, slow: str, fast: str, *, m: int, n: int, threads: int | None = None
    ) -> Estimate | None:
        """time(slow) / time(fast) at (m, n) with its 95 % interval (None unless both were
        timed); at the run's most threads unless `threads`, in the course's layout, float64."""
        return ratio(self._cell(slow, m, n, threads), self._cell(fast, m, n, threads))

    def winner(self, *, m: int, n: int, threads: int | None = None) -> Winner | None:
        """The fastest backend at (m, n), or the backends that tie for it (`Winner`)."""
        cells = at_threads(self.records, threads or max_threads(self.records))
        return winner(cells, m, n)

    def plot(self) -> dict[str, Any]:
        """Every figure of the run, by name, as matplotlib Figures (the report's)."""
        from loopvec.plots import figures_for  # noqa: PLC0415 (matplotlib: only when drawing)

        return figures_for(self.records, self.training, self.machine)

    def to_html(self) -> str:
        """The run's report.html page: one offline file."""
        from loopvec.interactive import render_page  # noqa: PLC0415

        return render_page(self.records, self.machine, self.training)

    def _repr_html_(self) -> str:
        """A table: each size's fastest backend and its time, in the run's most threads."""
        threads = max_threads(self.records)
        cells = at_threads(self.records, threads)
        rows = []
        for m, n in sorted({(m, n) for (_, m, n) in cells}):
            won = winner(cells, m, n)
            if won is not None:
                margin = f"by {format_estimate(won.margin)}" if won.margin else ""
                rows.append(
                    f"<tr><td>{m:,}</td><td>{n}</td><td>{html.escape(won.label)}</td>"
                    f"<td>{html.escape(format_record_time(won.best))}</td><td>{margin}</td></tr>"
                )
        return (
            f"<p><b>loopvec run</b> {html.escape(self.folder.name)}: {len(self.records)} cells, "
            f"{threads} thread(s); <code>.speedup()</code>, <code>.winner()</code>, "
            "<code>.plot()</code>, <code>.to_html()</code></p><table><tr><th>m</th><th>n</th>"
            f"<th>fastest</th><th>time</th><th>lead</th></tr>{''.join(rows)}</table>"
        )


def _backend_options(backends: Sequence[str | Callable[..., Any]], folder: Path) -> list[str]:
    """--backend NAME=TARGET for each function and NAME=TARGET, and --backends naming all."""
    names, arguments = [], []
    for backend in backends:
        if callable(backend):
            name = getattr(backend, "__name__", "")
            if not name.isidentifier() or name in BACKENDS:
                raise ValueError(
                    f"a function timed as a backend is named by its __name__, which must be an "
                    f"identifier and not one of loopvec's backends; got {name!r}: give it as "
                    "def my_name(w, b, X, Y), or as 'my_name=FILE.py:FUNCTION'"
                )
            arguments.append(f"--backend={name}={pickled_target(backend, name, folder)}")
        elif "=" in backend:
            name = backend.partition("=")[0]
            arguments.append(f"--backend={backend}")
        else:
            name = backend
        names.append(name)
    if twice := sorted({name for name in names if names.count(name) > 1}):
        raise ValueError(f"each backend once: {', '.join(twice)} given twice")
    return [*arguments, f"--backends={','.join(names)}"] if names else arguments


def _size_options(
    m: Sequence[float] | None,
    n: Sequence[float] | None,
    sizes: Sequence[tuple[float, float]] | None,
) -> list[str]:
    """--m and --n of m and n, or of (m, n) pairs that make a grid (every m with every n)."""
    if sizes is not None:
        if m is not None or n is not None:
            raise TypeError("give sizes=[(m, n), ...] or m= and n=, not both")
        m, n = sorted({s[0] for s in sizes}), sorted({s[1] for s in sizes})
        if len(set(sizes)) != len(m) * len(n):
            raise ValueError(
                f"sizes must be every m with every n (the grid times their product); got "
                f"{list(sizes)}: give m={m} and n={n} for their product"
            )
    pairs = (("m", _as_option(m)), ("n", _as_option(n)))
    return [f"--{option}={value}" for option, value in pairs if value is not None]


def _as_option(values: Sequence[float] | None) -> str | None:
    if values is None:
        return None
    if any(not math.isfinite(v) or v != int(v) or v < 1 for v in values):
        raise ValueError(f"sizes must be positive whole numbers; got {list(values)}")
    return ",".join(str(int(v)) for v in values)


def bench(
    backends: Sequence[str | Callable[..., Any]] | None = None,
    *,
    m: Sequence[float] | None = None,
    n: Sequence[float] | None = None,
    sizes: Sequence[tuple[float, float]] | None = None,
    grid: str = "quick",
    threads: Sequence[int] | None = None,
    passes: int | None = None,
    data: str | Path | None = None,
    label: str | None = None,
    standardize: bool = False,
    dtypes: Sequence[str] = ("float64",),
    layouts: Sequence[str] = ("C",),
    results_dir: str | Path = "results",
    training: bool = True,
    options: Sequence[str] = (),
    say: Callable[[str], None] = print,
) -> BenchResults:
    """Run the benchmark grid and return its results.

    backends: names (`loopvec.backend_names()`), "NAME=TARGET" strings (as `--backend`), or
    functions gradient(w, b, X, Y) -> (dw, db) (named by their __name__); default: all.
    m, n: the sizes (default: `grid`'s), every m with every n; or sizes: (m, n) pairs that make
    such a grid; data: a data set instead (`docs/data.md`). The other keywords are the bench's
    options; `options` passes any more, as on the command line.
    """
    for package in ("pytest", "pytest_benchmark"):
        if importlib.util.find_spec(package) is None:
            raise ImportError(
                f"loopvec.bench runs the bench with pytest-benchmark, and {package} is not "
                "installed: pip install 'loopvec[bench]'"
            )
    results_dir = Path(results_dir).absolute()
    arguments = [f"--grid={grid}", f"--results-dir={results_dir}", "--report"]
    arguments += _backend_options(backends or (), results_dir / FUNCTIONS)
    arguments += _size_options(m, n, sizes)
    if threads is not None:
        arguments.append(f"--threads={','.join(map(str, threads))}")
    if passes is not None:
        arguments.append(f"--passes={passes}")
    if data is not None:
        arguments += [f"--data={data}", *([f"--label={label}"] if label else [])]
        arguments += ["--standardize"] if standardize else []
    arguments += [f"--dtypes={','.join(dtypes)}", f"--layouts={','.join(layouts)}", *options]
    suite = SUITE if training else SUITE / "test_gradient.py"
    # The suite's own settings, never those of a pytest.ini or conftest.py where it is called.
    own = ["-c", str(SUITE / "pytest.ini"), f"--rootdir={SUITE}", "-p", "no:cacheprovider"]
    command = [sys.executable, "-m", "pytest", str(suite), *own, *arguments]
    folder = _run(command, say)
    return BenchResults(folder, load_results([folder]))


def _follow(lines: Iterable[str], said: list[str], say: Callable[[str], None]) -> None:
    """Keep every line of the bench's output in `said`; pass its progress lines to `say`."""
    for line in lines:
        said.append(line.rstrip())
        if line.startswith(_SHOWN):
            say(line.rstrip())


def _run(command: list[str], say: Callable[[str], None]) -> Path:
    """Run the bench, passing its progress on; the run folder it wrote."""
    said: list[str] = []
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
    ) as child:
        assert child.stdout is not None
        try:
            _follow(child.stdout, said, say)
        except KeyboardInterrupt:
            # In a terminal Ctrl-C reached the bench too (one process group); in Jupyter only
            # this process: pass it on once, and let the bench end its pass and keep its cells.
            if child.poll() is None:
                child.send_signal(signal.SIGINT)
            _follow(child.stdout, said, lambda line: None)
            child.wait()
            raise
    folders = [
        Path(line.rpartition("cell files in ")[2])
        for line in said
        if line.startswith("loopvec: cell files in ")
    ]
    if child.returncode != 0 or not folders:
        raise BenchError(
            f"the bench exited with status {child.returncode}:\n" + "\n".join(said[-30:])
        )
    return folders[-1]
