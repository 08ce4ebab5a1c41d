"""Saved results become tidy records: from cell files, from pytest-benchmark JSON, merged."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from loopvec.results import (
    OlderFormatError,
    load_results,
    newest_run,
    reference_run,
    run_folder,
)

FIXTURE = Path(__file__).parent / "fixtures" / "results"
RUN = next(FIXTURE.iterdir())
RAW = sorted((RUN / "raw").iterdir())[0]  # pass 1's pytest-benchmark JSON


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
    assert all(r.passes == (1, 2, 3) and len(r.samples) == 3 for r in timed)
    assert all(
        len(p) == 3 and all(len(block) >= 1 for block in p) for r in timed for p in r.samples
    )
    assert all(r.rounds == sum(len(b) for p in r.samples for b in p) for r in timed)
    assert all(0 < r.low_s <= r.median_s <= r.high_s for r in timed)
    assert results.runs == [RUN.name]
    (fingerprint,) = results.fingerprints
    assert results.machines[fingerprint]["host"] == "vm"
    assert results.machines[fingerprint]["read_bandwidth_bytes_per_s"]


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


def test_raw_json_gives_the_timed_cells_with_the_same_rounds() -> None:
    from_raw = {r.cell: r for r in load_results([RAW]).records}
    from_cells = {r.cell: r for r in load_results([RUN]).records if r.timed}
    assert from_raw.keys() == from_cells.keys()
    assert all(from_raw[k].passes == (1,) for k in from_raw)  # one pass per raw JSON
    assert all(from_raw[k].samples[0] == from_cells[k].samples[0] for k in from_raw)


def test_merging_keeps_one_record_per_cell_the_newest(tmp_path: Path) -> None:
    copy = tmp_path / "run"
    shutil.copytree(RUN, copy)
    path = next(p for p in copy.glob("numba_loops-m1-n1-*.json"))
    cell = json.loads(path.read_text())
    for p in cell["passes"]:
        p["blocks"] = [[9.0] * len(block) for block in p["blocks"]]
    path.write_text(json.dumps({**cell, "finished_at": "2999-01-01T00:00:00"}))
    merged = load_results([RUN, RAW, copy])
    assert len(merged.records) == 30
    (record,) = [r for r in merged.records if (r.backend, r.m, r.n) == ("numba_loops", 1, 1)]
    assert record.median_s == pytest.approx(9.0)


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
    skipped = [r for r in results.training if not r.timed]
    assert [(r.dataset, r.backend) for r in skipped] == [
        ("breast_cancer", "python_loops"),
        ("breast_cancer", "partly_vectorized"),
    ]
    assert all(r.reason.startswith("predicted") and r.predicted_s > 0 for r in skipped)
    timed = [r for r in results.training if r.timed]
    assert all(r.median_s > 0 and r.iterations == 20 and 0.5 < r.accuracy <= 1 for r in timed)
    assert results.for_machine(results.fingerprints[0]).training == results.training


def test_training_benchmarks_in_pytest_benchmark_json_are_training_records(
    tmp_path: Path,
) -> None:
    raw = json.loads(RAW.read_text())
    entry = json.loads(json.dumps(raw["benchmarks"][0]))
    entry["extra_info"] = {
        **{k: v for k, v in entry["extra_info"].items() if k not in ("m", "n", "backend")},
        "kind": "training",
        "backend": "numba_loops",
        "dataset": "synthetic",
        "m": 100,
        "n": 10,
        "iterations": 20,
        "threads": 1,
        "learning_rate": 0.5,
    }
    entry["name"] = "test_training[train-synthetic-m100-n10-numba_loops-t1]"
    raw["benchmarks"] = [b for b in raw["benchmarks"] if "kind" not in b["extra_info"]]
    gradient = load_results([RAW]).records
    raw["benchmarks"].append(entry)
    path = tmp_path / "raw.json"
    path.write_text(json.dumps(raw))
    results = load_results([path])
    (training,) = results.training
    assert training.dataset == "synthetic"
    assert training.samples == ((tuple(entry["stats"]["data"]),),)
    assert results.records == gradient


def test_a_cell_of_an_older_format_is_refused_naming_the_file(tmp_path: Path) -> None:
    copy = tmp_path / RUN.name
    shutil.copytree(RUN, copy)
    path = copy / "numba_loops-m1-n1-t1-float64-C.json"
    old = {k: v for k, v in json.loads(path.read_text()).items() if k != "format"}
    path.write_text(json.dumps(old))
    with pytest.raises(OlderFormatError, match=f"{path} is a cell of an older loopvec format"):
        load_results([copy])
    machine = json.loads((RUN / "machine.json").read_text())
    del machine["fingerprint"]
    (copy / "machine.json").write_text(json.dumps(machine))
    with pytest.raises(OlderFormatError, match=r"machine\.json is a machine record of an older"):
        load_results([copy])


def test_a_run_folder_holds_one_machine_s_cells(tmp_path: Path) -> None:
    copy = tmp_path / RUN.name
    shutil.copytree(RUN, copy)
    path = copy / "numba_loops-m1-n1-t1-float64-C.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "machine_fingerprint": "f" * 16}))
    with pytest.raises(ValueError, match=f"{path} was timed on machine f{{16}}, not on the run's"):
        load_results([copy])


def test_the_reference_run_is_used_only_where_it_is_named(tmp_path: Path) -> None:
    shutil.copytree(RUN, tmp_path / "reference")
    with pytest.raises(FileNotFoundError, match=r"the reference run is .*reference: name it"):
        newest_run(tmp_path)
    assert run_folder(tmp_path / "reference") == tmp_path / "reference"
    assert reference_run(tmp_path / "reference" / "figures" / "a.png") == tmp_path / "reference"
    shutil.copytree(RUN, tmp_path / RUN.name)
    assert newest_run(tmp_path) == tmp_path / RUN.name
    assert run_folder(tmp_path / RUN.name / "raw" / RAW.name) == tmp_path / RUN.name
    assert reference_run(tmp_path / RUN.name) is None
