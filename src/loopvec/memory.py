"""Peak memory of one call: what a backend allocates beyond the inputs it already holds.

The call runs under memray's Tracker, which replaces the allocation functions of every library
loaded in the process (malloc, calloc, realloc, posix_memalign, aligned_alloc, mmap and their
frees): numpy's arrays, numba's runtime, torch's CPU allocator and XLA's buffers all pass
through them. `peak_bytes` is the largest sum of the bytes that the call had allocated and not
yet freed at any moment, so what existed before it (its inputs) is not counted, and what it
freed before the peak is not either. tracemalloc sees only what passes through Python's
allocator (numpy's arrays among it, not torch's or XLA's), and the process's peak RSS cannot tell
a call from its inputs.

What it cannot see is written into every cell (`PEAK_METHOD`): memory taken without the C library
(raw system calls), a thread's stack, the memory of other processes (a Dask worker's, measured
there apart: `tracking_workers`), and whether the bytes were touched (a request counts whole).
Python objects are counted as the arenas Python takes for them (256 KiB each), not one by one.

The Tracker slows the allocations it sees, so a peak is measured in a call of its own, never in
a timed one. A known hazard: a process that held a large `decimal.Decimal` (hundreds of digits)
before it tracked aborts at exit ("double free or corruption"; memray 1.16 to 1.20, CPython
3.11); the bench's processes hold none, and the tests measure in processes of their own.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from loopvec.backends import BACKENDS
from loopvec.grid import CostModel, fit_cost_model

T = TypeVar("T")

#: How `peak_bytes` is measured, and what that method cannot see: recorded in every cell.
PEAK_METHOD = (
    "memray Tracker: peak of the bytes allocated and not yet freed during one call, through "
    "any library's malloc/calloc/realloc/posix_memalign/aligned_alloc/mmap (numpy, numba, "
    "torch, XLA), beyond what existed before it; not seen: allocations by raw system calls, "
    "thread stacks, other processes (Dask workers: measured apart), untouched pages (a request "
    "counts whole); Python objects counted as pymalloc's arenas; the least of 2 calls, 3 where "
    "those differ by over a page (other threads allocate now and then)"
)

#: What a cell of a run with `--no-memory` records as its `peak_method`.
NOT_ASKED = "not measured: the run was started with --no-memory"

_worker_tracker: Any = None  # the Tracker running in this process for `tracking_workers`


class PeakUnavailable(RuntimeError):
    """The peak cannot be measured here; the message says why (for the cell's `peak_method`)."""


def _tracker(path: Path) -> Any:
    try:
        import memray  # noqa: PLC0415  # Linux and macOS only: optional where it cannot run
    except ImportError as error:
        raise PeakUnavailable(f"not measured: memray cannot be imported ({error})") from None
    return memray.Tracker(
        path, native_traces=False, file_format=memray.FileFormat.AGGREGATED_ALLOCATIONS
    )


def _peak_of(path: Path) -> int:
    import memray  # noqa: PLC0415

    reader = memray.FileReader(path)
    try:
        return int(reader.metadata.peak_memory)
    finally:
        reader.close()  # now, not when the collector gets to it


def measure_peak(call: Callable[[], T]) -> tuple[T, int]:
    """(call(), the peak bytes it allocated beyond what existed before it).

    PeakUnavailable if memray is missing or another Tracker is running in this process (a run
    under `memray run`): the call is then not made.
    """
    with tempfile.TemporaryDirectory(prefix="loopvec-peak-") as folder:
        path = Path(folder) / "call.bin"
        tracker = _tracker(path)
        try:  # entered apart from the call: a RuntimeError of the call's own is not ours
            tracker.__enter__()
        except RuntimeError as error:  # memray allows one Tracker per process
            raise PeakUnavailable(f"not measured: {error}") from None
        try:
            result = call()
        finally:
            tracker.__exit__(None, None, None)
        return result, _peak_of(path)


def start_worker_tracker() -> None:
    """On a Dask worker (through `client.run`): start tracking this process's allocations."""
    global _worker_tracker  # noqa: PLW0603  # one Tracker per process, kept between two runs
    path = Path(tempfile.mkdtemp(prefix="loopvec-peak-")) / "worker.bin"
    tracker = _tracker(path)
    tracker.__enter__()
    _worker_tracker = (tracker, path)


def stop_worker_tracker() -> int:
    """On a Dask worker: stop tracking; the peak bytes since `start_worker_tracker`."""
    global _worker_tracker  # noqa: PLW0603
    tracker, path = _worker_tracker
    _worker_tracker = None
    tracker.__exit__(None, None, None)
    try:
        return _peak_of(path)
    finally:
        path.unlink()
        path.parent.rmdir()


@contextmanager
def tracking_workers(client: Any) -> Iterator[dict[str, int]]:
    """Track every worker of `client` in the body; the dict it yields is filled on exit with
    {worker address: peak bytes of that worker's process during the body}."""
    peaks: dict[str, int] = {}
    client.run(start_worker_tracker)
    try:
        yield peaks
    finally:
        peaks.update(client.run(stop_worker_tracker))


def backend_client(backend: str) -> Any:
    """The Dask client whose workers backend `backend` runs on; None for one that runs here."""
    if BACKENDS[backend].family != "dask":
        return None
    from loopvec.backends._dask import get_client  # noqa: PLC0415  # dask is optional

    return get_client()


#: Calls made to measure one peak: other threads of the process (a Dask scheduler's, a progress
#: bar's) allocate now and then, and Python maps a 256 KiB arena when its others are full,
#: whichever call that falls in, while a call's own allocations repeat. So the call is made twice,
#: a third time where those two differ by more than a page, and the least peak is kept.
PEAK_CALLS = (2, 3)
PAGE_BYTES = 4096


def call_peak(
    backend: str,
    call: Callable[[], T],
    prefix: str = "",
    *,
    repeat: bool = True,
    track: bool = True,
) -> tuple[T, dict[str, Any]]:
    """(call(), what a cell records of its memory): `{prefix}peak_bytes` of this process, the
    least over PEAK_CALLS calls (one call without `repeat`: for what is costly to make twice, or
    must not be held twice at once, as a copy of the inputs); each call's, workers' included,
    `{prefix}peak_bytes_calls`; `peak_method`; for a Dask backend its workers',
    `{prefix}worker_peak_bytes` (their peaks added: at most what they held at once) and
    `{prefix}peak_bytes_by_worker` {address: bytes}. Where memory cannot be measured, the call
    is made once, untracked, the bytes are None and `peak_method` says why; so it is without
    `track` (`--no-memory`: each Tracker patches every loaded library, 0.2 s with torch and JAX)."""
    if not track:
        return call(), {f"{prefix}peak_bytes": None, "peak_method": NOT_ASKED}
    client = backend_client(backend)
    peaks: list[tuple[int, dict[str, int]]] = []
    try:
        fewest, most = PEAK_CALLS if repeat else (1, 1)
        while len(peaks) < fewest or (len(peaks) < most and _spread(peaks) > PAGE_BYTES):
            if client is None:
                result, peak = measure_peak(call)
                peaks.append((peak, {}))
                continue
            with tracking_workers(client) as workers:
                result, peak = measure_peak(call)
            peaks.append((peak, workers))
    except PeakUnavailable as error:
        return call(), {f"{prefix}peak_bytes": None, "peak_method": str(error)}
    fields: dict[str, Any] = {
        f"{prefix}peak_bytes": min(p for p, _ in peaks),
        f"{prefix}peak_bytes_calls": _totals(peaks),
    }
    if client is not None:
        by_worker = {
            address: min(w[address] for _, w in peaks if address in w) for address in peaks[-1][1]
        }
        fields[f"{prefix}worker_peak_bytes"] = sum(by_worker.values())
        fields[f"{prefix}peak_bytes_by_worker"] = by_worker
    return result, {**fields, "peak_method": PEAK_METHOD}


def _totals(peaks: list[tuple[int, dict[str, int]]]) -> list[int]:
    """Each call's peak, its workers' added."""
    return [peak + sum(workers.values()) for peak, workers in peaks]


def _spread(peaks: list[tuple[int, dict[str, int]]]) -> int:
    """How far apart the calls' peaks (workers' added) are, in bytes."""
    totals = _totals(peaks)
    return max(totals) - min(totals)


def total_bytes(fields: dict[str, Any], prefix: str = "") -> int | None:
    """This process's peak and the workers' added; None if not measured."""
    peak = fields.get(f"{prefix}peak_bytes")
    return None if peak is None else int(peak) + int(fields.get(f"{prefix}worker_peak_bytes", 0))


#: The peaks a pass of a cell may record: one gradient call and the inputs moved into the
#: backend's own arrays; in training, one step and a whole run. Each may have its workers'.
PEAK_FIELDS = tuple(
    f"{what}{where}peak_bytes"
    for what in ("", "inputs_", "step_", "run_")
    for where in ("", "worker_")
)


def peaks_of_passes(passes: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """A cell's peaks over its passes: for each of PEAK_FIELDS the largest any pass measured,
    and the method of the last pass that says one."""
    passes = list(passes)
    fields: dict[str, Any] = {}
    for name in PEAK_FIELDS:
        if values := [p[name] for p in passes if p.get(name) is not None]:
            fields[name] = max(values)
    if methods := [p["peak_method"] for p in passes if p.get("peak_method")]:
        fields["peak_method"] = methods[-1]
    return fields


def backend_bytes(record: dict[str, Any]) -> int | None:
    """What a gradient cell's backend took beyond X as the bench made it: moving the inputs into
    its arrays and one call, workers included; None for a cell measured without memory."""
    inputs, call = total_bytes(record, "inputs_"), total_bytes(record)
    return None if inputs is None or call is None else inputs + call


def fit_memory_model(
    m_values: list[int], n_values: list[int], measured_bytes: list[int]
) -> CostModel | None:
    """bytes = constant + per example x m + per entry x m x n, fitted to a backend's measured
    cells as its time is (`grid.fit_cost_model`: relative error, no negative term; two sizes
    needed, else None). The model's seconds read as bytes."""
    floored = [max(b, PAGE_BYTES) for b in measured_bytes]  # relative error: no 0
    return fit_cost_model(m_values, n_values, floored)
