"""The Dask backends on real clusters: loopvec's LocalCluster, a scheduler and a worker started as
separate processes, a store larger than a worker's memory, a worker killed mid-gradient.

The generic backend tests (test_backends, test_training) run dask_fused and dask_array too; these
cover what only Dask has: dask arrays in, values checked by chunk, clusters, out of core, faults.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import loopvec
from loopvec.agreement import Reference, check_training
from loopvec.problem import Problem

dask_array = pytest.importorskip("dask.array", reason="the [dask] extra is not installed")
pytest.importorskip("distributed", reason="the [dask] extra is not installed")
zarr_store = pytest.importorskip("loopvec.zarr_store", reason="zarr is not installed")

from loopvec.backends._dask import MAX_CHUNK_BYTES, Scattered, example_chunks, to_native  # noqa: E402
from loopvec.cli import main  # noqa: E402
from loopvec.cluster import get_client  # noqa: E402
from loopvec.scale import STOPPING, STUDIES, attempt, load  # noqa: E402
from loopvec.scale_report import crossover, ratio  # noqa: E402

DASK_BACKENDS = ["dask_fused", "dask_array"]


def in_memory(problem: Problem) -> Problem:
    """The store's problem loaded whole (small stores only)."""
    return Problem(problem.w, problem.b, np.asarray(problem.X), np.asarray(problem.Y))


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """20,011 examples of 7 features in chunks of 3000 (the last one partial)."""
    path = tmp_path_factory.mktemp("zarr") / "problem.zarr"
    return zarr_store.write_problem(path, 20_011, 7, seed=3, chunk_examples=3000)


@pytest.mark.parametrize("backend", DASK_BACKENDS)
def test_a_zarr_store_gives_the_gradient_of_its_values(store: Path, backend: str) -> None:
    lazy = zarr_store.open_problem(store)
    assert isinstance(lazy.X, dask_array.Array)
    assert lazy.X.chunks[1][:2] == (3000, 3000)
    got = loopvec.gradient(lazy.w, lazy.b, lazy.X, lazy.Y, backend=backend)
    Reference.of(in_memory(lazy)).check(backend, got)


def test_loss_and_training_on_dask_arrays_are_numpys(store: Path) -> None:
    lazy, whole = zarr_store.open_problem(store), in_memory(zarr_store.open_problem(store))
    assert loopvec.loss(lazy.w, lazy.b, lazy.X, lazy.Y) == pytest.approx(
        loopvec.loss(whole.w, whole.b, whole.X, whole.Y), rel=1e-13
    )
    settings = {"learning_rate": 0.5, "iterations": 30, "record_every": 10, "l2_penalty": 0.5}
    got = loopvec.train(lazy.X, lazy.Y, backend="dask_fused", **settings)  # type: ignore[arg-type]
    check_training("dask_fused", got, loopvec.train(whole.X, whole.Y, **settings))  # type: ignore[arg-type]


def test_a_bad_value_is_named_with_its_chunk_of_examples(store: Path) -> None:
    lazy = zarr_store.open_problem(store)
    X = dask_array.where(dask_array.arange(lazy.X.shape[1]) == 7000, np.nan, lazy.X)
    with pytest.raises(ValueError, match=r"X must be finite; got nan at index \(0, 7000\) in the "
                       r"chunk of examples 6000 to 8999"):  # fmt: skip
        loopvec.gradient(lazy.w, lazy.b, X, lazy.Y, backend="dask_fused")
    Y = dask_array.where(dask_array.arange(lazy.Y.shape[1]) == 20_010, 2.0, lazy.Y)
    with pytest.raises(ValueError, match=r"Y must hold labels in \[0, 1\]; got 2.0 at example "
                       r"20010 in the chunk of examples 18000 to 20010"):  # fmt: skip
        loopvec.gradient(lazy.w, lazy.b, lazy.X, Y, backend="dask_array")


def test_shapes_are_checked_without_computing_and_other_backends_refuse_dask(store: Path) -> None:
    lazy = zarr_store.open_problem(store)
    with pytest.raises(
        ValueError, match=r"Y must have shape \(1, 20011\) to match X; got \(1, 20\)"
    ):
        loopvec.gradient(lazy.w, lazy.b, lazy.X, lazy.Y[:, :20], backend="dask_fused")
    with pytest.raises(ValueError, match="w must"):
        loopvec.gradient(np.ones((3, 1)), lazy.b, lazy.X, lazy.Y, backend="dask_fused")
    with pytest.raises(TypeError, match="use a Dask backend \\(dask_fused, dask_array\\)"):
        loopvec.gradient(lazy.w, lazy.b, lazy.X, lazy.Y, backend="numba_fused")


@pytest.mark.parametrize(
    ("n", "m", "workers", "expected"),
    [
        (7, 20_011, 2, (10_006, 10_005)),  # one near-equal chunk per worker
        (100, 4_000_000, 2, (1_000_000,) * 4),  # 3.2 GB: two chunks of at most 1 GiB each
        (3, 3, 4, (1, 1, 1)),  # never an empty chunk
    ],
)
def test_numpy_x_is_scattered_in_a_few_equal_chunks_per_worker(
    n: int, m: int, workers: int, expected: tuple[int, ...]
) -> None:
    chunks = example_chunks(n, m, 8, workers)
    assert chunks == expected
    assert max(chunks) * n * 8 <= max(MAX_CHUNK_BYTES, n * 8)


def test_each_chunk_of_x_sits_beside_its_chunk_of_y_and_persisted_chunks_keep_their_order(
    store: Path,
) -> None:
    whole = in_memory(zarr_store.open_problem(store))
    _, _, X, Y = to_native(whole.w, whole.b, whole.X, whole.Y, chunks=(5000, 5000, 5000, 5011))
    holders = get_client().who_has([*X.futures, *Y.futures])
    for x, y in zip(X.futures, Y.futures, strict=True):
        assert holders[x.key] == holders[y.key]
    lazy = zarr_store.open_problem(store)
    _, _, X, _ = to_native(lazy.w, lazy.b, lazy.X, lazy.Y)
    assert isinstance(X, Scattered)
    assert X.chunks == lazy.X.chunks[1]
    firsts = [future.result()[:, 0] for future in X.futures]
    np.testing.assert_array_equal(firsts, whole.X[:, list(np.cumsum((0, *X.chunks[:-1])))].T)


def run_python(script: str, env: dict[str, str] | None = None, timeout: int = 300) -> str:
    """Run `script` in a fresh Python (its own cluster), returning its output; fails on error."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})},
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_a_separately_started_scheduler_and_worker(tmp_path: Path) -> None:
    """`dask scheduler` and `dask worker` (as `python -m dask`) as the README says; loopvec
    connects through LOOPVEC_DASK_SCHEDULER."""
    file = tmp_path / "scheduler.json"
    dask, common = [sys.executable, "-m", "dask"], ["--no-dashboard", "--scheduler-file", str(file)]
    scheduler = subprocess.Popen(
        [*dask, "scheduler", "--port", "0", *common],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    worker = None
    try:
        deadline = time.monotonic() + 60
        while not file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        address = json.loads(file.read_text())["address"]
        worker = subprocess.Popen(
            [*dask, "worker", "--nthreads", "1", *common],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        output = run_python(
            """
            import loopvec
            from loopvec.agreement import Reference
            from loopvec.cluster import get_client
            client = get_client()
            client.wait_for_workers(1, timeout=60)
            p = loopvec.make_problem(30_001, 9, seed=5)
            for backend in ("dask_fused", "dask_array"):
                got = loopvec.gradient(p.w, p.b, p.X, p.Y, backend=backend)
                Reference.of(p).check(backend, got)
            print(client.scheduler.address, len(client.scheduler_info()["workers"]))
            """,
            env={"LOOPVEC_DASK_SCHEDULER": address},
        )
        assert output.split() == [address, "1"]
    finally:
        for process in (worker, scheduler):
            if process is not None:
                process.terminate()
                process.wait(timeout=60)


def test_a_store_three_times_a_workers_memory_streams_without_restart_or_spill(
    tmp_path: Path,
) -> None:
    """1.5 GB of X through two workers limited to 400 MiB each, spilling off: a worker that
    held too much would be restarted by its nanny, which the test would see."""
    output = run_python(
        f"""
        import numpy as np, dask, zarr
        from distributed import Client, LocalCluster
        import loopvec
        from loopvec.zarr_store import open_problem, write_problem
        from loopvec.sigmoid import sigmoid

        path = write_problem({str(tmp_path / "big.zarr")!r}, 1_875_000, 100, seed=1,
                             chunk_examples=20_000)  # 16 MB chunks
        memory = {{"spill": False, "target": False, "pause": 0.9, "terminate": 0.95}}
        with dask.config.set({{"distributed.worker.memory." + k: v for k, v in memory.items()}}):
            cluster = LocalCluster(n_workers=2, threads_per_worker=1, memory_limit="400MiB",
                                   dashboard_address=":0")
            client = Client(cluster)
            workers = sorted(client.scheduler_info()["workers"])
            p = open_problem(path)
            assert p.X.nbytes >= 1.5e9 and p.X.nbytes > 3 * 400 * 2**20
            dw, db = loopvec.gradient(p.w, p.b, p.X, p.Y, backend="dask_fused")
            assert sorted(client.scheduler_info()["workers"]) == workers  # none restarted
        # the same sums, chunk by chunk in this process, without Dask
        root = zarr.open_group(path, mode="r")
        X, Y = root["X"], root["Y"]
        want, want_db, step = np.zeros((100, 1)), 0.0, X.chunks[1]
        for start in range(0, X.shape[1], step):
            Xc, Yc = X[:, start:start + step], Y[:, start:start + step]
            dz = sigmoid(p.w.T @ Xc + p.b) - Yc
            want += Xc @ dz.T
            want_db += float(dz.sum())
        m = X.shape[1]
        np.testing.assert_allclose(dw, want / m, rtol=1e-9, atol=1e-15)
        assert abs(db - want_db / m) <= 1e-12
        print("ok", p.X.nbytes)
        """,
        timeout=600,
    )
    assert output.startswith("ok")


def test_a_worker_killed_mid_gradient_is_recomputed_never_a_wrong_number(tmp_path: Path) -> None:
    output = run_python(
        f"""
        import os, signal, threading, time
        import numpy as np
        from distributed import Client, LocalCluster
        import loopvec
        from loopvec.agreement import Reference
        from loopvec.backends._dask import get_client
        from loopvec.zarr_store import open_problem, write_problem

        path = write_problem({str(tmp_path / "kill.zarr")!r}, 400_000, 100, seed=2,
                             chunk_examples=10_000)
        client = Client(LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=":0"))
        get_client()  # the kernels compiled on the workers now: the kill lands in the gradient
        p = open_problem(path)
        results = []
        def compute():
            try:
                results.append(loopvec.gradient(p.w, p.b, p.X, p.Y, backend="dask_fused"))
            except Exception as error:  # a clear error is allowed; a wrong number is not
                results.append(error)
        pids = client.run(os.getpid)
        thread = threading.Thread(target=compute)
        thread.start()
        time.sleep(0.15)  # a gradient takes 0.5 s or more here
        assert thread.is_alive(), "the gradient ended before the kill: make the store larger"
        os.kill(next(iter(pids.values())), signal.SIGKILL)
        thread.join(timeout=240)
        assert not thread.is_alive(), "the gradient hangs after a worker died"
        (result,) = results
        if isinstance(result, Exception):
            print("error", type(result).__name__, result)
        else:
            whole = loopvec.Problem(p.w, p.b, np.asarray(p.X), np.asarray(p.Y))
            Reference.of(whole).check("dask_fused", result)
            print("recomputed")
        """,
        timeout=600,
    )
    assert output.startswith(("recomputed", "error KilledWorker")), output


def test_the_scale_study_runs_end_to_end_on_tiny_sizes(tmp_path: Path) -> None:
    """`loopvec scale --smoke`: every study measured, checked, written, drawn and reported."""
    assert main(["scale", "--smoke", "--out", str(tmp_path)]) == 0
    study = load(tmp_path / "scale.json")
    assert {r["study"] for r in study.records} == set(STUDIES)
    training = {r["backend"] for r in study.records if r["study"] == "training"}
    assert training == {"dask_fused", "dask-ml", "dask-glm", "numba_parallel"}
    assert all(r["spilled_bytes"] == 0 for r in study.records if r["study"] == "training")
    sweep = [r for r in study.records if r["study"] == "chunk_size" and "chunks" in r]
    assert sorted({r["chunks"] for r in sweep}) == [2, 18, 69]  # 16 KiB, 64 KiB, one per worker
    for record in study.records:
        assert record["low_s"] <= record["median_s"] <= record["high_s"], record
    cold, warm = (r for r in study.records if r["study"] == "out_of_core")
    assert (cold["cache"], cold["page_cache_share_before"]) == ("cold", 0.0)
    assert warm["page_cache_share_before"] > 0.95  # X and Y read: all but a little metadata
    assert not (tmp_path / "stores").exists()  # the stores are removed after the study
    report = (tmp_path / "SCALE.md").read_text()
    for heading in ("Chunk size", "In memory", "Out of core", "Gradient descent"):
        assert f"## {heading}" in report
    assert (tmp_path / "scale.png").stat().st_size > 10_000


def test_the_task_overhead_fit_recovers_its_line() -> None:
    """time = 40 ms + chunks * 2 ms exactly: kernels 40 ms, 2 ms per task, and the crossover
    at 20 chunks, i.e. X's bytes / 20."""
    records = [
        {"study": "chunk_size", "backend": "dask_fused", "chunks": c, "x_bytes": 2_000_000,
         "median_s": 0.040 + 0.002 * c}
        for c in (2, 8, 32, 128)
    ]  # fmt: skip
    fit = crossover(records)
    assert fit is not None
    assert fit.kernels_s == pytest.approx(0.040)
    assert fit.task_s.value == pytest.approx(0.002)
    assert fit.task_s.low == pytest.approx(0.002)  # a perfect line: no spread
    assert fit.crossover_bytes.value == pytest.approx(100_000)
    assert crossover(records[:2]) is None  # too few sizes to fit
    slow = {"median_s": 4.0, "low_s": 3.0, "high_s": 5.0}
    fast = {"median_s": 1.0, "low_s": 0.5, "high_s": 2.0}
    assert (ratio(slow, fast).value, ratio(slow, fast).low, ratio(slow, fast).high) == (4, 1.5, 10)
    assert np.isnan(ratio(slow, {**fast, "low_s": -0.1}).low)  # unbounded: no interval


def test_a_failed_measurement_is_recorded_with_its_reason_and_the_study_goes_on() -> None:
    def lost_worker() -> dict[str, float]:
        raise RuntimeError("worker lost")

    record = {"study": "in_memory", "backend": "dask_array", "m": 10}
    said: list[str] = []
    failed = attempt(record, lost_worker, said.append)
    assert failed == {**record, "status": "failed", "reason": "RuntimeError: worker lost"}
    assert said == ["FAILED in_memory dask_array m=10: RuntimeError: worker lost"]
    timed = attempt(record, lambda: {"median_s": 1.0}, said.append)
    assert timed == {**record, "status": "timed", "median_s": 1.0}


def test_training_checks_values_before_the_first_step_and_holds_a_persisted_input_once(
    store: Path,
) -> None:
    lazy = zarr_store.open_problem(store)
    X = dask_array.where(dask_array.arange(lazy.X.shape[1]) == 7000, np.nan, lazy.X)
    with pytest.raises(ValueError, match=r"X must be finite; got nan at index \(0, 7000\) in the "
                       r"chunk of examples 6000 to 8999"):  # fmt: skip
        loopvec.train(X, lazy.Y, backend="dask_fused", iterations=2)
    # An input already on the workers is used as it is: the same keys, not a second copy that
    # Dask would count against the workers' memory (and spill).
    X_held, Y_held = get_client().persist([lazy.X, lazy.Y])
    _, _, X, Y = to_native(lazy.w, lazy.b, X_held, Y_held)
    assert [future.key for future in X.futures] == X_held.__dask_keys__()[0]
    assert [future.key for future in Y.futures] == Y_held.__dask_keys__()[0]


def test_float32_on_dask_refuses_values_that_overflow_it_as_numpy_does(store: Path) -> None:
    lazy = zarr_store.open_problem(store)
    big_w = np.full_like(lazy.w, 1e39)  # finite in float64, infinite in float32
    with pytest.raises(ValueError, match="w does not fit in float32: its largest magnitude 1e"):
        loopvec.gradient(big_w, lazy.b, lazy.X, lazy.Y, backend="dask_fused", dtype="float32")
    X = dask_array.where(dask_array.arange(lazy.X.shape[1]) == 7000, -1e39, lazy.X)
    for backend in DASK_BACKENDS:
        with pytest.raises(ValueError, match=r"X does not fit in float32: -1e\+39 at index "
                           r"\(0, 7000\) in the chunk of examples 6000 to 8999 overflows; use "
                           r"dtype='float64'"):  # fmt: skip
            loopvec.gradient(lazy.w, lazy.b, X, lazy.Y, backend=backend, dtype="float32")
    X = dask_array.where(dask_array.arange(lazy.X.shape[1]) == 7000, np.inf, lazy.X)
    with pytest.raises(ValueError, match=r"X must be finite; got inf at index \(0, 7000\)"):
        loopvec.gradient(lazy.w, lazy.b, X, lazy.Y, backend="dask_fused", dtype="float32")
    got = loopvec.gradient(lazy.w, lazy.b, lazy.X, lazy.Y, backend="dask_fused", dtype="float32")
    assert got[0].dtype == np.float32  # values that fit are still computed


def test_training_on_dask_checks_shapes_before_reading_them(store: Path) -> None:
    lazy = zarr_store.open_problem(store)
    scalar = dask_array.from_array(np.float64(1.0))
    with pytest.raises(ValueError, match=r"X must be a 2-D array of shape \(n, m\) with known "
                       r"chunk sizes; got a dask array of shape \(\)"):  # fmt: skip
        loopvec.train(scalar, lazy.Y, backend="dask_fused", iterations=2)
    with pytest.raises(ValueError, match="X must be a rectangular array of real numbers"):
        loopvec.train([[1.0, 2.0], [3.0]], lazy.Y, backend="dask_fused", iterations=2)
    with pytest.raises(ValueError, match=r"Y must have shape \(1, 3\) to match X"):
        loopvec.train([[1.0, 2.0, 3.0]], lazy.Y, backend="dask_fused", iterations=2)
    X, Y = [[1.0, -2.0, 0.5]], dask_array.from_array(np.array([[1.0, 0.0, 1.0]]))
    got = loopvec.train(X, Y, backend="dask_fused", iterations=5, record_every=2)
    check_training("dask_fused", got, loopvec.train(X, np.asarray(Y), iterations=5, record_every=2))


def test_training_sends_its_data_again_after_a_worker_died_and_learns_the_same_model() -> None:
    output = run_python(
        """
        import os, signal
        from distributed import Client, LocalCluster
        import loopvec
        from loopvec.agreement import check_training

        if __name__ == "__main__":
            client = Client(LocalCluster(n_workers=2, threads_per_worker=1,
                                         dashboard_address=":0"))
            p = loopvec.make_problem(100_000, 20, seed=1)
            steps = []
            def kill_a_worker_at_step_5(k):
                steps.append(k)
                if len(steps) == 5:  # every worker holds a chunk of the scattered X
                    os.kill(next(iter(client.run(os.getpid).values())), signal.SIGKILL)
            settings = dict(iterations=30, record_every=10, learning_rate=0.5, l2_penalty=1.0)
            got = loopvec.train(p.X, p.Y, backend="dask_fused", progress=kill_a_worker_at_step_5,
                                **settings)
            check_training("dask_fused", got, loopvec.train(p.X, p.Y, **settings))
            print("learned", got.iterations, len(got.costs))
        """
    )
    assert output.split()[-3:] == ["learned", "30", "3"], output


def test_training_whose_data_is_lost_again_and_again_stops_saying_so(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from concurrent.futures import CancelledError  # noqa: PLC0415

    from loopvec.backends import dask_fused  # noqa: PLC0415
    from loopvec.training import MAX_RESENDS, DataLost  # noqa: PLC0415

    sent = []
    to_native = dask_fused.to_native

    def counted(*args: object) -> object:
        sent.append(1)
        return to_native(*args)

    def lost(*args: object) -> None:
        raise CancelledError("('loopvec-X-0', 0, 0) already forgotten")

    monkeypatch.setattr(dask_fused, "to_native", counted)
    monkeypatch.setattr(dask_fused, "gradient", lost)
    p = loopvec.make_problem(50, 3)
    with pytest.raises(DataLost, match=r"training with dask_fused stopped at iteration 0: the "
                       r"data it holds on the Dask workers was lost with a worker, again after it "
                       r"was sent 3 more times \(CancelledError: \('loopvec-X-0', 0, 0\) already "
                       r"forgotten\)\. Check the workers' logs"):  # fmt: skip
        loopvec.train(p.X, p.Y, backend="dask_fused", iterations=3)
    assert len(sent) == 1 + MAX_RESENDS


def test_a_wait_for_a_scheduler_or_a_worker_says_what_it_waits_for_and_gives_up(
    tmp_path: Path,
) -> None:
    """A closed port, a scheduler with no worker, a bad timeout: one line each, exit status 2."""
    train = [sys.executable, "-m", "loopvec.cli", "train", "--backend", "dask_fused"]
    train += ["--iterations", "2", "--out", str(tmp_path / "out")]

    def run(scheduler: str, timeout: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "LOOPVEC_DASK_SCHEDULER": scheduler, "LOOPVEC_DASK_TIMEOUT": timeout}
        return subprocess.run(
            train, capture_output=True, text=True, env=env, timeout=120, check=False
        )

    import socket  # noqa: PLC0415

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        closed = f"tcp://127.0.0.1:{probe.getsockname()[1]}"
    done = run(closed, "3")
    assert done.returncode == 2, done.stderr
    assert f"loopvec: waiting up to 3 s for the Dask scheduler at {closed}" in done.stderr
    assert (
        f"loopvec train: no Dask scheduler answered at {closed} (LOOPVEC_DASK_SCHEDULER) within "
        "3 s: start one there" in done.stderr
    )
    assert "Traceback" not in done.stderr
    done = run(closed, "soon")
    assert "LOOPVEC_DASK_TIMEOUT must be a number of seconds > 0; got 'soon'" in done.stderr

    file = tmp_path / "scheduler.json"
    scheduler = subprocess.Popen(
        [sys.executable, "-m", "dask", "scheduler", "--port", "0", "--no-dashboard",
         "--scheduler-file", str(file)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        address = json.loads(file.read_text())["address"]
        start = time.monotonic()
        done = run(address, "4")
        assert time.monotonic() - start < 60
    finally:
        scheduler.terminate()
        scheduler.wait(timeout=60)
    assert done.returncode == 2, done.stderr
    assert f"loopvec: waiting up to 4 s for a Dask worker to join the scheduler at {address}" in (
        done.stderr
    )
    assert (
        f"loopvec train: no Dask worker joined the scheduler at {address} within 4 s: start one "
        f"(`dask worker {address}`)" in done.stderr
    )
    assert "Traceback" not in done.stderr


class Terminal:
    """A loopvec command in a process group of its own, as a terminal runs it: `ctrl_c` sends
    SIGINT to the whole group (loopvec's LocalCluster workers included); output read as it comes."""

    def __init__(self, *argv: str) -> None:
        # A shell without job control starts background commands with SIGINT ignored, and a
        # child would inherit that; a handler, unlike an ignore, is reset at exec.
        before = signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "loopvec.cli", *argv],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                start_new_session=True,
            )  # fmt: skip
        finally:
            signal.signal(signal.SIGINT, before)
        self.output = ""
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        while text := self.process.stdout.read(1):
            self.output += text

    def wait_for(self, pattern: str, timeout_s: float = 180) -> None:
        deadline = time.monotonic() + timeout_s
        while not re.search(pattern, self.output):
            assert time.monotonic() < deadline, self.output
            assert self.process.poll() is None, self.output
            time.sleep(0.05)

    def ctrl_c(self) -> None:
        os.killpg(self.process.pid, signal.SIGINT)

    def finish(self) -> int:
        with self.process:  # closes the pipe
            code = self.process.wait(timeout=180)
            self._reader.join(timeout=60)
        return code


def test_ctrl_c_in_a_terminal_stops_dask_training_between_steps_and_keeps_it(
    tmp_path: Path,
) -> None:
    out = tmp_path / "out"
    run = Terminal("train", "--backend", "dask_fused", "--iterations", "100000", "--out", str(out))
    run.wait_for(r"training: +\d+%\|.*\| [1-9]\d\d/100000")  # 100 steps or more done
    run.ctrl_c()
    assert run.finish() == 130, run.output
    assert "Traceback" not in run.output
    summary = json.loads((out / "breast_cancer-dask_fused.json").read_text())
    assert summary["interrupted"]
    assert 100 <= summary["iterations"] < 100_000
    assert f"for {summary['iterations']:,} iterations (interrupted)" in run.output


def test_a_second_ctrl_c_waits_for_the_dask_step_too_and_keeps_the_run(tmp_path: Path) -> None:
    """Cut short, a Dask step would leave its tasks on the cluster and distributed's
    tracebacks on the terminal: both Ctrl-Cs end the run at the step's end. (A second one that
    comes after the run ended stops the writing of its results, in one line.)"""
    run = Terminal("train", "--backend", "dask_fused", "--iterations", "100000", "--out",
                   str(tmp_path))  # fmt: skip
    run.wait_for(r"training: +\d+%\|.*\| [1-9]\d/100000")
    run.ctrl_c()
    time.sleep(0.01)
    run.ctrl_c()
    assert run.finish() == 130, run.output
    assert "Traceback" not in run.output
    if run.output.rstrip().endswith("loopvec train: interrupted"):
        assert "(interrupted)" not in run.output  # stopped after the training, in the writing
    else:
        assert "(interrupted)" in run.output
        assert json.loads((tmp_path / "breast_cancer-dask_fused.json").read_text())["interrupted"]


def test_ctrl_c_during_the_scale_study_keeps_and_draws_what_it_measured(tmp_path: Path) -> None:
    run = Terminal("scale", "--smoke", "--study", "in_memory", "training", "--out", str(tmp_path))
    run.wait_for(r"in_memory m=20,000 dask_array: ")  # printed once its record is saved
    run.ctrl_c()
    assert run.finish() == 130, run.output
    assert "Traceback" not in run.output
    assert STOPPING in run.output
    kept = load(tmp_path / "scale.json").records
    # the six in-memory records, and the training record the Ctrl-C landed in, measured whole
    # (unless it came before the loop looked between the two)
    assert [r["study"] for r in kept] in (["in_memory"] * 6, ["in_memory"] * 6 + ["training"])
    assert all(r["status"] == "timed" for r in kept[:6])
    # measured whole, not cut short; "unresolved" on a loaded machine: a time per iteration
    # within the noise is a measurement too
    assert all(r["status"] in ("timed", "unresolved") for r in kept[6:]), kept[6:]
    assert f"interrupted: {tmp_path / 'scale.json'} keeps the {len(kept)} records" in run.output
    assert "## In memory" in (tmp_path / "SCALE.md").read_text()
    assert (tmp_path / "scale.png").exists()


def test_scale_refuses_a_store_folder_it_cannot_use_and_a_record_it_cannot_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a_file = tmp_path / "a-file"
    a_file.write_text("mine")
    out = ["--out", str(tmp_path / "out")]
    assert main(["scale", "--smoke", "--store-folder", str(a_file), *out]) == 2
    assert f"loopvec scale: --store-folder: {a_file} is a file, not a folder" in (
        capsys.readouterr().err
    )
    assert a_file.read_text() == "mine"
    assert main(["scale", "--smoke", "--store-folder", str(a_file / "stores"), *out]) == 2
    assert f"--store-folder: cannot write into {a_file / 'stores'}: Not a directory" in (
        capsys.readouterr().err
    )
    for text, why in (("", "JSONDecodeError|Expecting value"), ("{}", "it lacks machine, "),
                      ("[1]", "a JSON list, not an object")):  # fmt: skip
        (tmp_path / "out").mkdir(exist_ok=True)
        (tmp_path / "out" / "scale.json").write_text(text)
        assert main(["scale", "--render", *out]) == 2
        err = capsys.readouterr().err
        assert f"loopvec scale: {tmp_path / 'out' / 'scale.json'} is not a scale study's " in err
        assert re.search(why, err), err
    (tmp_path / "out" / "scale.json").unlink()
    assert main(["scale", "--render", *out]) == 2
    assert "scale.json does not exist: measure first (loopvec scale)" in capsys.readouterr().err


def test_a_time_per_iteration_lost_in_the_noise_is_unresolved_never_negative() -> None:
    """k2 iterations timed faster than k1 (the setup's noise is larger than the iterations'
    time): the record says so; SCALE.md shows no negative time and no ratio of it."""
    from loopvec import scale, scale_report  # noqa: PLC0415

    pauses_s = iter([0.0, 0.02, 0.0] * 10)  # the warm-up, then k1 slower than k2 by turns

    def fit(k: int) -> None:
        time.sleep(next(pauses_s) if k == 1 else 0.002 * k)

    timing = scale.per_iteration(fit, 1, 3, rounds=5)
    assert timing["status"] == "unresolved"
    assert timing["low_s"] <= 0
    assert "the time of 3 iterations less that of 1 is within the timing noise" in timing["reason"]
    records = [
        {"study": "training", "backend": "dask-ml", "m": 10, "n": 2, "x_bytes": 160,
         "iterations": [1, 3]} | timing,
        {"study": "training", "backend": "dask_fused", "m": 10, "n": 2, "x_bytes": 160,
         "iterations": [1, 3], "status": "timed", "median_s": 0.01, "low_s": 0.009,
         "high_s": 0.011, "samples_s": [0.01]},
    ]  # fmt: skip
    study = {"machine": {"cpu": "x"}, "workers": 2, "threads_per_worker": 1,
             "memory_read_bytes_per_s": 1e10, "records": records}  # fmt: skip
    text = scale_report.markdown(study)
    training = text.split("## Gradient descent")[1].split("## Not timed")[0]
    assert "| dask-ml | unresolved | - | - |" in training  # no time, no ratio
    assert "| training | dask-ml | 10 | - | unresolved | the time of 3 iterations" in text
    assert not re.search(r"\| -\d", text)  # no negative number in any table
    scale_report.figure(study)  # draws what was resolved
