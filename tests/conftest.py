"""Shared fixtures: every test that takes `backend` runs once per registered backend."""

from __future__ import annotations

import pytest

from loopvec import available_backends, backend_names


@pytest.fixture(params=backend_names(), scope="session")
def backend(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    if name not in available_backends():
        pytest.skip(f"backend {name} cannot run here: its dependencies do not import")
    return name
