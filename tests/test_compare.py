"""Comparing runs: a ratio per cell, a change only beyond both runs' spread, an exit status."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from loopvec.cli import main
from loopvec.compare import compare_runs, regressions
from loopvec.results import Record, load_results

RUN = next((Path(__file__).parent / "fixtures" / "results").iterdir())
RAW = next((RUN / "raw").iterdir())


def slower(record: Record, factor: float) -> Record:
    scale = {
        k: getattr(record, k) * factor
        for k in ("median_s", "q1_s", "q3_s", "min_s")
        if getattr(record, k) is not None
    }
    return dataclasses.replace(record, **scale)


def test_a_run_against_itself_has_no_change() -> None:
    records = list(load_results([RUN]).records)
    comparisons = compare_runs(records, records)
    assert len(comparisons) == 26  # the timed cells
    assert all(c.ratio == 1.0 and not c.changed for c in comparisons)


def test_a_slowdown_beyond_the_spread_is_a_change_noise_is_not() -> None:
    base = next(r for r in load_results([RUN]).records if r.timed)
    twice = compare_runs([base], [slower(base, 2.0)])[0]
    assert twice.ratio == 2.0
    assert twice.changed
    assert regressions([twice], percent=50) == [twice]
    assert regressions([twice], percent=150) == []
    wide = dataclasses.replace(slower(base, 1.01), q1_s=base.median_s * 0.5, q3_s=base.median_s * 2)
    assert not compare_runs([base], [wide])[0].changed


def test_cli_compare_prints_ratios_and_fails_above_a_threshold(capsys, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert main(["compare", str(RUN), str(RAW)]) == 0
    output = capsys.readouterr().out
    assert "B/A" in output
    assert "numba_loops m=1 n=1 t=1" in output
    assert main(["compare", str(RUN), str(RAW), "--fail-above", "5"]) == 0  # same medians
    assert main(["compare", str(RUN), str(tmp_path)]) == 2  # not a run: a clear error
    assert "neither a run folder" in capsys.readouterr().err
