"""Shared fixtures: every test that takes `backend` runs once per registered backend, and every
test that takes `compiled_backend` once per backend with a compiled training loop."""

from __future__ import annotations

import os
import shutil

import pytest

from loopvec import available_backends, backend_names
from loopvec.backends import BACKENDS, get_backend


@pytest.fixture(params=backend_names(), scope="session")
def backend(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    if name not in available_backends():
        pytest.skip(f"backend {name} cannot run here: its dependencies do not import")
    return name


@pytest.fixture(params=[name for name, spec in BACKENDS.items() if spec.compiled_loop])
def compiled_backend(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    if name not in available_backends():
        pytest.skip(f"backend {name} cannot run here: its dependencies do not import")
    if "torch.compile" in get_backend(name).compiled_loop:
        from loopvec.backends._torch import CXX_COMPILERS  # noqa: PLC0415 (imports torch)

        if not any(map(shutil.which, CXX_COMPILERS)):
            pytest.skip(f"torch.compile needs a C++ compiler; none of {CXX_COMPILERS} is here")
    return name


@pytest.fixture
def as_a_user_runs_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """Child processes (`pytest bench`) run as a user's would, not as pytest-xdist workers: the
    tests run in xdist's workers, whose PYTEST_XDIST_* variables a child inherits, and
    pytest-benchmark turns its timing off where it finds them."""
    for name in [name for name in os.environ if name.startswith("PYTEST_XDIST_")]:
        monkeypatch.delenv(name)
