"""loopvec's sessions: `nox -l` lists them, `nox -s NAME -- ARGS` passes ARGS through."""

from __future__ import annotations

import tempfile
from pathlib import Path

import nox

nox.options.sessions = ["tests", "lint"]  # bench and plots write under results/: run them by name

# numba caches compiled kernels here rather than next to the package (which may be read-only),
# one folder shared by every session, so each kernel is compiled once per machine and version of
# its code: inside, a folder per code fingerprint (loopvec.backends._jit) keeps versions apart.
ENV = {"NUMBA_CACHE_DIR": str(Path(tempfile.gettempdir()) / "loopvec-numba-cache")}
# The machine may pin OpenBLAS to an older kernel (a workaround for old builds); the benchmark
# measures numpy as it runs by default. machine.json records the kernel used.
BENCH_ENV = {**ENV, "OPENBLAS_CORETYPE": None, "OPENBLAS_L2_SIZE": None}


@nox.session
def tests(session: nox.Session) -> None:
    """Run the unit tests, framework backends included, on an installed (not editable) loopvec."""
    session.install(".[test,peers,dask]")
    # A process per core (pytest-xdist): most of the time goes to child processes and waits
    # (bench runs, Dask clusters, a browser); worksteal evens out the long end-to-end tests.
    # --durations: CI's log shows what the time went to (the notebook's execution among it).
    session.run(
        "pytest", "-n", "auto", "--dist", "worksteal", "--durations=12", *session.posargs, env=ENV
    )


@nox.session
def bench(session: nox.Session) -> None:
    """Time the grid (default; `-- --grid quick` for a first look) into a run folder under
    results/, then draw its figures and report there."""
    _bench(session, ".[bench]")


@nox.session
def peers(session: nox.Session) -> None:
    """The bench session with PyTorch, JAX and Dask installed: loopvec against the frameworks."""
    _bench(session, ".[bench,peers,dask]")


def _bench(session: nox.Session, install: str) -> None:
    session.install(install)
    session.run(
        "pytest",
        "bench",
        "--benchmark-columns=median,iqr,rounds",
        "--report",  # the driver hands the run it timed to `loopvec report`
        *session.posargs,
        env=BENCH_ENV,
    )


@nox.session
def aa(session: nox.Session) -> None:
    """How often a comparison calls a change where there is none: HEAD timed against itself,
    in two separate runs and in one run of two versions (ABBA), with a planted 10 % slowdown
    that both must find (`python -m loopvec.runner.aa`; `-- --repeat 3`; about 15 min each)."""
    session.install(".[bench]")
    session.run("python", "-m", "loopvec.runner.aa", *session.posargs, env=BENCH_ENV)


@nox.session
def scale(session: nox.Session) -> None:
    """The Dask study (`loopvec scale`): chunk size, in memory, out of core to beyond this
    machine's memory, training against dask-ml and dask-glm; into results/scale/ (about
    40 GB of free disk; `-- --smoke` for tiny sizes)."""
    session.install(".[dask,peers]")
    session.run("loopvec", "scale", *session.posargs, env=BENCH_ENV)


@nox.session
def plots(session: nox.Session) -> None:
    """Draw the figures and REPORT.md of the newest run under results/ (or of given paths)."""
    session.install(".")
    session.run("loopvec", "report", *session.posargs, env=ENV)


@nox.session
def mutants(session: nox.Session) -> None:
    """Put each of tests/mutants.py's realistic bugs into a copy of the package and check that
    the tests catch it (`-- NAME` for some; seconds a mutant, half a minute where it
    recompiles a kernel; not part of `tests`)."""
    session.install(".[test]")
    session.run("python", "tests/mutants.py", *session.posargs, env=ENV)


@nox.session
def lint(session: nox.Session) -> None:
    """Check style with ruff (src, tests, bench) and types with mypy (strict, src)."""
    session.install("-e", ".[lint]")
    session.run("ruff", "check", "src", "tests", "bench", "noxfile.py")
    session.run("ruff", "format", "--check", "src", "tests", "bench", "noxfile.py")
    session.run("mypy", *session.posargs, env=ENV)
