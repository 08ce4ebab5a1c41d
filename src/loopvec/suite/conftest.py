"""The benchmark grid's pytest hooks; the protocol itself is package code (`loopvec.runner`).

    pytest bench --grid quick                 # a named grid from loopvec.grid.GRIDS
    pytest bench --m 1000,1e6 --n 100         # explicit sizes (grid "custom-" + their hash)
    pytest bench --backends numba_loops --threads 1 --budget 0.2 --fresh
    pytest bench/test_gradient.py              # the gradient grid alone, no training runs
    pytest bench --passes 3                    # passes (default: the grid's)
    pytest bench --report                      # then draw the run's figures and reports
    pytest bench --update-reference            # time into results/reference/ (re-make it)

`pytest bench` without --pass is the driver (`loopvec.runner.driver`): it checks the options,
takes the run folder's lock and runs each pass as a child process. A pass (`--pass K`) registers
a `BenchPlugin` holding its `Pass`, which the tests reach through the `run` fixture. How a run
measures, and what a number means: docs/method.md.
"""

from __future__ import annotations

import pytest

from loopvec.runner.plugin import add_options, configure, drive, run_of
from loopvec.runner.session import Pass


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> int | None:
    return drive(config)


def pytest_configure(config: pytest.Config) -> None:
    configure(config, bench=config.rootpath)  # the checkout running it, for its git state


@pytest.fixture
def run(request: pytest.FixtureRequest) -> Pass:
    """This pass of the run."""
    return run_of(request.config)
