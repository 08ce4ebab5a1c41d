"""Compiled kernels are cached on disk: a second process loads them instead of compiling.

How long the load takes is measured (and printed with -s), never asserted: timings are noisy.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

FIRST_CALLS = r"""
import json, time
import numba.core.registry
import loopvec
from loopvec.backends import BACKENDS, get_kernel

problem = loopvec.make_problem(50, 12)
stats = {}
for name, spec in BACKENDS.items():
    if "numba" not in spec.requires:
        continue
    for dtype in spec.dtypes:
        p = problem.astype(dtype)
        start = time.perf_counter()
        get_kernel(name)(p.w, p.b, p.X, p.Y)
        seconds = time.perf_counter() - start
        module = __import__(f"loopvec.backends.{spec.module}", fromlist=["_"])
        dispatchers = [
            v for v in vars(module).values() if isinstance(v, numba.core.registry.CPUDispatcher)
        ]
        stats[f"{name}/{dtype}"] = {
            "seconds": seconds,
            "hits": sum(sum(d.stats.cache_hits.values()) for d in dispatchers),
            "misses": sum(sum(d.stats.cache_misses.values()) for d in dispatchers),
        }
print(json.dumps(stats))
"""


def first_calls(cache: Path) -> dict[str, dict[str, float]]:
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache)}
    done = subprocess.run(
        [sys.executable, "-c", "import numba\n" + FIRST_CALLS],
        capture_output=True, text=True, env=env, timeout=600, check=True,
    )  # fmt: skip
    result: dict[str, dict[str, float]] = json.loads(done.stdout)
    return result


def test_second_process_loads_every_kernel_from_the_cache(tmp_path: Path) -> None:
    compiled = first_calls(tmp_path)
    loaded = first_calls(tmp_path)
    assert {"numba_loops/float64", "numba_fused/float32", "numba_parallel/float64"} <= set(loaded)
    for kernel, stats in compiled.items():
        assert stats["misses"] >= 1, kernel  # compiled in the first process
        assert loaded[kernel]["hits"] >= 1, kernel
        assert loaded[kernel]["misses"] == 0, kernel  # nothing compiled in the second
    print(
        {
            kernel: (round(compiled[kernel]["seconds"], 3), round(s["seconds"], 3))
            for kernel, s in loaded.items()
        }
    )
