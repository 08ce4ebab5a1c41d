"""The measurement protocol without pytest: the resume rule, the budget and memory rules, the
rounds and the pass order, the settings a driver hands its passes, a pass's decisions and its
progress line, and that a timing process never loads matplotlib."""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import loopvec
from loopvec.grid import (
    DEFAULT_TRAIN_BUDGET_S,
    GRIDS,
    Cell,
    CostModel,
    TrainingCell,
    make_cells,
    make_training_cells,
)
from loopvec.memory import peaks_of_passes
from loopvec.provenance import FORMAT
from loopvec.runner.plan import (
    MAX_ROUNDS,
    SETTLE_S,
    RoundPlan,
    pass_order,
    rest_before_s,
    round_plan,
    training_order,
    training_rounds,
)
from loopvec.runner.plugin import add_options
from loopvec.runner.progress import Progress
from loopvec.runner.rules import (
    History,
    as_earlier_passes,
    cost_model_reason,
    first_call_cost_s,
    first_call_reason,
    memory_needed_bytes,
    memory_reason,
    resume_refused,
    training_cell_s,
    training_reason,
)
from loopvec.runner.session import Pass
from loopvec.runner.settings import Settings, SettingsError, make_settings

BENCH = Path(__file__).resolve().parents[1] / "src" / "loopvec" / "suite"
CELL = Cell("numba_fused", 1000, 10, 1)
MINE = {
    "format": FORMAT,
    "machine_fingerprint": "m1",
    "code_fingerprint": "c1",
    "code_modules": {"loopvec.backends.numba_fused": "a", "loopvec.backends._blocked": "b"},
    "code_versions": {"numba": "0.61"},
}


def record_of(cell: Cell | TrainingCell, **changes: Any) -> dict[str, Any]:
    """A cell file's fields as this pass would write them, with `changes`."""
    return {"cell_id": cell.cell_id, **cell.params(), **MINE, **changes}


def test_resume_keeps_only_this_machines_and_codes_timing_of_the_same_parameters() -> None:
    assert resume_refused(record_of(CELL), CELL.params(), MINE) is None
    older = record_of(CELL, format=FORMAT - 1)
    assert resume_refused(older, CELL.params(), MINE) == (
        "its earlier cell file is of an older format"
    )
    machine = record_of(CELL, machine_fingerprint="m0")
    assert resume_refused(machine, CELL.params(), MINE) == "machine changed (was m0)"
    edited = {**MINE["code_modules"], "loopvec.backends._blocked": "b2"}
    code = record_of(CELL, code_fingerprint="c0", code_modules=edited)
    assert resume_refused(code, CELL.params(), MINE) == "code changed: loopvec.backends._blocked"
    versions = record_of(CELL, code_fingerprint="c0")  # same sources: a framework's version
    assert resume_refused(versions, CELL.params(), MINE) == (
        "code changed: versions {'numba': '0.61'}"
    )
    other = record_of(CELL, dtype="float32")
    assert resume_refused(other, CELL.params(), MINE) == "parameters changed"


def test_later_passes_decide_the_budget_as_the_first_did() -> None:
    assert as_earlier_passes("over budget", History()) == "over budget"  # a first decision
    assert as_earlier_passes(None, History()) is None
    assert as_earlier_passes("over budget", History(timed=True)) is None  # timed before: again
    assert as_earlier_passes(None, History(skipped="predicted 2 s")) == "predicted 2 s"
    assert as_earlier_passes("other words", History(skipped="predicted 2 s")) == "predicted 2 s"


def test_first_call_and_training_budgets_name_their_prediction() -> None:
    # JAX compiles again for each shape: the cell's first call included a compilation
    assert first_call_cost_s(1.5, compile_s=1.2, compiles_per_shape=True) == pytest.approx(0.3)
    assert first_call_cost_s(1.5, compile_s=1.2, compiles_per_shape=False) == 1.5  # cached
    assert first_call_cost_s(1.0, compile_s=1.2, compiles_per_shape=True) == 0.0
    assert first_call_reason(0.5, budget_s=1.0) is None
    assert first_call_reason(1.5, budget_s=1.0) == (
        "its first call took 1.5 s > budget 1 s (no cost model yet)"
    )
    cell = TrainingCell("python_loops", "synthetic", 10_000, 100, 1000, 1)
    assert training_reason(cell, call_s=1e-3, passes=5, train_budget_s=30.0) is None
    reason = training_reason(cell, call_s=0.01, passes=5, train_budget_s=30.0)
    assert reason == (
        "predicted 10 s per training run (1000 x 0.01 s per gradient), 60 s over 5 passes > "
        "train budget 30 s"
    )


def options(**changes: Any) -> dict[str, Any]:
    """Parsed option values as pytest gives them for `pytest bench`, with `changes`."""
    return {
        "grid": "smoke",
        "m": None,
        "n": None,
        "backends": ["numpy_vectorized", "numba_fused"],
        "threads": [1],
        "dtypes": ["float64"],
        "layouts": ["C"],
        "budget": 1.0,
        "train_budget": math.inf,
        "results_dir": "results",
        "fresh": False,
        "update_reference": False,
        "no_bandwidth": True,
        "no_memory": False,
        "passes": None,
        "pass_number": None,
        "blocks": 3,
        "order_seed": 0,
        "report": False,
        "max_time_s": None,
        **changes,
    }


def test_settings_are_checked_once_and_reach_a_pass_unchanged() -> None:
    settings = make_settings(options(), loopvec.backend_names())
    assert settings.passes == GRIDS["smoke"].passes
    assert settings.max_time_s == GRIDS["smoke"].max_time_s
    assert settings.run_grid == "smoke"
    assert Settings.from_json(settings.to_json()) == settings  # inf budgets too
    assert json.loads(settings.to_json())["train_budget_s"] is None
    custom = make_settings(options(m=[10, 1000]), loopvec.backend_names())
    assert custom.run_grid.startswith("custom-")
    assert custom.m_values == (10, 1000)
    assert custom.n_values == GRIDS["smoke"].n_values
    with pytest.raises(SettingsError, match="--pass: this run has 2 passes; got 3"):
        make_settings(options(pass_number=3), loopvec.backend_names())
    with pytest.raises(SettingsError, match="--backends: numpy not a backend; the backends: py"):
        make_settings(options(backends=["numpy"]), loopvec.backend_names())


def make_pass(tmp_path: Path, number: int) -> Pass:
    settings = make_settings(options(results_dir=str(tmp_path)), loopvec.backend_names())
    machine = {"fingerprint": "m1", "host": "test"}
    return Pass(settings, tmp_path / "run", machine, number, {"git_commit": None})


def test_a_pass_records_its_skip_and_a_later_pass_skips_as_it_did(tmp_path: Path) -> None:
    first = make_pass(tmp_path, 1)
    assert first.check_budget(CELL, None) is None
    assert first.check_budget(CELL, "predicted 2 s > budget 1 s", predicted_s=2.0) == (
        f"{CELL.cell_id}: predicted 2 s > budget 1 s"
    )
    written = json.loads((tmp_path / "run" / f"{CELL.cell_id}.json").read_text())
    assert (written["status"], written["predicted_s"]) == ("skipped", 2.0)
    assert first.progress.take(CELL.cell_id) == ("skipped", "predicted 2 s > budget 1 s")

    second = make_pass(tmp_path, 2)
    second.load()
    # a faster prediction in pass 2 does not time what pass 1 skipped
    assert second.check_budget(CELL, None) == f"{CELL.cell_id}: predicted 2 s > budget 1 s"
    again = json.loads((tmp_path / "run" / f"{CELL.cell_id}.json").read_text())
    assert again == written  # as pass 1 recorded it
    assert second.progress.take(CELL.cell_id) == ("skipped", "predicted 2 s > budget 1 s")


def test_a_pass_resumes_only_its_own_timing_and_says_why_not(tmp_path: Path) -> None:
    run = make_pass(tmp_path, 2)
    mine = run.provenance(CELL)
    entry = {"pass": 2, "blocks": [[1e-6]], "compile_s": 0.1}
    run.done[CELL.cell_id] = {"cell_id": CELL.cell_id, **CELL.params(), **mine, "passes": [entry]}
    assert run.timed_before(CELL)
    assert run.resumed(CELL).startswith(f"{CELL.cell_id}: pass 2 already timed in ")
    assert run.progress.take(CELL.cell_id)[0] == "resumed"  # type: ignore[index]
    run.done[CELL.cell_id]["code_fingerprint"] = "another"
    assert not run.timed_before(CELL)
    assert run.retimed[CELL.cell_id].startswith("code changed")


def test_a_cell_this_process_timed_is_not_resumed_by_its_later_blocks(tmp_path: Path) -> None:
    """A cell whose timing ended in its first block is written then; its later blocks skip as
    blocks it does not have, not as a pass "already timed" (a fresh run resumes nothing)."""
    run = make_pass(tmp_path, 1)
    run.write_pass(CELL, {**run.pass_entry(CELL, compile_s=0.1), "blocks": [[1e-6]]})
    assert not run.timed_before(CELL)
    assert run.progress.take(CELL.cell_id)[0] == "timed"  # type: ignore[index]
    later = make_pass(tmp_path, 1)  # the same pass, rerun after an interrupt
    later.load()
    assert later.timed_before(CELL)


def test_the_progress_line_counts_what_the_pass_decided() -> None:
    progress = Progress(cells=["a", "b", "c"])
    progress.decided("a", "resumed", "pass 1 already timed")
    progress.decided("a", "resumed", "again, from a later block")
    assert progress.take("b") is None  # nothing decided yet: no line
    assert progress.take("a") == ("resumed", "pass 1 already timed")
    progress.decided("a", "skipped", "a later block's skip")
    assert progress.take("a") is None  # one line per cell
    assert progress.failed("b") == ("failed", "")  # crashed before deciding
    line = progress.line("pass 1/2", "b", ("failed", ""), time_left_s=90.0)
    assert line == (
        "[pass 1/2] [2/3] b failed:  | timed 0, resumed 1, skipped 0, failed 1, left 1, "
        "about 1.5 min left"
    )


def test_no_timing_process_imports_matplotlib() -> None:
    """A pass imports the runner and the bench's modules; drawing is for after the timing."""
    code = f"""
import importlib.util, sys
sys.path.insert(0, {str(BENCH)!r})
import loopvec.runner.plugin, loopvec.runner.session, loopvec.runner.driver
for name in ("conftest", "test_gradient", "test_training"):
    spec = importlib.util.spec_from_file_location(name, {str(BENCH)!r} + f"/{{name}}.py")
    spec.loader.exec_module(importlib.util.module_from_spec(spec))
print(sorted(m for m in sys.modules if m.split(".")[0] == "matplotlib"))
"""
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert done.stdout.strip() == "[]"


def test_budget_skip_names_the_prediction() -> None:
    model = CostModel(overhead_s=1e-6, per_example_s=0.0, per_element_s=1e-7)
    small, large = Cell("python_loops", 100, 10, 1), Cell("python_loops", 1_000_000, 100, 1)
    assert cost_model_reason(model, small, budget_s=1.0) is None
    reason = cost_model_reason(model, large, budget_s=1.0)
    assert reason is not None
    assert reason.startswith("predicted 10 s per call > budget 1 s")
    assert cost_model_reason(None, large, budget_s=1.0) is None  # no model yet: run it


def test_memory_rule_counts_the_backends_own_copies() -> None:
    cell = Cell("numpy_vectorized", 1_000_000, 1000, 1)
    loops = Cell("python_loops", 1_000_000, 1000, 1)
    assert memory_needed_bytes(loops) > 4 * memory_needed_bytes(cell) - 4 * 2**30
    assert memory_reason(cell, available_bytes=64 * 2**30) is None
    reason = memory_reason(cell, available_bytes=4 * 2**30)
    assert reason is not None
    assert "needs about 7.7 GiB" in reason


def test_memory_rule_uses_the_backends_measured_bytes_where_it_has_them() -> None:
    loops = Cell("python_loops", 1_000_000, 1000, 1)
    guessed, measured = memory_needed_bytes(loops), memory_needed_bytes(loops, 2**30)
    assert guessed - measured == 32 * loops.elements - 2**30  # the guess: 32 bytes an entry
    reason = memory_reason(loops, available_bytes=8 * 2**30, measured_bytes=2**30)
    assert reason is not None
    assert reason.startswith("needs about 8.7 GiB (X and the backend's own, measured on its ")
    assert "8.0 GiB free" in reason
    assert "its guess" in str(memory_reason(loops, available_bytes=8 * 2**30))


def test_a_pass_predicts_a_backends_memory_from_its_smaller_cells(tmp_path: Path) -> None:
    run = make_pass(tmp_path, 1)
    large = Cell("numpy_vectorized", 1_000_000, 100, 2)
    assert run.predicted_bytes(large) is None  # nothing measured: the guess
    for m, n in [(1000, 10), (100_000, 10), (10_000, 100)]:  # 5 m-long arrays and 1 KiB
        cell = Cell("numpy_vectorized", m, n, 1)
        passes = [{"pass": 1, "peak_bytes": 40 * m + 1024, "inputs_peak_bytes": 0}]
        run.done[cell.cell_id] = {
            **cell.params(),
            "cell_id": cell.cell_id,
            **peaks_of_passes(passes),
        }
        if m == 1000:
            assert run.predicted_bytes(large) is None  # one size: too few to fit
    assert run.predicted_bytes(large) == pytest.approx(40 * large.m + 1024, rel=1e-6)
    other = Cell("numpy_vectorized", 1_000_000, 100, 2, "float64", "F")
    assert run.predicted_bytes(other) is None  # another layout is another backend's memory


@pytest.mark.parametrize("backend", ["numpy_vectorized", "python_loops"])
def test_memory_rule_keeps_a_fifth_of_the_free_memory_free(backend: str) -> None:
    cell = Cell(backend, 1_000_000, 100, 1)
    needed = memory_needed_bytes(cell)
    assert needed > cell.m * cell.n * 8  # X at least
    assert memory_reason(cell, available_bytes=math.ceil(needed / 0.8)) is None
    for short_bytes in (math.ceil(needed / 0.8) - 1_000, needed, needed + 1):  # fits, no headroom
        reason = memory_reason(cell, available_bytes=short_bytes)
        assert reason is not None, short_bytes
        assert "more than 80% of the" in reason


@pytest.mark.parametrize(
    ("call_s", "expected"),
    [
        (1e-6, RoundPlan(iterations=20, rounds=MAX_ROUNDS, warmup_rounds=1, blocks=3)),
        (1e-4, RoundPlan(iterations=1, rounds=MAX_ROUNDS, warmup_rounds=1, blocks=3)),
        (0.002, RoundPlan(iterations=1, rounds=16, warmup_rounds=1, blocks=3)),  # as many as fit
        (0.02, RoundPlan(iterations=1, rounds=1, warmup_rounds=0, blocks=3)),  # slow: no warm-up
        (0.05, RoundPlan(iterations=1, rounds=1, warmup_rounds=0, blocks=2)),  # 2 blocks fit
        (1.5, RoundPlan(iterations=1, rounds=1, warmup_rounds=0, blocks=1)),  # one call a pass
    ],
)
def test_rounds_are_long_enough_to_time_and_fill_the_pass(
    call_s: float, expected: RoundPlan
) -> None:
    assert round_plan(call_s, pass_s=0.1, blocks=3) == expected


def test_a_pass_times_each_group_side_by_side_in_interleaved_blocks() -> None:
    cells = make_cells(
        [1, 100], [10], ["numpy_vectorized", "numba_loops", "numba_parallel"], [1, 2]
    )
    first = pass_order(cells, pass_number=1, blocks=3, seed=0)
    assert len(first) == 3 * len(cells)
    # pass 1: smallest problem first (the budget learns from it), each group's blocks in turn
    assert [c.m for c, _ in first] == sorted(c.m for c, _ in first)
    group = first[:9]  # m = 1, 1 thread: three backends, three blocks each
    assert {(c.m, c.threads) for c, _ in group} == {(1, 1)}
    assert [b for _, b in group] == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert [{c.backend for c, b in group if b == k} for k in range(3)] == [
        {"numpy_vectorized", "numba_loops", "numba_parallel"}
    ] * 3
    orders = {tuple(c.backend for c, b in group if b == k) for k in range(3)}
    second = pass_order(cells, pass_number=2, blocks=3, seed=0)
    assert sorted(map(str, second)) == sorted(map(str, first))  # every block once
    assert pass_order(cells, pass_number=2, blocks=3, seed=0) == second  # seeded
    assert (
        pass_order(cells, pass_number=3, blocks=3, seed=0) != second
        or pass_order(cells, pass_number=4, blocks=3, seed=0) != second
    )
    assert len(orders) > 1 or pass_order(cells, 1, 3, seed=1)[:9] != group  # shuffled


def test_a_block_rests_after_another_backends_threads_only() -> None:
    # the spinning thread pools of a multi-threaded block would take the next block's cores
    assert rest_before_s(("numpy_vectorized", 2), "numba_parallel") == SETTLE_S > 0
    assert rest_before_s(("numpy_vectorized", 1), "numba_parallel") == 0  # no pool ran
    assert rest_before_s(("numba_parallel", 2), "numba_parallel") == 0  # its own pool: warm
    assert rest_before_s(None, "numba_parallel") == 0  # the first block of the pass


def test_training_passes_after_the_first_come_in_a_seeded_random_order() -> None:
    cells = make_training_cells(
        [("synthetic", 100, 10, 20)], ["python_loops", "numpy_vectorized"], [1]
    )
    assert training_order(cells, 1, seed=0) == [0, 1]
    assert sorted(training_order(cells, 2, seed=0)) == [0, 1]
    assert training_order(cells, 2, seed=0) == training_order(cells, 2, seed=0)


def test_training_rounds_fill_a_pass_with_at_least_one() -> None:
    assert training_rounds(0.01, 0.1) == 10
    assert training_rounds(0.001, 0.1) == MAX_ROUNDS
    assert training_rounds(2.0, 0.1) == 1


def test_a_training_cell_costs_a_checked_run_and_one_run_a_pass() -> None:
    assert training_cell_s(2.0, passes=5) == 12.0
    assert training_cell_s(18.3, passes=5) > DEFAULT_TRAIN_BUDGET_S  # partly_vectorized, m = 1e4


def test_later_passes_take_the_sizes_in_another_order_than_the_first() -> None:
    """Pass 1 goes smallest first (the budget learns); the others must not all repeat it, or a
    drift of the machine over a pass would always meet the same sizes at the same time."""
    cells = make_cells([1, 10, 100, 1000], [1, 10], ["numpy_vectorized"], [1])

    def sizes(pass_number: int) -> list[tuple[int, int]]:
        order = pass_order(cells, pass_number, blocks=1, seed=0)
        return list(dict.fromkeys((c.m, c.n) for c, _ in order))

    first = sizes(1)
    assert first == sorted(first, key=lambda s: (s[0] * s[1], s))
    assert all(sorted(sizes(k)) == sorted(first) for k in range(2, 6))
    assert sum(sizes(k) != first for k in range(2, 6)) >= 3


SIZES = "expected positive whole numbers like 1,10,1e6"
LIMIT = "expected seconds > 0, or inf for no limit"


@pytest.mark.parametrize(
    ("option", "text", "message"),
    [
        ("--m", "0", f"{SIZES}; got '0'"),
        ("--m", "inf", f"{SIZES}; got 'inf'"),
        ("--m", "1e400", f"{SIZES}; got '1e400'"),
        ("--n", "1.5", f"{SIZES}; got '1.5'"),
        ("--threads", "0", f"{SIZES}; got '0'"),
        ("--budget", "nan", f"{LIMIT}; got 'nan'"),
        ("--budget", "-1", f"{LIMIT}; got '-1'"),
        ("--budget", "0", f"{LIMIT}; got '0'"),
        ("--train-budget", "nan", f"{LIMIT}; got 'nan'"),
        ("--passes", "0", f"{SIZES}; got '0'"),
        ("--blocks", "1,2", "expected one positive whole number; got '1,2'"),
        ("--dtypes", "f32", "expected some of float64, float32; got 'f32'"),
        ("--layouts", "X", "expected some of C, F; got 'X'"),
    ],
)
def test_every_option_checks_its_value_and_names_what_it_expected(
    option: str, text: str, message: str
) -> None:
    """The options as `pytest bench` registers them (argparse prefixes 'argument --m: '; one of
    each kind runs end to end in tests/test_bench_hardening.py)."""
    options: dict[str, Any] = {}

    class Group:
        def addoption(self, name: str, **settings: Any) -> None:
            options[name] = settings

    class Parser:
        def getgroup(self, name: str, description: str) -> Group:
            return Group()

    add_options(Parser())  # type: ignore[arg-type]
    with pytest.raises(argparse.ArgumentTypeError) as error:
        options[option]["type"](text)
    assert str(error.value).startswith(message)
    assert options["--order-seed"]["type"] is int  # argparse's own message: "invalid int value"
