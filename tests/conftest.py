"""Shared fixtures: every test that takes `backend` runs once per registered backend, and every
test that takes `compiled_backend` once per backend with a compiled training loop. The tests run
the kernels with today's constants (LOOPVEC_KERNEL_PLAN=default), they and their child processes:
a plan measured while the tests load every core would be a wrong one, kept in the compiled-code
cache that `nox -s bench` shares. test_tuning.py measures plans in caches of its own, and
test_kernels.py runs every plan by name."""

from __future__ import annotations

import os
import shutil
import signal
from collections.abc import Iterator

import pytest

from loopvec import available_backends, backend_names
from loopvec.backends import BACKENDS, get_backend
from loopvec.tuning import PLAN_ENV

os.environ.setdefault(PLAN_ENV, "default")


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


@pytest.fixture
def sigint_as_a_terminal_sets_it() -> Iterator[None]:
    """Python's own SIGINT handler, as in a terminal: a shell without job control (CI's may)
    starts background commands with SIGINT ignored, and loopvec leaves an ignored SIGINT alone."""
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, before)


#: The end-to-end tests, longest first (as --durations shows them on 2 cores): started first,
#: one after the other on each worker, so that they overlap the short tests instead of ending
#: the run.
LONGEST_FIRST = (
    "test_bench_run.py::test_smoke_grid_writes_a_run_every_figure",
    "test_bench_run.py::test_the_first_pass_measures_each_cells_memory",
    "test_bench_run.py::test_resume_keeps_a_cell_only_for_the_same_code",
    "test_bench_run.py::test_a_run_of_another_machine_or_the_reference",
    "test_dask.py::test_the_scale_study_runs_end_to_end",
    "test_plugins.py::test_plugins_are_found_checked_timed_and_marked",
    "test_examples.py::test_the_lesson_notebook_runs",
    "test_jit_cache.py::test_second_process_loads_every_kernel",
    "test_dask.py::test_ctrl_c_during_the_scale_study",
    "test_bench_run.py::test_sigterm_keeps_finished_cells",
    "test_bench_hardening.py::test_a_second_run_into_the_same_folder",
    "test_bench_hardening.py::test_the_first_size_of_a_backend",
    "test_dask.py::test_a_wait_for_a_scheduler_or_a_worker",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under pytest-xdist (`nox -s tests`), start the longest tests first on every worker:
    worksteal hands each worker a contiguous share of the list, so the longest go to the front
    of each share in turn."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers < 2:
        return

    def rank(item: pytest.Item) -> int:
        name = item.nodeid.split("/")[-1]
        return next((k for k, long in enumerate(LONGEST_FIRST) if name.startswith(long)), -1)

    longest = sorted((item for item in items if rank(item) >= 0), key=rank)
    rest = [item for item in items if rank(item) < 0]
    ordered: list[pytest.Item] = []
    for k in range(workers):
        share = (len(items) - len(ordered)) // (workers - k)  # as worksteal deals them out
        mine = longest[k::workers]
        ordered += mine + rest[: share - len(mine)]
        rest = rest[share - len(mine) :]
    items[:] = ordered + rest
