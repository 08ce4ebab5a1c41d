"""The registry names every backend, loads kernels lazily and explains what is missing."""

from __future__ import annotations

import pytest

import loopvec
from loopvec import backends
from loopvec.backends import Backend, get_kernel

REQUIRED = ["python_loops", "partly_vectorized", "numpy_vectorized", "numba_loops"]
#: Slowest idea first: tables, charts and the grid's order follow it.
LATER = ["numba_fused", "numba_parallel", "torch_autograd", "torch_formula"]
LATER += ["jax_grad", "jax_formula", "dask_fused", "dask_array"]


def test_the_backends_are_registered_slowest_idea_first() -> None:
    assert loopvec.backend_names() == REQUIRED + LATER


def test_available_is_a_subset_in_registry_order() -> None:
    available = loopvec.available_backends()
    assert available == [name for name in loopvec.backend_names() if name in available]
    assert "numpy_vectorized" in available


def test_every_backend_module_defines_the_kernel(backend: str) -> None:
    assert callable(get_kernel(backend))


def test_missing_dependency_raises_import_error_naming_the_package(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = Backend("numba_loops", "jit", ("loopvec_no_such_package",), "none", "test entry")
    monkeypatch.setitem(backends.BACKENDS, "needs_missing", fake)
    assert "needs_missing" in loopvec.backend_names()
    assert "needs_missing" not in loopvec.available_backends()
    with pytest.raises(
        ImportError, match=r"needs the package 'loopvec_no_such_package'.*pip install"
    ):
        loopvec.gradient([[1.0]], 0.0, [[1.0]], [[1.0]], backend="needs_missing")
