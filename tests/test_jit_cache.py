"""Compiled kernels are cached on disk: a second process loads them instead of compiling.

How long the load takes is measured (and printed with -s), never asserted: timings are noisy.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import loopvec
from loopvec.backends import _jit

FIRST_CALLS = r"""
import json, time
import numba.core.registry
import loopvec
from loopvec.backends import BACKENDS, get_kernel, get_loop

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
# The compiled training loops (float64, as the bench trains): numba's copy of each kernel
import gc
start = time.perf_counter()
for name, spec in BACKENDS.items():
    if "numba" in spec.requires and spec.compiled_loop:
        p = problem
        advance, w, b = get_loop(name, "compiled")(p.w, p.b, p.X, p.Y, 0.1, 0.0)
        advance(w, b, 2)
loops = [
    o for o in gc.get_objects()
    if isinstance(o, numba.core.registry.CPUDispatcher) and o.py_func.__name__ == "descend"
]
stats["compiled loops"] = {
    "seconds": time.perf_counter() - start,
    "count": len(loops),
    "hits": sum(sum(d.stats.cache_hits.values()) for d in loops),
    "misses": sum(sum(d.stats.cache_misses.values()) for d in loops),
}
from loopvec.backends import _blocked
# X in C order: Fortran order's walks are never compiled for it (nor loaded)
stats["fortran walks compiled"] = sum(
    len(getattr(_blocked, name).overloads)
    for name in ("_columns", "_stream_walk", "_lane_walk", "_z_columns", "_dw_columns")
)
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
    assert compiled.pop("fortran walks compiled") == loaded.pop("fortran walks compiled") == 0
    assert {"numba_loops/float64", "numba_fused/float32", "numba_parallel/float64"} <= set(loaded)
    assert compiled["compiled loops"]["count"] == loaded["compiled loops"]["count"] == 3
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


GRADIENT = r"""
import json
import loopvec
from loopvec.backends import get_kernel
from loopvec.backends.numba_fused import planned_gradient

p = loopvec.make_problem(300, 5, seed=1)
dw, db = get_kernel("numba_fused")(p.w, p.b, p.X, p.Y)
loaded = sum(planned_gradient.stats.cache_hits.values())
print(json.dumps({"dw0": float(dw[0, 0]), "db": db, "loaded": loaded}))
"""


def test_an_edit_of_a_module_the_kernel_calls_is_compiled_with_a_warm_cache(
    tmp_path: Path,
) -> None:
    """numba's own cache checks the file of the function only: numba_fused.py, not _exp.py.
    The cache folder is named by the code fingerprint of every module the kernel uses, so the
    edit (dz's sign flipped in _exp.py, which numba_fused.py reaches through _blocked.py) takes
    effect although numba_fused.py is unchanged."""
    package = tmp_path / "src"
    shutil.copytree(
        Path(loopvec.__file__).parent,
        package / "loopvec",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    env = {**os.environ, "PYTHONPATH": str(package), "NUMBA_CACHE_DIR": str(tmp_path / "cache")}

    def run() -> dict[str, float]:
        done = subprocess.run(
            [sys.executable, "-c", GRADIENT],
            capture_output=True, text=True, env=env, timeout=600, check=True,
        )  # fmt: skip
        result: dict[str, float] = json.loads(done.stdout)
        return result

    compiled, warm = run(), run()
    assert (compiled["loaded"], warm["loaded"]) == (0, 1)  # the second came from the cache
    assert warm["dw0"] == compiled["dw0"]
    exp = package / "loopvec" / "backends" / "_exp.py"
    source = exp.read_text()
    flips = {  # dz = y - sigmoid(z), 8 at a time and in the last few (m = 300)
        "d = fma(gather(y, i, 1), -1.0, a)": "d = fma(a, -1.0, gather(y, i, 1))",
        "dz[whole + k] = lane(a, k) - y[whole + k]": "dz[whole + k] = y[whole + k] - lane(a, k)",
    }
    for before, after in flips.items():
        assert source.count(before) == 1
        source = source.replace(before, after)
    exp.write_text(source)
    edited = run()
    assert edited["loaded"] == 0  # compiled afresh
    assert edited["dw0"] == pytest.approx(-compiled["dw0"], rel=1e-12)
    assert edited["db"] == pytest.approx(-compiled["db"], rel=1e-12)
    fingerprints = sorted(path.name for path in (tmp_path / "cache").iterdir())
    assert len(fingerprints) > 1  # one folder per version of the code


HOLD = r"""
import sys, time
from loopvec.backends._jit import compiling_alone

with compiling_alone("loopvec.backends._blocked"):
    start = time.time()
    time.sleep(1.0)
    print(start, time.time())
"""


def test_processes_compiling_alone_take_turns_in_the_module_s_cache_folder(
    tmp_path: Path,
) -> None:
    """The lock that lets a Dask cluster's workers compile the chunk kernels one at a time."""
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}
    holders = [
        subprocess.Popen([sys.executable, "-c", HOLD], stdout=subprocess.PIPE, text=True, env=env)
        for _ in range(2)
    ]
    (_, first_left), (second_entered, _) = sorted(
        tuple(map(float, holder.communicate(timeout=120)[0].split())) for holder in holders
    )
    assert first_left <= second_entered  # the second entered once the first had left
    assert [p.name for p in tmp_path.glob("*/compiling.lock")] == ["compiling.lock"]


def test_compiling_alone_where_the_cache_cannot_be_written_compiles_without_the_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(a_file / "cache"))  # no folder can be made there
    _jit.cache_folder.cache_clear()
    try:
        ran = []
        with _jit.compiling_alone("loopvec.backends._blocked"):
            ran.append(True)
        assert ran == [True]
    finally:
        _jit.cache_folder.cache_clear()
