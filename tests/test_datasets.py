"""The breast-cancer data in the course layout, standardized, and clear errors around it."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from loopvec import datasets


def test_breast_cancer_is_in_the_course_layout_and_standardized() -> None:
    data = datasets.load("breast_cancer")
    assert (data.n, data.m) == (30, 569)
    assert (data.m, data.n) == datasets.SIZES["breast_cancer"]
    assert data.X.flags.c_contiguous
    assert data.X.dtype == np.float64
    assert data.Y.shape == (1, 569)
    assert set(np.unique(data.Y)) == {0.0, 1.0}
    assert int(data.Y.sum()) == 357  # benign tumours
    np.testing.assert_allclose(data.X.mean(axis=1), 0, atol=1e-12)
    np.testing.assert_allclose(data.X.std(axis=1), 1, rtol=1e-12)
    assert data.feature_names[0] == "mean radius"


def test_an_unknown_dataset_names_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="dataset must be one of breast_cancer; got 'iris'"):
        datasets.load("iris")


def test_without_scikit_learn_the_error_says_what_to_install(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    def no_sklearn(name: str) -> Any:
        raise ImportError(f"No module named {name!r}")

    monkeypatch.setattr(datasets.importlib, "import_module", no_sklearn)
    with pytest.raises(ImportError, match=r"pip install 'loopvec\[data\]'"):
        datasets.breast_cancer()
