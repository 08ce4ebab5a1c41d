"""Saved results become tidy records: from cell files, from pytest-benchmark JSON, merged."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from loopvec.results import load_results, newest_run

FIXTURE = Path(__file__).parent / "fixtures" / "results"
RUN = next((FIXTURE / "cells").iterdir())
RAW = next((FIXTURE / "raw").iterdir())


def test_cell_files_give_every_cell_timed_or_skipped() -> None:
    results = load_results([RUN])
    assert len(results.records) == 30
    skipped = [r for r in results.records if not r.timed]
    assert {(r.backend, r.m, r.n) for r in skipped} == {
        ("python_loops", 10_000, 1),
        ("python_loops", 10_000, 10),
        ("partly_vectorized", 10_000, 1),
        ("partly_vectorized", 10_000, 10),
    }
    assert all(r.reason.startswith("predicted") and r.predicted_s > 0.001 for r in skipped)
    timed = [r for r in results.records if r.timed]
    assert all(r.median_s > 0 and r.rounds >= 1 and r.q1_s <= r.median_s <= r.q3_s for r in timed)
    assert results.hosts == ["vm"]
    assert results.machines["vm"]["read_bandwidth_bytes_per_s"]


def test_records_come_in_size_then_registry_order() -> None:
    records = load_results([RUN]).records
    assert [r.backend for r in records[:5]] == [
        "python_loops",
        "partly_vectorized",
        "numpy_vectorized",
        "numpy_vectorized",
        "numba_loops",
    ]
    assert [r.m * r.n for r in records] == sorted(r.m * r.n for r in records)


def test_raw_json_gives_the_timed_cells_with_the_same_medians() -> None:
    from_raw = {r.cell: r for r in load_results([RAW]).records}
    from_cells = {r.cell: r for r in load_results([RUN]).records if r.timed}
    assert from_raw.keys() == from_cells.keys()
    assert all(from_raw[k].median_s == from_cells[k].median_s for k in from_raw)


def test_merging_keeps_one_record_per_cell_the_newest(tmp_path: Path) -> None:
    copy = tmp_path / "run"
    shutil.copytree(RUN, copy)
    path = next(p for p in copy.glob("numba_loops-m1-n1-*.json"))
    cell = json.loads(path.read_text())
    path.write_text(json.dumps({**cell, "median_s": 9.0, "finished_at": "2999-01-01T00:00:00"}))
    merged = load_results([RUN, RAW, copy])
    assert len(merged.records) == 30
    (record,) = [r for r in merged.records if (r.backend, r.m, r.n) == ("numba_loops", 1, 1)]
    assert record.median_s == 9.0


def test_a_results_folder_means_its_newest_run(tmp_path: Path) -> None:
    assert newest_run(FIXTURE) == RUN
    assert len(load_results([FIXTURE]).records) == 30
    with pytest.raises(FileNotFoundError, match="no benchmark run under"):
        newest_run(tmp_path)
    with pytest.raises(FileNotFoundError, match="neither a run folder"):
        load_results([tmp_path])


def test_training_cells_become_training_records_apart_from_the_grid() -> None:
    results = load_results([RUN])
    assert len(results.training) == 10
    assert [(r.dataset, r.backend, r.threads) for r in results.training[:3]] == [
        ("breast_cancer", "python_loops", 1),
        ("breast_cancer", "partly_vectorized", 1),
        ("breast_cancer", "numpy_vectorized", 1),
    ]
    (skipped,) = [r for r in results.training if not r.timed]
    assert skipped.reason.startswith("predicted")
    assert skipped.predicted_s > 0
    timed = [r for r in results.training if r.timed]
    assert all(r.median_s > 0 and r.iterations == 20 and 0.5 < r.accuracy <= 1 for r in timed)
    assert results.for_host("vm").training == results.training


def test_training_benchmarks_in_pytest_benchmark_json_are_training_records(
    tmp_path: Path,
) -> None:
    raw = json.loads(RAW.read_text())
    entry = json.loads(json.dumps(raw["benchmarks"][0]))
    entry["extra_info"] = {
        "kind": "training",
        "backend": "numba_loops",
        "dataset": "synthetic",
        "m": 100,
        "n": 10,
        "iterations": 20,
        "threads": 1,
        "learning_rate": 0.5,
    }
    raw["benchmarks"].append(entry)
    path = tmp_path / "raw.json"
    path.write_text(json.dumps(raw))
    results = load_results([path])
    (training,) = results.training
    assert training.dataset == "synthetic"
    assert training.median_s == entry["stats"]["median"]
    assert len(results.records) == len(raw["benchmarks"]) - 1
