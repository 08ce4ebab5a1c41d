"""X in the layout users hold: `data.T` of an (m, n) array (Fortran order) and strided views are
read in place, never copied, by the compiled kernels, by training and by the Dask chunks.

Agreement in every layout is tested for every backend in test_backends and test_kernels; this
holds the memory: a copy of X would show as new peak memory of X's size in a fresh process.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/clear_refs").exists(), reason="peak memory is read from Linux's /proc"
)

#: 160 MB of X: a copy stands far above the noise of a process's peak memory.
M, N = 200_000, 100

PEAK = """
import json
import numpy as np
import loopvec
from loopvec.backends import get_kernel

def status_bytes(field):  # Linux: the process's resident memory and its high-water mark
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith(field))
    return int(line.split()[1]) * 1024

data = np.random.default_rng(0).standard_normal(({m}, {n}))
X = data.T if "{layout}" == "F" else np.repeat(data, 2, axis=1).T[::2]
Y = (np.arange({m}) % 2.0)[None, :]
w, b = np.full(({n}, 1), 0.01), 0.1
{warm}
with open("/proc/self/clear_refs", "w") as clear:
    clear.write("5")  # the high-water mark starts again from what is resident now
before = status_bytes("VmRSS")
{call}
print(json.dumps({{"new_peak_bytes": status_bytes("VmHWM") - before, "x_bytes": X.nbytes,
                  "f_contiguous": X.flags.f_contiguous, "c_contiguous": X.flags.c_contiguous}}))
"""

CALLS = {
    "gradient": "loopvec.gradient(w, b, X, Y, backend='{backend}')",
    "kernel": "get_kernel('{backend}')(w, b, X, Y)",
    "train": "loopvec.train(X, Y, backend='{backend}', iterations=3)",
    "copy": "np.ascontiguousarray(X)",
}


def new_peak(backend: str, layout: str, call: str) -> dict[str, float]:
    """In a fresh process: the peak memory a call adds after X is made and the call is warm."""
    statement = CALLS[call].format(backend=backend)
    tiny = statement.replace("X, Y", "X[:, :64], Y[:, :64]")  # compiles, outside the peak
    script = PEAK.format(m=M, n=N, layout=layout, warm=tiny, call=statement)
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)], capture_output=True, text=True,
        timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result: dict[str, float] = json.loads(done.stdout.splitlines()[-1])
    return result


@pytest.mark.parametrize("layout", ["F", "strided"])
@pytest.mark.parametrize(
    ("backend", "call"),
    [("numba_fused", "kernel"), ("numba_parallel", "kernel"), ("numba_fused", "gradient"),
     ("numba_parallel", "train")],
)  # fmt: skip
def test_the_compiled_kernels_read_any_view_of_x_in_place(
    backend: str, call: str, layout: str
) -> None:
    got = new_peak(backend, layout, call)
    assert got["f_contiguous"] == (layout == "F")
    assert not got["c_contiguous"]
    assert got["new_peak_bytes"] < got["x_bytes"] / 20, got


@pytest.mark.parametrize("layout", ["F", "strided"])
def test_a_copy_of_x_would_show(layout: str) -> None:
    """The measurement's own check: a copy of X in C order shows as X's size of new peak."""
    got = new_peak("numpy", layout, "copy")
    assert got["new_peak_bytes"] > got["x_bytes"] * 0.9, got


def test_dask_chunks_of_data_t_stay_in_fortran_order() -> None:
    pytest.importorskip("distributed", reason="the [dask] extra is not installed")
    from loopvec.backends._dask import to_native  # noqa: PLC0415 (dask is optional)

    data = np.random.default_rng(1).standard_normal((1000, 7))
    Y = (np.arange(1000) % 2.0)[None, :]
    _, _, X, _ = to_native(np.zeros((7, 1)), 0.0, data.T, Y)
    chunks = [future.result() for future in X.futures]
    assert all(chunk.flags.f_contiguous and not chunk.flags.c_contiguous for chunk in chunks)
    np.testing.assert_array_equal(np.concatenate(chunks, axis=1), data.T)
