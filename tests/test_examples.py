"""The examples can never rot: examples/lesson.ipynb runs top to bottom (CI executes it on small
settings), and `loopvec.bench` returns what the notebook reads."""

from __future__ import annotations

import time
from pathlib import Path

import nbclient
import nbformat
import numpy as np
import pytest

import loopvec
from loopvec.benchmark import BenchError

LESSON = Path(__file__).resolve().parents[1] / "examples" / "lesson.ipynb"

pytestmark = pytest.mark.usefixtures("as_a_user_runs_it")


def test_the_lesson_notebook_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOOPVEC_LESSON_PASSES", "2")  # the kernel inherits the environment
    notebook = nbformat.read(LESSON, as_version=4)
    start = time.perf_counter()
    client = nbclient.NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": tmp_path}}
    )
    client.execute()  # raises CellExecutionError, with the cell and its traceback, on failure
    print(f"examples/lesson.ipynb executed in {time.perf_counter() - start:.1f} s")
    printed = "".join(
        output.get("text", "")
        for cell in notebook.cells
        for output in cell.get("outputs", [])
        if output.get("name") == "stdout"
    )
    assert "my_vectorized: 7 passed, 0 failed, 1 not applicable: all checks pass" in printed
    assert "faster than my_loops" in printed
    assert (tmp_path / "lesson-results").is_dir()


def mine(w, b, X, Y):  # type: ignore[no-untyped-def]
    m = X.shape[1]
    e = np.exp(-np.abs(w.T @ X + b))
    A = np.where(w.T @ X + b >= 0, 1 / (1 + e), e / (1 + e))
    return X @ (A - Y).T / m, float(np.sum(A - Y)) / m


def test_bench_returns_the_runs_results(tmp_path: Path) -> None:
    said: list[str] = []
    results = loopvec.bench(
        ["python_loops", "numpy_vectorized", mine],
        sizes=[(10, 3), (1e2, 3)],
        threads=[1],
        passes=2,
        training=False,
        results_dir=tmp_path,
        options=["--benchmark-max-time=0.02", "--blocks=2", "--no-bandwidth"],
        say=said.append,
    )
    assert any(line.startswith("[pass 2/2]") for line in said)  # progress, as it came
    assert {r.backend for r in results.records} == {"python_loops", "numpy_vectorized", "mine"}
    assert next(r for r in results.records if r.backend == "mine").origin.startswith("--backend ")
    speedup = results.speedup("python_loops", "mine", m=100, n=3)
    assert speedup is not None
    assert speedup.low <= speedup.value <= speedup.high
    assert results.winner(m=100, n=3) is not None
    assert "<table>" in results._repr_html_()
    assert "runtime_vs_m" in results.plot()
    assert results.to_html().startswith("<!DOCTYPE html>")
    with pytest.raises(ValueError, match="must be an identifier and not one of loopvec's"):
        loopvec.bench([lambda w, b, X, Y: (w, b)], results_dir=tmp_path)
    with pytest.raises(ValueError, match="each backend once: mine given twice"):
        loopvec.bench([mine, mine], results_dir=tmp_path)
    with pytest.raises(ValueError, match="sizes must be every m with every n"):
        loopvec.bench(sizes=[(10, 3), (100, 30)])
    with pytest.raises(BenchError, match="--backends: nothing_here not a backend"):
        loopvec.bench(["nothing_here"], results_dir=tmp_path, say=said.append)
