"""Real data to train on, in the course layout: X (n, m) features x examples, Y (1, m) in {0, 1}.

Loaded from scikit-learn's bundled files (no download). scikit-learn is an optional dependency:
pip install 'loopvec[data]'.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from loopvec.problem import ExamplesAsColumns


@dataclass(frozen=True, eq=False)
class Dataset(ExamplesAsColumns):
    """Examples as columns: X (n, m) float64 C-ordered, Y (1, m) of 0.0 and 1.0."""

    name: str
    X: NDArray[np.float64]
    Y: NDArray[np.float64]
    feature_names: tuple[str, ...]
    summary: str


def _sklearn(module: str) -> Any:
    try:
        return importlib.import_module(f"sklearn.{module}")
    except ImportError:
        raise ImportError(
            "loopvec's datasets are read from scikit-learn's bundled files, and scikit-learn "
            "is not installed: pip install 'loopvec[data]' (or pip install scikit-learn)"
        ) from None


def breast_cancer() -> Dataset:
    """Wisconsin diagnostic breast cancer: m = 569 tumours, n = 30 features, Y = 1 for benign.

    Each feature is standardized to mean 0 and standard deviation 1 over the examples
    (scikit-learn's StandardScaler), so one learning rate suits every feature.
    """
    bunch = _sklearn("datasets").load_breast_cancer()
    standardized = _sklearn("preprocessing").StandardScaler().fit_transform(bunch.data)
    return Dataset(
        name="breast_cancer",
        X=np.ascontiguousarray(standardized.T, dtype=np.float64),
        Y=np.asarray(bunch.target, dtype=np.float64).reshape(1, -1),
        feature_names=tuple(bunch.feature_names),
        summary="569 tumours x 30 standardized features, scikit-learn's bundled copy",
    )


#: Every dataset by name: a loader returning a Dataset (`loopvec train --dataset NAME`).
DATASETS: dict[str, Callable[[], Dataset]] = {"breast_cancer": breast_cancer}
#: (m, n) of each dataset, known without loading it (the benchmark lists its cells up front).
SIZES: dict[str, tuple[int, int]] = {"breast_cancer": (569, 30)}


def load(name: str) -> Dataset:
    """The dataset called `name`; ValueError listing the valid names if there is none."""
    if name not in DATASETS:
        raise ValueError(f"dataset must be one of {', '.join(DATASETS)}; got {name!r}")
    return DATASETS[name]()
