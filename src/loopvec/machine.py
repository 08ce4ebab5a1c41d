"""The machine is part of the result: what a run ran on, captured once per run.

CPU (model, the target and SIMD features numba compiles for), cores, memory, OS, Python and library
versions, numpy's BLAS library with its kernel and threads, the machine fingerprint that names the
run (`loopvec.provenance`), and the measured memory read bandwidth (a STREAM-like sum over an array
much larger than the caches, 8 streams a thread), the ceiling that a gradient which reads X once
can approach.
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


#: Streams each thread reads side by side: a CPU's prefetchers follow several at once. One stream
#: a thread (a plain sum) read 11.7 GB/s on one thread of an Ice Lake Xeon where 8 read 16.6 and
#: the kernels' z pass alone 14 to 17: a ceiling the kernels passed.
READ_STREAMS = 8


@jit(fastmath=True)
def _read_streams(a: NDArray[np.float64], lo: int, length: int) -> float:
    """The sum of a[lo : lo + 8 length], read as 8 streams of `length` side by side."""
    s0, s1 = a[lo : lo + length], a[lo + length : lo + 2 * length]
    s2, s3 = a[lo + 2 * length : lo + 3 * length], a[lo + 3 * length : lo + 4 * length]
    s4, s5 = a[lo + 4 * length : lo + 5 * length], a[lo + 5 * length : lo + 6 * length]
    s6, s7 = a[lo + 6 * length : lo + 7 * length], a[lo + 7 * length : lo + 8 * length]
    # fastmath lets the sum vectorize; its value is irrelevant, reading a is the point.
    total = 0.0
    for i in range(length):
        total += (s0[i] + s1[i] + s2[i] + s3[i]) + (s4[i] + s5[i] + s6[i] + s7[i])
    return total


@jit(parallel=True)
def _read_sum(a: NDArray[np.float64], parts: int) -> float:
    """The sum of a, each of `parts` contiguous parts (one a thread) read as `READ_STREAMS`
    streams."""
    length = a.size // (parts * READ_STREAMS)
    sums = np.zeros(parts)
    for p in numba.prange(parts):
        sums[p] = _read_streams(a, p * length * READ_STREAMS, length)
    rest = 0.0
    for i in range(parts * length * READ_STREAMS, a.size):
        rest += a[i]
    return float(sums.sum() + rest)


def read_bandwidth_bytes_per_s(threads: int, array_bytes: int = BANDWIDTH_ARRAY_BYTES) -> float:
    """Best-of-10 read bandwidth of `_read_sum` over `array_bytes` of float64, in bytes/s."""
    a = np.ones(array_bytes // 8)
    with thread_limit(threads):
        _read_sum(a[:8], threads)  # compile (or load from the cache) outside the timing
        best_s = float("inf")
        for _ in range(BANDWIDTH_REPEATS):
            start = time.perf_counter()
            _read_sum(a, threads)
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


def last_level_cache_bytes(cpu: Path = Path("/sys/devices/system/cpu/cpu0")) -> int:
    """The size of the largest data cache of `cpu` that Linux describes; 0 where it describes
    none (another OS, a container that hides it)."""
    units = {"K": 2**10, "M": 2**20, "G": 2**30}
    sizes = [0]
    for index in sorted((cpu / "cache").glob("index*")):
        try:
            if (index / "type").read_text().strip() == "Instruction":
                continue
            size = (index / "size").read_text().strip()  # "32768K"
            sizes.append(int(size[:-1]) * units[size[-1]] if size[-1] in units else int(size))
        except (OSError, ValueError):
            continue
    return max(sizes)


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
