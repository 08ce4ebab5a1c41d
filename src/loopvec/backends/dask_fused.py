"""The gradient on a Dask cluster, one pass over X: a compiled kernel per chunk of examples.

    for each chunk c of examples (a task on a worker):   (X_c dZ_c.T, sum dZ_c)   numba_fused's pass
    dw, db = tree sum of the chunks' partial sums / m                             a few floats back

Inputs go to the workers once, before timing (`_dask.to_native`); each gradient then submits one
task per chunk straight to the chunks' futures, and a tree of sums. Data that does not fit stays
in its store and goes through a dask.array graph, read chunk by chunk. The chunk kernel releases
the GIL and runs with the client's kernel plan (`loopvec.tuning`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from loopvec.backends._dask import chunk_sums, summed, to_native, to_numpy
from loopvec.backends._plan import kernel_plan

__all__ = ["gradient", "to_native", "to_numpy"]


def gradient(w: NDArray[Any], b: float, X: Any, Y: Any) -> tuple[NDArray[np.float64], float]:
    """dw (n, 1) float64 and db of the mean cross-entropy; X (n, m), Y (1, m) on the cluster
    (`_dask.to_native`)."""
    n, m = X.shape
    total = summed(chunk_sums, X, Y, n + 1, w=w, b=b, plan=kernel_plan())
    return (total[:n] / m).reshape(n, 1), float(total[n]) / m
