"""The machine is part of the result: what a run ran on, captured once per run.

CPU (model, the target and SIMD features numba compiles for), cores, memory, OS, Python and library
versions, numpy's BLAS library with its kernel and threads, the machine fingerprint that names the
run (`loopvec.provenance`), and the measured memory read bandwidth (a STREAM-like sum over an array
much larger than the caches), the ceiling that a gradient which reads X once can approach.
"""

from __future__ import annotations

import os
import platform
import socket
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import llvmlite.binding
import numba
import numpy as np
import psutil
from numpy.typing import NDArray
from threadpoolctl import threadpool_info

from loopvec.backends._jit import jit
from loopvec.grid import default_threads, thread_limit
from loopvec.provenance import machine_fingerprint

#: Far above any last-level cache, small enough for a 2 GiB machine.
BANDWIDTH_ARRAY_BYTES = 512 * 2**20
BANDWIDTH_REPEATS = 10
PACKAGES = (
    "loopvec",
    "numpy",
    "numba",
    "llvmlite",
    "pytest-benchmark",
    "threadpoolctl",
    "torch",
    "jax",
    "jaxlib",
)
#: Feature names of the SIMD extensions (x86 and Arm) that decide how wide a kernel's loops run.
SIMD_PREFIXES = ("sse", "avx", "fma", "amx", "neon", "asimd", "sve")


@jit(parallel=True, fastmath=True)
def _read_sum(a: NDArray[np.float64]) -> float:
    # fastmath lets the reduction vectorize; the sum's value is irrelevant, reading a is the point.
    total = 0.0
    for i in numba.prange(a.size):
        total += a[i]
    return total


def read_bandwidth_bytes_per_s(threads: int, array_bytes: int = BANDWIDTH_ARRAY_BYTES) -> float:
    """Best-of-10 read bandwidth of a parallel sum over `array_bytes` of float64, in bytes/s."""
    a = np.ones(array_bytes // 8)
    with thread_limit(threads):
        _read_sum(a[:8])  # compile (or load from the cache) outside the timing
        best_s = float("inf")
        for _ in range(BANDWIDTH_REPEATS):
            start = time.perf_counter()
            _read_sum(a)
            best_s = min(best_s, time.perf_counter() - start)
    return a.nbytes / best_s


def _cpu_model() -> str:
    try:
        import cpuinfo  # noqa: PLC0415  # py-cpuinfo comes with pytest-benchmark, not core

        return str(cpuinfo.get_cpu_info().get("brand_raw", platform.processor()))
    except ImportError:
        return platform.processor() or "unknown"


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _simd() -> list[str]:
    """The SIMD extensions LLVM (so numba) may use on this CPU, e.g. ['avx', 'avx2', 'fma']."""
    features = llvmlite.binding.get_host_cpu_features()
    return sorted(name for name, on in features.items() if on and name.startswith(SIMD_PREFIXES))


def _numpy_blas() -> list[dict[str, Any]]:
    """numpy's BLAS pools (not scipy's or another package's, loaded or not), with their kernel."""
    pools = [pool for pool in threadpool_info() if pool.get("user_api") == "blas"]
    numpy_dir = Path(np.__file__).parent.name
    own = [pool for pool in pools if Path(pool["filepath"]).parent.name.startswith(numpy_dir)]
    return [
        {key: pool.get(key) for key in ("internal_api", "version", "num_threads", "architecture")}
        for pool in own or pools  # a numpy linked to a system BLAS: every BLAS pool there is
    ]


def cpu_target() -> str:
    """The CPU numba compiles for: this one, or NUMBA_CPU_NAME's (with NUMBA_CPU_FEATURES where
    set: "haswell" on an AVX-512 machine compiles AVX2 code, another machine state)."""
    name = numba.config.CPU_NAME or llvmlite.binding.get_host_cpu_name()  # type: ignore[attr-defined]
    features = numba.config.CPU_FEATURES  # type: ignore[attr-defined]
    return name if not features else f"{name} {features}"


def machine_record(*, measure_bandwidth: bool = True) -> dict[str, Any]:
    """Everything about this machine that a timing depends on, as plain JSON values, with its
    fingerprint (`loopvec.provenance.machine_fingerprint`)."""
    record: dict[str, Any] = {
        "host": socket.gethostname(),
        "cpu": _cpu_model(),
        "cpu_target": cpu_target(),
        "simd": _simd(),
        "logical_cores": os.cpu_count(),
        "physical_cores": psutil.cpu_count(logical=False),
        "memory_bytes": psutil.virtual_memory().total,
        "os": platform.platform(),
        "python": platform.python_version(),
        "versions": {package: _version(package) for package in PACKAGES},
        "blas": _numpy_blas(),
        "numba_threads": numba.config.NUMBA_NUM_THREADS,  # type: ignore[attr-defined]
        # Set on some machines to work around old OpenBLAS bugs; they change which kernel runs.
        "openblas_env": {k: v for k, v in os.environ.items() if k.startswith("OPENBLAS_")},
    }
    record["fingerprint"] = machine_fingerprint(record)
    if measure_bandwidth:
        record["read_bandwidth_bytes_per_s"] = read_bandwidths()
    return record


def read_bandwidths() -> dict[str, float]:
    """Read bandwidth in bytes/s at 1 thread and at all cores, keyed by the thread count."""
    return {str(t): read_bandwidth_bytes_per_s(t) for t in default_threads()}
