"""A machine that drifts: the canaries' verdicts, and the comparisons that survive it."""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from loopvec.cli import main
from loopvec.compare import DRIFTED, compare_runs, regressions
from loopvec.drift import MEMORY_BOUND_BYTES, WORKLOADS, CanaryMoment, canary_drift, workloads_of
from loopvec.results import AGAINST_FILE, CANARY_FOLDER, Record, load_results, read_canaries
from loopvec.runner.versions import abba

RUN = next((Path(__file__).parent / "fixtures" / "results").iterdir())
RECORDS = load_results([RUN]).records
BAND = 0.02
#: The canary's noise, as measured here: rounds within 0.5 % (interpreter, compute) and 1.5 %.
NOISE = {"interpreter": 0.005, "compute": 0.005, "memory": 0.015}
TYPICAL_S = {"interpreter": 2.2e-3, "compute": 1.7e-3, "memory": 6.5e-3}


def canaries(
    run: str, speed: dict[str, list[float]] | None = None, passes: int = 3, seed: int = 0
) -> list[CanaryMoment]:
    """A run's moments (start, end of each pass): typical times x speed[workload][moment], with
    the rounds' noise."""
    rng = np.random.default_rng(seed)
    moments = []
    for k in range(passes):
        for j, moment in enumerate(("start", "end")):
            seconds = {
                w: list(
                    TYPICAL_S[w]
                    * (speed or {}).get(w, [1.0] * 2 * passes)[2 * k + j]
                    * np.exp(rng.normal(0, NOISE[w], 7))
                )
                for w in WORKLOADS
            }
            moments.append(CanaryMoment(run, k + 1, 1000 + k, moment, seconds))
    return moments


def test_a_steady_machine_has_not_moved() -> None:
    drifts = canary_drift(canaries("a", seed=1), canaries("b", seed=2), BAND)
    assert not any(d.moved for d in drifts.values())
    assert all(0.98 < d.between.value < 1.02 for d in drifts.values() if d.between)


def test_a_machine_slower_for_one_whole_run_moved_between_the_runs() -> None:
    """The issue's host: the small cells 2x slower in all passes of one run, the large not."""
    slow = {"interpreter": [2.0] * 6, "compute": [1.8] * 6}
    drifts = canary_drift(canaries("a", slow), canaries("b", seed=3), BAND)
    assert drifts["interpreter"].moved_between
    assert drifts["interpreter"].between.value == pytest.approx(0.5, rel=0.02)
    assert drifts["compute"].moved_between
    assert not drifts["memory"].moved
    assert drifts["interpreter"].describe().startswith("interpreter -50")


def test_one_pass_slower_than_the_others_moved_within_its_run() -> None:
    drifts = canary_drift(canaries("a", {"memory": [1, 1, 1.15, 1.15, 1, 1]}), canaries("b"), BAND)
    assert drifts["memory"].moved_within == ["A"]
    assert 1.12 < drifts["memory"].within_a < 1.18
    assert "; moved within A (1" in drifts["memory"].describe()
    single = {"memory": [1, 1, 1.06, 1, 1, 1]}  # one slow instant, halved in its pass's level
    assert (
        canary_drift(canaries("a", single, seed=4), canaries("b"), BAND)["memory"].moved_within
        == []
    )


def test_which_workloads_a_cell_follows() -> None:
    assert workloads_of("loops", 10**6, 100) == ("interpreter",)
    assert workloads_of("jit", 10, 10) == ("interpreter", "compute")
    assert workloads_of("vectorized", 10**6, 100) == ("compute", "memory")
    assert workloads_of(None, MEMORY_BOUND_BYTES // 8, 1) == ("compute", "memory")  # a plug-in
    assert workloads_of("jit", MEMORY_BOUND_BYTES // 8, 1, "float32") == ("interpreter", "compute")


def scaled(record: Record, factors: list[float]) -> Record:
    """`record` with pass k's rounds times factors[k] (as many passes as factors)."""
    base = record.samples[0]
    samples = tuple(tuple(tuple(r * f for r in block) for block in base) for f in factors)
    return dataclasses.replace(record, samples=samples, passes=tuple(range(1, len(factors) + 1)))


def test_a_drifted_machine_is_not_a_change_and_a_true_slowdown_still_is() -> None:
    small = next(r for r in RECORDS if r.timed and r.backend == "numpy_vectorized" and r.m == 1)
    large = dataclasses.replace(small, m=10**6, n=100)  # the same samples, as a memory-bound cell
    a = [scaled(small, [2.0, 2.1, 1.9]), scaled(large, [1.0, 1.01, 0.99])]
    b = [scaled(small, [1.0, 1.01, 0.99]), scaled(large, [1.10, 1.11, 1.09])]  # a true 10 %
    drifts = canary_drift(canaries("a", {"interpreter": [2.0] * 6}), canaries("b"), BAND)
    without, with_canary = compare_runs(a, b), compare_runs(a, b, drifts=drifts)
    assert [c.verdict for c in without] == ["faster", "slower"]  # what a drifting host made of it
    assert [c.verdict for c in with_canary] == [DRIFTED, "slower"]
    assert with_canary[0].drift == ("interpreter",)
    assert with_canary[0].as_json()["verdict"] == DRIFTED
    # A tie stays a tie: only a change the machine can explain is withheld
    (tie,) = compare_runs(a[:1], a[:1], drifts=drifts)
    assert tie.verdict == "same"
    # a gate cannot vouch for a drifted cell: --fail-above counts it where it is slower
    slow_small = compare_runs(b[:1], a[:1], drifts=drifts)
    assert [c.verdict for c in slow_small] == [DRIFTED]
    assert regressions(slow_small, percent=50) == slow_small
    assert regressions(slow_small, percent=150) == []


def test_a_change_beyond_the_machines_movement_is_still_called() -> None:
    small = next(r for r in RECORDS if r.timed and r.backend == "numpy_vectorized" and r.m == 1)
    a = [scaled(small, [1.0, 1.01, 0.99])] * 2
    b = [scaled(small, [2.0, 2.02, 1.98]), scaled(small, [1.05, 1.06, 1.04])]
    drifts = canary_drift(canaries("a"), canaries("b", {"interpreter": [1.06] * 6}), BAND)
    assert drifts["interpreter"].moved_between
    assert 0.05 < drifts["interpreter"].reach < 0.08  # the far end of B/A, about 1.06
    twice, five_percent = (
        compare_runs(a[:1], b[:1], drifts=drifts),
        compare_runs(a[1:], b[1:], drifts=drifts),
    )
    assert [c.verdict for c in twice] == ["slower"]  # far beyond what the machine moved
    assert [c.verdict for c in five_percent] == [DRIFTED]  # as much as the machine moved
    assert five_percent[0].drift == ("interpreter",)


def test_abba_alternates_which_version_runs_first() -> None:
    assert abba(4) == [(0, 1), (1, 1), (1, 2), (0, 2), (0, 3), (1, 3), (1, 4), (0, 4)]
    for passes in range(1, 9):
        order = abba(passes)
        assert sorted(order) == [(v, k) for v in (0, 1) for k in range(1, passes + 1)]
        # each pass k of one version is next to pass k of the other
        assert all(order[2 * j][1] == order[2 * j + 1][1] for j in range(passes))


@settings(max_examples=50, deadline=None)
@given(
    drift=st.lists(st.floats(0.3, 3.0), min_size=2, max_size=8),
    change=st.floats(0.5, 2.0),
)
def test_interleaved_pairs_cancel_any_drift_that_hits_both_of_a_pair(
    drift: list[float], change: float
) -> None:
    """Whatever the machine's speed in each pair of neighbouring passes, B/A of the pairs is the
    true change with a zero-width interval."""
    assume(abs(abs(math.log(change)) - math.log1p(BAND)) > 1e-9)  # not on the band's edge
    base = next(r for r in RECORDS if r.timed and r.backend == "numba_loops")
    a, b = scaled(base, drift), scaled(base, [change * f for f in drift])
    (paired,) = compare_runs([a], [b], interleaved=True)
    assert paired.ratio == pytest.approx(change, rel=1e-9)
    assert paired.change.high / paired.change.low == pytest.approx(1.0, abs=1e-9)
    expected = "same" if 1 / 1.02 <= change <= 1.02 else ("slower" if change > 1 else "faster")
    assert paired.verdict == expected


def test_interleaved_compare_uses_the_passes_both_versions_have() -> None:
    base = next(r for r in RECORDS if r.timed and r.backend == "numba_loops")
    a = scaled(base, [1.0, 1.5, 0.8])
    b = dataclasses.replace(scaled(base, [1.1, 1.65, 0.88, 5.0]), passes=(1, 2, 3, 4))
    (c,) = compare_runs([a], [b], interleaved=True)
    assert c.ratio == pytest.approx(1.1)  # pass 4 of B has no partner: left out
    (welch,) = compare_runs([a], [b])
    assert welch.verdict == "same"  # the drift between passes hides the change from Welch


def write_canary(run: Path, moments: list[CanaryMoment]) -> None:
    folder = run / CANARY_FOLDER
    folder.mkdir(exist_ok=True)
    for k in sorted({m.pass_number for m in moments}):
        mine = [m for m in moments if m.pass_number == k]
        record = {
            "pass": k,
            "pid": mine[0].pid,
            "canary": {m.moment: {w: list(s) for w, s in m.seconds.items()} for m in mine},
        }
        (folder / f"pass-{k}-{mine[0].pid}.json").write_text(json.dumps(record))


def test_cli_compare_says_in_one_line_whether_the_machine_drifted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = tmp_path / "a" / RUN.name, tmp_path / "b" / RUN.name
    shutil.copytree(RUN, a)
    shutil.copytree(RUN, b)
    assert main(["compare", str(a), str(b)]) == 0
    assert "canary: a run has none (timed by an older loopvec)" in capsys.readouterr().out
    write_canary(a, canaries("a", {"interpreter": [1.5] * 6}))
    write_canary(b, canaries("b", seed=5))
    assert len(read_canaries(a)[0]) == 6
    resumed = {"pass": 3, "pid": 7, "cells_timed": 0, "canary": {"start": {"memory": [1.0]}}}
    (a / CANARY_FOLDER / "pass-3-7.json").write_text(json.dumps(resumed))
    assert len(read_canaries(a)[0]) == 6  # a pass that timed nothing ran at no moment of the run
    assert main(["compare", str(a), str(b)]) == 0
    lines = [x for x in capsys.readouterr().out.splitlines() if x.startswith("canary:")]
    assert len(lines) == 1
    assert lines[0].startswith("canary: the machine drifted (interpreter -33")
    write_canary(a, canaries("a", seed=6))
    assert main(["compare", str(a), str(b)]) == 0
    assert "canary: the machine kept its speed (interpreter " in capsys.readouterr().out
    (a / CANARY_FOLDER / "pass-1-1000.json").write_text("{ truncated")
    assert main(["compare", str(a), str(b)]) == 0
    assert "pass-1-1000.json skipped: it cannot be read" in capsys.readouterr().err


def test_with_one_pair_two_versions_cannot_be_called_changed() -> None:
    base = next(r for r in RECORDS if r.timed and r.backend == "numba_loops")
    (c,) = compare_runs([scaled(base, [1.0])], [scaled(base, [2.0])], interleaved=True)
    assert c.ratio == pytest.approx(2.0)
    assert (c.change.low, c.change.high) == (0.0, math.inf)  # one pair: no spread to judge by
    assert c.verdict == "same"


def test_compare_of_one_folder_needs_a_run_of_two_versions(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["compare", str(RUN)]) == 2
    assert "is not a run of two versions" in capsys.readouterr().err
    run = tmp_path / "two-versions"
    for side in ("A", "B"):
        shutil.copytree(RUN, run / side / RUN.name)
    versions = [{"folder": "A", "label": "HEAD (0123abcd)"}, {"folder": "B", "label": "mine"}]
    (run / AGAINST_FILE).write_text(json.dumps({"versions": versions}))
    assert main(["compare", str(run)]) == 0
    out = capsys.readouterr().out
    assert "two versions, their passes alternating (ABBA); B/A pairs pass k of each: " in out
    assert "A = HEAD (0123abcd); B = mine" in out
    assert "canary:" not in out  # the pairs need none
    assert main(["compare", str(run), str(RUN)]) == 2
    assert "is a run of two versions: compare it alone" in capsys.readouterr().err
    assert main(["compare", str(run), "--relative-to", "numpy_vectorized"]) == 2
    assert "the versions of one run share one" in capsys.readouterr().err


def test_the_canary_is_finite_and_positive() -> None:
    from loopvec.runner.canary import measure  # noqa: PLC0415 (allocates 128 MiB)

    seconds = measure(rounds=2)
    assert set(seconds) == set(WORKLOADS)
    assert all(len(v) == 2 and all(math.isfinite(s) and s > 0 for s in v) for v in seconds.values())
    # each round does its whole workload: far above the timer's resolution (microseconds)
    assert all(min(v) > 1e-4 for v in seconds.values())
