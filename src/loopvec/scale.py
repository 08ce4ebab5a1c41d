"""Where distribution pays, measured: the gradient on a Dask cluster, in memory and out of core.

Four studies, each written to `scale.json` as soon as it is measured (an interrupt keeps the
studies done):

- chunk_size: one problem in memory (m = 4e6, n = 100 by default), scattered in chunks of 1 MiB
  to one chunk per worker; time per gradient of dask_fused and dask_array against the chunk size,
  numba_parallel on the same data as the line to beat. The task overhead's crossover is where
  the time spent per task equals the kernels' time: with time(chunks) ~ kernels_s + chunks *
  task_s fitted over the sweep, crossover_bytes = X bytes * task_s / kernels_s.
- in_memory: dask_fused, dask_array and numba_parallel at several m, X's GB/s.
- out_of_core: dask_fused streaming X from a Zarr store (uncompressed, so a read costs I/O only)
  of each size, up to beyond this machine's memory, first with the store evicted from the page
  cache (cold), then again at once (warm: whatever the cache kept); GB/s against the disk's
  read bandwidth (measured on the store's own files, evicted) and the memory's. The share of the
  store in the page cache before each timing is recorded (`fincore`).
- training: time per iteration of gradient descent with dask_fused, with dask-ml's
  LogisticRegression(solver="gradient_descent") and dask-glm's gradient_descent on the same
  persisted dask array and cluster, and numba_parallel in this process on the same values; each
  timed as (time of k2 iterations - time of k1) / (k2 - k1), so that setup cancels.

Every backend is checked against numpy_vectorized on the in-memory problems before it is timed.
Times are medians of rounds in one process with a bootstrap interval (`stats.time_estimate`).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats as scipy_stats

from loopvec.agreement import Reference
from loopvec.backends import get_adapters, get_kernel
from loopvec.formatting import format_seconds
from loopvec.interrupts import ctrl_c
from loopvec.machine import machine_record
from loopvec.problem import Problem, make_problem
from loopvec.provenance import code_identity
from loopvec.stats import Estimate, time_estimate

MiB = 2**20
GB = 1e9


@dataclass(frozen=True)
class Settings:
    """What `loopvec scale` measures (the defaults: the full study)."""

    n: int = 100
    sweep_m: int = 4_000_000
    sweep_chunk_bytes: tuple[int, ...] = tuple(s * MiB for s in (1, 4, 16, 64, 256, 1024))
    in_memory_m: tuple[int, ...] = (100_000, 1_000_000, 10_000_000)
    out_of_core_m: tuple[int, ...] = (1_000_000, 10_000_000, 37_500_000)  # 0.8, 8 and 30 GB
    train_m: int = 10_000_000
    #: (k1, k2) of the difference of iteration counts: for loopvec's engines, whose iterations
    #: are short beside the setup's noise (persisting and checking X), and for dask-ml's and
    #: dask-glm's, whose iterations take seconds
    train_iterations: tuple[int, int] = (5, 25)
    peer_train_iterations: tuple[int, int] = (1, 3)
    rounds: int = 5
    store_folder: Path | None = None  # default: a folder beside scale.json, removed at the end
    peers: bool = True  # dask-ml and dask-glm in the training study

    @classmethod
    def smoke(cls) -> Settings:
        """Tiny sizes: every study and figure in seconds (CI)."""
        return cls(
            n=7,
            sweep_m=20_000,
            sweep_chunk_bytes=(16 * 1024, 64 * 1024),
            in_memory_m=(5_000, 20_000),
            out_of_core_m=(20_000,),
            train_m=20_000,
            train_iterations=(1, 3),
            peer_train_iterations=(1, 2),
            rounds=3,
        )


#: Untimed calls before the rounds. On a cluster one was not enough: right after X was
#: scattered, the next two gradients at m = 1e7 took 2 s, then 240 ms.
WARMUP_CALLS = 3


def measure(call: Callable[[], Any], rounds: int) -> dict[str, Any]:
    """`call` timed `rounds` times after WARMUP_CALLS untimed calls: samples, median and 95 %
    interval."""
    for _ in range(WARMUP_CALLS):
        call()
    samples_s = []
    for _ in range(rounds):
        start = time.perf_counter()
        call()
        samples_s.append(time.perf_counter() - start)
    return {"samples_s": samples_s, **_estimate_fields(time_estimate([[samples_s]]))}


def _estimate_fields(estimate: Estimate) -> dict[str, float]:
    return {"median_s": estimate.value, "low_s": estimate.low, "high_s": estimate.high}


#: dask_array's graph grows with the chunks (several tasks per chunk and operation): past this
#: many chunks its gradient takes minutes on 2 cores and the scheduler lost a worker, so the
#: sweep records it as skipped there.
DASK_ARRAY_MAX_CHUNKS = 1000


def attempt(
    record: dict[str, Any], timing: Callable[[], dict[str, Any]], progress: Callable[[str], object]
) -> dict[str, Any]:
    """`record` with `timing()`'s fields, or with status "failed" and why: a measurement that
    fails (a wrong result, a lost worker) is recorded and the study goes on."""
    try:
        return record | {"status": "timed"} | timing()
    except Exception as error:  # any failure is recorded, never hidden
        reason = f"{type(error).__name__}: {error}"
        progress(f"FAILED {record['study']} {record['backend']} m={record['m']:,}: {reason}")
        return record | {"status": "failed", "reason": reason}


def record_line(record: dict[str, Any]) -> str | None:
    """The progress line of a timed record; `run` prints it once the record is saved, so that
    a Ctrl-C after the line never loses what it reports."""
    if record["status"] != "timed":
        return None
    study, backend, m = record["study"], record["backend"], record["m"]
    if study == "out_of_core":
        held = record["page_cache_share_before"]
        held_text = "unknown" if held is None else f"{held:.0%}"
        gb_per_s = record["x_bytes"] / record["median_s"] / GB
        return f"out of core m={m:,} {record['cache']}: {gb_per_s:.2f} GB/s (cached: {held_text})"
    if "chunks" in record:
        what = f"{record['chunk_bytes'] / MiB:.2f} MiB chunks ({record['chunks']}) {backend}"
    elif study == "training":
        what = f"training m={m:,} {backend}, per iteration"
    else:
        what = f"{study} m={m:,} {backend}"
    return f"{what}: {format_seconds(record['median_s'])}"


def measure_backend(
    backend: str, problem: Problem, reference: Reference, rounds: int, **native: Any
) -> dict[str, Any]:
    """`measure` of the backend's gradient, checked first (`checked_gradient`)."""
    return measure(checked_gradient(backend, problem, reference, **native), rounds)


def checked_gradient(backend: str, problem: Problem, reference: Reference, **native: Any) -> Any:
    """The backend's gradient call on the problem's data moved into it (untimed), after its
    result is checked against the reference: a wrong backend is never timed."""
    to_native, _ = get_adapters(backend)
    kernel = get_kernel(backend)
    args = to_native(problem.w, problem.b, problem.X, problem.Y, **native)
    reference.check(backend, kernel(*args))
    return lambda: kernel(*args)


def chunk_sweep(settings: Settings, progress: Callable[[str], object]) -> Iterator[dict[str, Any]]:
    """Time per gradient against the chunk size, dask_fused and dask_array, at sweep_m."""
    from loopvec.backends._dask import example_chunks, get_client  # noqa: PLC0415 (optional)
    from loopvec.cluster import workers_of  # noqa: PLC0415

    m, n = settings.sweep_m, settings.n
    problem = make_problem(m, n)
    reference = Reference.of(problem)
    x_bytes = problem.X.nbytes
    workers = len(workers_of(get_client()))
    per_worker = example_chunks(n, m, 8, workers)[0] * n * 8
    for chunk_bytes in sorted({*settings.sweep_chunk_bytes, per_worker}):
        size = max(1, min(m, chunk_bytes // (n * 8)))
        chunks = tuple(min(size, m - start) for start in range(0, m, size))
        for backend in ("dask_fused", "dask_array"):
            record: dict[str, Any] = {"study": "chunk_size", "backend": backend, "m": m, "n": n}
            record |= {"x_bytes": x_bytes, "chunk_bytes": size * n * 8, "chunks": len(chunks)}
            if backend == "dask_array" and len(chunks) > DASK_ARRAY_MAX_CHUNKS:
                reason = f"more than {DASK_ARRAY_MAX_CHUNKS} chunks: minutes per gradient"
                progress(f"{len(chunks)} chunks: dask_array skipped ({reason})")
                yield record | {"status": "skipped", "reason": reason}
                continue
            rounds = settings.rounds if len(chunks) < 1000 else max(3, settings.rounds // 2)
            timing = partial(measure_backend, backend, problem, reference, rounds, chunks=chunks)
            yield attempt(record, timing, progress)
    yield _numba_parallel_record("chunk_size", problem, reference, settings.rounds, progress)


def _numba_parallel_record(
    study: str,
    problem: Problem,
    reference: Reference,
    rounds: int,
    progress: Callable[[str], object],
) -> dict[str, Any]:
    n, m = problem.X.shape
    record: dict[str, Any] = {"study": study, "backend": "numba_parallel", "m": m, "n": n}
    record |= {"x_bytes": problem.X.nbytes, "threads": os.cpu_count()}
    timing = partial(measure_backend, "numba_parallel", problem, reference, rounds)
    return attempt(record, timing, progress)


def in_memory(settings: Settings, progress: Callable[[str], object]) -> Iterator[dict[str, Any]]:
    """dask_fused, dask_array and numba_parallel at each in_memory_m, n: X's GB/s."""
    for m in settings.in_memory_m:
        problem = make_problem(m, settings.n)
        reference = Reference.of(problem)
        yield _numba_parallel_record("in_memory", problem, reference, settings.rounds, progress)
        for backend in ("dask_fused", "dask_array"):
            record: dict[str, Any] = {"study": "in_memory", "backend": backend, "m": m}
            record |= {"n": settings.n, "x_bytes": problem.X.nbytes}
            timing = partial(measure_backend, backend, problem, reference, settings.rounds)
            yield attempt(record, timing, progress)
        del problem, reference


def store_files(path: Path) -> list[Path]:
    """The files of a Zarr store, largest first."""
    files = [p for p in path.rglob("*") if p.is_file()]
    return sorted(files, key=lambda p: p.stat().st_size, reverse=True)


def evict(path: Path) -> None:
    """Drop a store's files from the page cache (POSIX_FADV_DONTNEED; needs no privilege)."""
    os.sync()  # dirty pages cannot be dropped
    for file in store_files(path):
        fd = os.open(file, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def page_cache_share(path: Path) -> float | None:
    """The share of a store's bytes in the page cache (util-linux's fincore), or None where
    fincore is missing."""
    files = store_files(path)
    if shutil.which("fincore") is None or not files:
        return None
    cached = 0
    for start in range(0, len(files), 500):  # keep command lines short
        batch = [str(file) for file in files[start : start + 500]]
        done = subprocess.run(
            ["fincore", "--bytes", "--noheadings", "--raw", "--output", "RES,SIZE", *batch],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        for line in done.stdout.splitlines():  # a file's last page counts whole: cap at its size
            resident, size = map(int, line.split())
            cached += min(resident, size)
    return cached / sum(file.stat().st_size for file in files)


def disk_read_bytes_per_s(path: Path, threads: int, limit_bytes: int = 4 * 2**30) -> float:
    """Read bandwidth of the disk under a store: up to limit_bytes of its files, evicted from
    the page cache first, read whole by `threads` readers at once (as the workers read)."""
    files, total = [], 0
    for file in store_files(path):
        if total >= limit_bytes:
            break
        files.append(file)
        total += file.stat().st_size
    evict(path)

    def read(file: Path) -> int:
        with file.open("rb", buffering=0) as handle:
            buffer, read_bytes = bytearray(8 * MiB), 0
            while count := handle.readinto(buffer):
                read_bytes += count
        return read_bytes

    start = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        read_bytes = sum(pool.map(read, files))
    return read_bytes / (time.perf_counter() - start)


def out_of_core(
    settings: Settings, folder: Path, progress: Callable[[str], object]
) -> Iterator[dict[str, Any]]:
    """dask_fused streaming X from a Zarr store at each out_of_core_m: cold, then warm."""
    from loopvec import zarr_store  # noqa: PLC0415 (optional)
    from loopvec.backends._dask import by_examples, get_client  # noqa: PLC0415
    from loopvec.cluster import workers_of  # noqa: PLC0415

    workers = len(workers_of(get_client()))
    for m in settings.out_of_core_m:
        path = folder / f"problem-m{m}-n{settings.n}.zarr"
        if not (path / "zarr.json").exists():
            progress(f"writing {m * settings.n * 8 / GB:.1f} GB to {path}")
            zarr_store.write_problem(path, m, settings.n)
        lazy = zarr_store.open_problem(path)
        X, Y = by_examples(lazy.X, lazy.Y)  # streamed: never persisted
        record: dict[str, Any] = {
            "study": "out_of_core",
            "backend": "dask_fused",
            "m": m,
            "n": settings.n,
        }
        record["x_bytes"] = int(X.nbytes)
        record["store_bytes"] = sum(file.stat().st_size for file in store_files(path))
        record["disk_read_bytes_per_s"] = disk_read_bytes_per_s(path, workers)
        for cache in ("cold", "warm"):
            rounds = settings.rounds if cache == "warm" else max(2, settings.rounds // 2)
            timing = partial(_stream, lazy, X, Y, path, cache == "cold", rounds)
            yield attempt(record | {"cache": cache}, timing, progress)


def _stream(
    lazy: Problem, X: Any, Y: Any, path: Path, evicted: bool, rounds: int
) -> dict[str, Any]:
    """dask_fused's gradient streamed from the store `rounds` times, the store evicted from the
    page cache before each if `evicted`; with the share of it cached before each."""
    from loopvec.backends import dask_fused  # noqa: PLC0415 (optional)

    samples_s, shares = [], []
    for _ in range(rounds):
        if evicted:
            evict(path)
        shares.append(page_cache_share(path))
        start = time.perf_counter()
        dask_fused.gradient(lazy.w, lazy.b, X, Y)
        samples_s.append(time.perf_counter() - start)
    cached = [share for share in shares if share is not None]
    return {
        "page_cache_share_before": float(np.mean(cached)) if cached else None,
        "samples_s": samples_s,
        **_estimate_fields(time_estimate([[samples_s]])),
    }


def training(settings: Settings, progress: Callable[[str], object]) -> Iterator[dict[str, Any]]:
    """Time per iteration of gradient descent: dask-ml, dask-glm, dask_fused, numba_parallel."""
    from loopvec.backends._dask import as_dask_array, get_client, to_native  # noqa: PLC0415
    from loopvec.training import train  # noqa: PLC0415

    m, n = settings.train_m, settings.n
    k2_most = max(settings.train_iterations[1], settings.peer_train_iterations[1])
    # One dask array for the three Dask engines: the values scattered once in dask_fused's
    # chunks, which are the array's own chunks (no engine's setup stores them a second time).
    # The client keeps no copy meanwhile; numba_parallel makes the same values again, last.
    problem = make_problem(m, n)
    _, _, X_held, Y_held = to_native(problem.w, problem.b, problem.X, problem.Y)
    x_bytes = problem.X.nbytes
    del problem
    X, Y = as_dask_array(X_held), as_dask_array(Y_held)
    engines: dict[str, Callable[[int], Any]] = _peer_engines(X.T, Y[0]) if settings.peers else {}
    engines["dask_fused"] = lambda k: train(
        X, Y, backend="dask_fused", iterations=k, record_every=k2_most, learning_rate=0.5
    )

    def numba_parallel(k: int) -> Any:
        return train(*arrays[0], backend="numba_parallel", iterations=k, record_every=k2_most,
                     learning_rate=0.5)  # fmt: skip

    engines["numba_parallel"] = numba_parallel
    arrays: list[tuple[Any, Any]] = []
    client = get_client()
    for engine in list(engines):
        fit = engines.pop(engine)  # the Dask engines' closures, and the data they hold, go
        record: dict[str, Any] = {"study": "training", "backend": engine, "m": m, "n": n}
        ours = engine in ("dask_fused", "numba_parallel")
        k1, k2 = settings.train_iterations if ours else settings.peer_train_iterations
        record |= {"x_bytes": x_bytes, "iterations": [k1, k2]}
        if engine == "numba_parallel":
            del X, Y, X_held, Y_held  # the workers' copy goes before the client's is made
            again = make_problem(m, n)
            arrays.append((again.X, again.Y))
        spilled_before = spilled_bytes(client)
        record = attempt(record, partial(per_iteration, fit, k1, k2, settings.rounds), progress)
        record["spilled_bytes"] = spilled_bytes(client) - spilled_before
        if record["spilled_bytes"] > 0:
            progress(f"{engine}: the workers spilled {record['spilled_bytes'] / GB:.1f} GB to disk")
        yield record


def spilled_bytes(client: Any) -> int:
    """Bytes the workers hold spilled to disk now (their memory was fuller than Dask allows)."""
    workers = client.scheduler_info()["workers"].values()
    return sum(int(w["metrics"].get("spilled_bytes", {}).get("disk", 0)) for w in workers)


def _peer_engines(X: Any, y: Any) -> dict[str, Callable[[int], Any]]:
    """dask-ml and dask-glm as their users call them: X (m, n) examples by features (the view
    X.T of ours, no copy), y (m,)."""
    try:
        from dask_glm.algorithms import gradient_descent  # noqa: PLC0415
        from dask_glm.families import Logistic  # noqa: PLC0415
        from dask_ml.linear_model import LogisticRegression  # noqa: PLC0415
    except ImportError as error:
        warnings.warn(f"dask-ml / dask-glm not installed, not compared: {error}", stacklevel=2)
        return {}

    def dask_ml(k: int) -> Any:
        model = LogisticRegression(solver="gradient_descent", tol=0, max_iter=k)
        return model.fit(X, y)

    def dask_glm(k: int) -> Any:
        return gradient_descent(X, y, max_iter=k, tol=0, family=Logistic)

    return {"dask-ml": dask_ml, "dask-glm": dask_glm}


def per_iteration(fit: Callable[[int], Any], k1: int, k2: int, rounds: int) -> dict[str, Any]:
    """(time of fit(k2) - time of fit(k1)) / (k2 - k1) over `rounds` pairs (after a warm-up
    fit): median and 95 % interval of the pairs' differences (Student's t; setup cancels)."""
    fit(k1)
    per_iteration_s = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(rounds):
            times = []
            for k in (k1, k2):
                start = time.perf_counter()
                fit(k)
                times.append(time.perf_counter() - start)
            per_iteration_s.append((times[1] - times[0]) / (k2 - k1))
    values = np.asarray(per_iteration_s)
    half = scipy_stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / math.sqrt(len(values))
    timing: dict[str, Any] = {
        "samples_s": per_iteration_s,
        "median_s": float(np.median(values)),
        "low_s": float(values.mean() - half),
        "high_s": float(values.mean() + half),
        "warnings": sorted({f"{w.category.__name__}: {w.message}" for w in caught}),
    }
    if timing["low_s"] <= 0:  # no time per iteration, nor any ratio of one, can be told
        return timing | {"status": "unresolved", "reason": _unresolved(timing, k1, k2)}
    return timing


def _unresolved(timing: dict[str, Any], k1: int, k2: int) -> str:
    return (
        f"the time of {k2} iterations less that of {k1} is within the timing noise: "
        f"{format_seconds(timing['median_s'])} per iteration, 95 % interval "
        f"[{format_seconds(timing['low_s'])}, {format_seconds(timing['high_s'])}] reaches 0; "
        "more iterations (Settings.train_iterations) would resolve it"
    )


@dataclass
class ScaleRun:
    """What `scale.json` holds: the machine, the cluster, the code, the bandwidths, the records."""

    machine: dict[str, Any]
    workers: int
    threads_per_worker: int
    memory_read_bytes_per_s: float
    code: dict[str, Any]
    settings: dict[str, Any]
    records: list[dict[str, Any]] = field(default_factory=list)

    def save(self, path: Path) -> None:
        """Written whole to a temporary file, then renamed: never a half-written scale.json."""
        temporary = path.with_name(f".{path.name}.tmp")
        temporary.write_text(json.dumps(asdict(self), indent=1, default=str))
        temporary.replace(path)


@contextmanager
def _store_folder(settings: Settings, out: Path) -> Iterator[Path]:
    if settings.store_folder is not None:
        settings.store_folder.mkdir(parents=True, exist_ok=True)
        yield settings.store_folder
        return
    folder = out / "stores"
    folder.mkdir(parents=True, exist_ok=True)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


#: Progress lines as they happen, also when stdout is a pipe (nox, CI logs).
PRINT = partial(print, flush=True)
STUDIES = ("chunk_size", "in_memory", "out_of_core", "training")
STOPPING = "loopvec scale: stopping after the measurement in progress (Ctrl-C again: at once)"


def run(
    settings: Settings,
    out: Path,
    studies: Sequence[str] = STUDIES,
    progress: Callable[[str], object] = PRINT,
) -> ScaleRun:
    """Measure `studies` into out/scale.json (saved after every record). The other studies'
    records already there are kept if they come from this machine and this code of the
    backends, so a study can be measured again alone. Ctrl-C raises `Interrupted` once the
    record in progress is saved; a second one at once."""
    from loopvec.backends._dask import get_client  # noqa: PLC0415
    from loopvec.cluster import workers_of  # noqa: PLC0415

    out.mkdir(parents=True, exist_ok=True)
    client = get_client()
    info = client.scheduler_info()["workers"]
    machine = machine_record()
    scale = ScaleRun(
        machine=machine,
        workers=len(workers_of(client)),
        threads_per_worker=min(w["nthreads"] for w in info.values()),
        memory_read_bytes_per_s=max(machine["read_bandwidth_bytes_per_s"].values()),
        code={b: code_identity(b) for b in ("dask_fused", "dask_array", "numba_parallel")},
        settings={k: v for k, v in asdict(settings).items() if k != "store_folder"},
    )
    earlier = out / "scale.json"
    if earlier.exists():
        old = load(earlier)
        same = old.machine["fingerprint"] == machine["fingerprint"] and old.code == scale.code
        kept = [r for r in old.records if r["study"] not in studies] if same else []
        scale.records.extend(kept)
        replaced = f"{earlier} is from another machine or code of the backends: replaced"
        progress(f"kept {len(kept)} records of other studies from {earlier}" if same else replaced)
    with _store_folder(settings, out) as folder:
        makers: dict[str, Callable[[], Iterator[dict[str, Any]]]] = {
            "chunk_size": lambda: chunk_sweep(settings, progress),
            "in_memory": lambda: in_memory(settings, progress),
            "out_of_core": lambda: out_of_core(settings, folder, progress),
            "training": lambda: training(settings, progress),
        }
        try:
            # Ctrl-C stops between records: one cut short inside a Dask call leaves its tasks on
            # the workers and distributed's tracebacks on the terminal (a KeyboardInterrupt early
            # in `distributed.utils.sync` logs a NameError). A record may take minutes at full
            # size, so a second Ctrl-C stops at once.
            with ctrl_c(first_at_once=False, waiting=STOPPING) as pressed:
                for study in studies:
                    for record in makers[study]():
                        scale.records.append(record)
                        scale.save(out / "scale.json")
                        if line := record_line(record):
                            progress(line)
                        if pressed.pressed:
                            raise KeyboardInterrupt
        except KeyboardInterrupt:
            raise Interrupted(scale) from None
    return scale


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during `run`; `study` holds what was measured (saved in scale.json)."""

    def __init__(self, study: ScaleRun) -> None:
        super().__init__(f"interrupted after {len(study.records)} records")
        self.study = study


def load(path: Path) -> ScaleRun:
    """A scale.json back as a ScaleRun; FileNotFoundError or ValueError naming the file."""
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: measure first (loopvec scale)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError(f"a JSON {type(data).__name__}, not an object")
        missing = [f.name for f in fields(ScaleRun) if f.name not in data and f.name != "records"]
        if missing:
            raise ValueError(f"it lacks {', '.join(missing)}")
        return ScaleRun(**{f.name: data[f.name] for f in fields(ScaleRun) if f.name in data})
    except ValueError as error:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise ValueError(
            f"{path} is not a scale study's record ({error}): measure again (loopvec scale)"
        ) from None
