"""`pytest bench ...` in a checkout runs the grid, whose suite lives in the package
(`loopvec/suite`, so that `loopvec.bench` finds it wherever loopvec is installed)."""

from loopvec.suite.conftest import pytest_addoption, pytest_cmdline_main, pytest_configure, run

__all__ = ["pytest_addoption", "pytest_cmdline_main", "pytest_configure", "run"]
