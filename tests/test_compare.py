"""Comparing runs: B/A per cell with its interval, a change only beyond the tie band, exit codes."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as scipy_stats

from loopvec.cli import main
from loopvec.compare import compare_runs, expected_by_chance, regressions
from loopvec.results import AnyRecord, TrainingRecord, load_results

RUN = next((Path(__file__).parent / "fixtures" / "results").iterdir())
RAW = sorted((RUN / "raw").iterdir())[0]
RECORDS = [*load_results([RUN]).records, *load_results([RUN]).training]


def slower(record: AnyRecord, factor: float) -> AnyRecord:
    """`record` with every round `factor` times as long."""
    samples = tuple(tuple(tuple(r * factor for r in block) for block in p) for p in record.samples)
    return dataclasses.replace(record, samples=samples)


def test_a_run_against_itself_has_no_change() -> None:
    comparisons = compare_runs(RECORDS, RECORDS)
    assert len(comparisons) == sum(r.timed for r in RECORDS)
    assert all(c.ratio == pytest.approx(1.0) and c.verdict == "same" for c in comparisons)
    assert not any(c.code_changed for c in comparisons)


def test_a_slowdown_beyond_the_interval_is_a_change_and_a_small_one_is_not() -> None:
    base = next(r for r in RECORDS if r.timed and r.backend == "numba_loops")
    (twice,) = compare_runs([base], [slower(base, 2.0)])
    assert twice.ratio == pytest.approx(2.0)
    assert twice.verdict == "slower"
    assert twice.change.low > 1.02
    assert regressions([twice], percent=50) == [twice]
    assert regressions([twice], percent=150) == []
    (faster,) = compare_runs([base], [slower(base, 0.5)])
    assert faster.verdict == "faster"
    assert regressions([faster], percent=0) == []
    (tiny,) = compare_runs([base], [slower(base, 1.01)])  # 1 %: inside the 2 % band
    assert tiny.verdict == "same"
    (tiny_strict,) = compare_runs([base], [slower(base, 1.01)], tie_band=0.0)
    assert tiny_strict.verdict in {"slower", "same"}  # a constant factor: its interval is narrow


def with_pass_medians(record: AnyRecord, medians_s: list[float]) -> AnyRecord:
    """`record` with one block of rounds per pass around each median (+-1 %)."""
    samples = tuple(((m * 0.99, m, m * 1.01),) for m in medians_s)
    return dataclasses.replace(record, samples=samples)


def test_the_interval_is_welchs_over_the_passes_log_medians() -> None:
    """Derived independently with scipy's Welch test on the log medians of the passes."""
    base = next(r for r in RECORDS if r.timed and r.backend == "numba_loops")
    a_s, b_s = [1.00, 1.04, 0.97, 1.02], [1.31, 1.22, 1.40, 1.27, 1.35]
    (c,) = compare_runs([with_pass_medians(base, a_s)], [with_pass_medians(base, b_s)])
    welch = scipy_stats.ttest_ind(np.log(b_s), np.log(a_s), equal_var=False)
    low, high = np.exp(welch.confidence_interval(0.95))
    assert c.ratio == pytest.approx(np.exp(np.mean(np.log(b_s)) - np.mean(np.log(a_s))))
    assert (c.change.low, c.change.high) == (pytest.approx(low), pytest.approx(high))
    assert c.verdict == "slower"


@pytest.mark.parametrize(
    ("b_s", "expected"),
    [
        ([1.10, 1.11, 1.09, 1.10], "slower"),  # whole interval above 1.02
        ([0.91, 0.90, 0.92, 0.91], "faster"),  # whole interval below 1 / 1.02
        ([1.45, 0.95, 1.05, 0.99], "same"),  # mean ratio 1.10, but the interval reaches below 1
        ([1.015, 1.016, 1.014, 1.015], "same"),  # decisive, but inside the 2 % tie band
    ],
)
def test_a_change_is_called_only_where_the_whole_interval_clears_the_band(
    b_s: list[float], expected: str
) -> None:
    base = next(r for r in RECORDS if r.timed and r.backend == "numba_loops")
    a = with_pass_medians(base, [1.0, 1.001, 0.999, 1.0])
    (c,) = compare_runs([a], [with_pass_medians(base, b_s)])
    assert c.verdict == expected, c.change
    if expected == "same" and c.ratio > 1.05:
        assert c.change.low < 1.0 < c.change.high


def test_relative_to_compares_speedups_so_a_uniformly_slower_machine_is_no_change() -> None:
    uniformly = [slower(r, 1.7) for r in RECORDS]
    plain = compare_runs(RECORDS, uniformly)
    assert all(c.verdict == "slower" for c in plain if len(c.a.passes) > 1)
    relative = compare_runs(RECORDS, uniformly, relative_to="numpy_vectorized")
    assert relative
    assert all(c.verdict == "same" and c.ratio == pytest.approx(1.0) for c in relative)
    assert not any(c.a.backend == "numpy_vectorized" for c in relative)


def test_expected_by_chance_is_five_percent_of_the_cells() -> None:
    assert expected_by_chance(200) == pytest.approx(10.0)


def write_slower_copy(tmp_path: Path, backend: str, factor: float | list[float]) -> Path:
    """A copy of the fixture run with `backend`'s rounds `factor` times as long (a list: one
    factor per pass)."""
    copy = tmp_path / RUN.name
    shutil.copytree(RUN, copy)
    for path in copy.glob(f"{backend}-*.json"):
        cell = json.loads(path.read_text())
        for k, p in enumerate(cell.get("passes", [])):
            f = factor[k] if isinstance(factor, list) else factor
            p["blocks"] = [[r * f for r in block] for block in p["blocks"]]
        path.write_text(json.dumps(cell))
    return copy


def test_cli_compare_prints_intervals_verdicts_and_fails_above_a_threshold(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    slow = write_slower_copy(tmp_path, "numba_loops", 3.0)
    assert main(["compare", str(RUN), str(slow)]) == 0
    output = capsys.readouterr().out
    assert "B/A [95 % interval]" in output
    line = next(x for x in output.splitlines() if x.startswith("numba_loops m=100 n=10 t=1"))
    assert " slower " in line
    assert "3.000 [" in line
    cells = sum(r.timed for r in RECORDS)
    assert f"{cells} cells compared: 0 faster, 6 slower, {cells - 6} the same" in output
    assert f"at most {expected_by_chance(cells):.1f} would be called a change by chance" in output
    assert main(["compare", str(RUN), str(slow), "--fail-above", "100"]) == 1
    assert "6 cell(s) slower by more than 100 % with their whole 95 % interval" in (
        capsys.readouterr().out
    )
    assert main(["compare", str(RUN), str(slow), "--fail-above", "250"]) == 0
    assert main(["compare", str(RUN), str(RUN), "--fail-above", "0"]) == 0


def test_cli_compare_labels_a_faster_run_faster(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    fast = write_slower_copy(tmp_path, "numba_loops", 0.5)
    assert main(["compare", str(RUN), str(fast), "--fail-above", "0"]) == 0
    output = capsys.readouterr().out
    line = next(x for x in output.splitlines() if x.startswith("numba_loops m=100 n=10 t=1"))
    assert " faster " in line
    assert " slower " not in line
    assert "0.500 [" in line
    assert "6 faster, 0 slower" in output
    assert "slower by more than" not in output


def test_cli_compare_fails_only_where_the_whole_interval_is_beyond_the_threshold(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Passes 1.9x, 2.1x and 2.4x as slow: about 2.1x, its interval from below 2."""
    slow = write_slower_copy(tmp_path, "numba_loops", [1.9, 2.1, 2.4])
    assert main(["compare", str(RUN), str(slow), "--json"]) == 0
    rows = [r for r in json.loads(capsys.readouterr().out) if r["verdict"] == "slower"]
    assert rows
    assert all(r["ratio"] > 2.0 and 1.1 < r["ci"][0] < 2.0 for r in rows)
    assert main(["compare", str(RUN), str(slow), "--fail-above", "100"]) == 0  # the median only
    assert main(["compare", str(RUN), str(slow), "--fail-above", "10"]) == 1
    assert "cell(s) slower by more than 10 % with their whole 95 % interval" in (
        capsys.readouterr().out
    )


def test_cli_compare_json_has_one_object_per_cell(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    slow = write_slower_copy(tmp_path, "numba_loops", 3.0)
    assert main(["compare", str(RUN), str(slow), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == sum(r.timed for r in RECORDS)
    assert set(rows[0]) == {"cell", "ratio", "ci", "verdict", "drift", "code_changed", "memory"}
    assert rows[0]["memory"] is None  # the fixture run was timed before memory was measured
    slowed = [row for row in rows if row["cell"].startswith("numba_loops")]
    assert all(row["verdict"] == "slower" and row["ci"][0] > 1 for row in slowed)
    assert {row["verdict"] for row in rows if row not in slowed} == {"same"}


@pytest.mark.parametrize("value", ["-1", "nan", "inf", "ten"])
def test_cli_compare_refuses_a_meaningless_threshold(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["compare", str(RUN), str(RUN), "--fail-above", value])
    assert stop.value.code == 2
    assert f"--fail-above: expected a finite percentage >= 0; got '{value}'" in (
        capsys.readouterr().err
    )


def test_cli_compare_reads_raw_json_and_refuses_what_is_not_a_run(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert main(["compare", str(RUN), str(RAW)]) == 0
    assert "numba_loops m=1 n=1 t=1" in capsys.readouterr().out
    assert main(["compare", str(RUN), str(tmp_path)]) == 2  # not a run: a clear error
    assert "neither a run folder" in capsys.readouterr().err


def test_a_training_cell_names_its_loop_where_it_is_the_compiled_one() -> None:
    python = next(r for r in RECORDS if isinstance(r, TrainingRecord) and r.timed)
    compiled = dataclasses.replace(python, loop="compiled")
    comparisons = compare_runs([python, compiled], [python, compiled])
    assert [c.cell.endswith(" compiled loop") for c in comparisons] == [False, True]


def with_call_peaks(record: AnyRecord, peaks: tuple[int, ...]) -> AnyRecord:
    return dataclasses.replace(record, peak_bytes_calls=peaks)


def test_memory_the_same_at_every_call_is_compared_exactly_without_an_interval() -> None:
    base = next(r for r in RECORDS if r.timed and r.backend == "numpy_vectorized")
    (half,) = compare_runs([with_call_peaks(base, (80_000, 80_000))],
                           [with_call_peaks(base, (40_000, 40_000))])  # fmt: skip
    assert half.memory is not None
    assert half.memory.exact
    assert half.memory.words == "0.500 exact"
    assert half.memory.verdict == "less"
    assert half.as_json()["memory"] == {
        "a_bytes": [80_000, 80_000], "b_bytes": [40_000, 40_000], "ratio": pytest.approx(0.5),
        "exact": True, "ci": None, "verdict": "less",
    }  # fmt: skip
    (same,) = compare_runs([with_call_peaks(base, (80_000, 80_000))],
                           [with_call_peaks(base, (80_000, 80_000))])  # fmt: skip
    assert same.memory is not None
    assert (same.memory.words, same.memory.verdict) == ("1.000 exact", "same")
    (small,) = compare_runs([with_call_peaks(base, (1448, 1416))],
                            [with_call_peaks(base, (1448, 40))])  # fmt: skip
    assert small.memory is not None
    assert small.memory.exact  # under a page, a peak counts as a page: a few bytes say nothing


def test_memory_that_varies_between_calls_gets_welchs_interval_as_time_does() -> None:
    base = next(r for r in RECORDS if r.timed and r.backend == "numpy_vectorized")
    a, b = (1_000_000, 1_100_000, 1_050_000), (2_000_000, 2_300_000, 2_100_000)
    (more,) = compare_runs([with_call_peaks(base, a)], [with_call_peaks(base, b)])
    assert more.memory is not None
    assert not more.memory.exact
    expected = scipy_stats.ttest_ind(np.log(b), np.log(a), equal_var=False)
    low, high = expected.confidence_interval(0.95)
    assert (more.memory.change.low, more.memory.change.high) == pytest.approx(
        (np.exp(low), np.exp(high))
    )
    assert more.memory.verdict == "more"
    # one call a side: nothing repeated, nothing known of the spread, never called a change
    (once,) = compare_runs([with_call_peaks(base, (1000,))], [with_call_peaks(base, (9000,))])
    assert once.memory is not None
    assert (once.memory.exact, once.memory.verdict) == (False, "same")


def test_cells_without_memory_on_a_side_compare_time_alone() -> None:
    base = next(r for r in RECORDS if r.timed and r.backend == "numpy_vectorized")
    (older,) = compare_runs([base], [with_call_peaks(base, (40_000, 40_000))])
    assert older.memory is None
    assert older.as_json()["memory"] is None
