"""Compare two runs cell by cell: B/A with its 95 % interval, and a verdict.

Each run's passes are separate processes, so the spread between them is what a rerun shows; B/A
is Welch's t over the passes' log times of both runs (`stats.between_runs`). A cell is called
faster or slower only when the whole interval lies beyond the tie band: were nothing changed, at
most 5 % of the cells compared would be called a change by chance (fewer, thanks to the band).

Runs of different machines are compared fairly by their speedups within each run against one
backend (`relative_to`): (B's time / B's reference) / (A's time / A's reference).

Two separate runs share no moment: a machine that was slower for the minutes of one run moves
every cell of it. Each pass's canary (`loopvec.drift`) shows that: where the workload a cell's
time follows moved, between the runs or within one, by as much as the cell's change, the cell is
not called faster or slower but "machine drifted"; a change beyond the movement is still called.
Two versions timed in one run whose passes alternate (ABBA, `interleaved`) need no canary: pass
k of A and pass k of B ran next to each other, and B/A is Student's t over those pairs' log
ratios, so a slow few minutes hit both sides of a pair alike.

Memory is compared beside time (`MemoryChange`): a call's peak bytes, over the calls that measured
it. Most backends allocate the same bytes at every call, and then B/A is exact and said so.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from loopvec.backends import BACKENDS
from loopvec.drift import Drift, affected, explains, workloads_of
from loopvec.memory import PAGE_BYTES
from loopvec.results import AnyRecord, TrainingRecord, shared_passes
from loopvec.stats import (
    CONFIDENCE,
    DEFAULT_TIE_BAND,
    Estimate,
    between_runs,
    difference_between_runs,
    pass_log_ratios,
    ratio_estimate,
    verdict,
)

#: The verdict of a cell that would be called a change, but whose machine moved (`loopvec.drift`).
DRIFTED = "machine drifted"
#: `stats.verdict` of a ratio of bytes, in words of memory.
_MEMORY_WORDS = {"slower": "more", "faster": "less", "same": "same"}


@dataclass(frozen=True)
class MemoryChange:
    """Peak bytes of one call (workers' included) in B against A, over the calls each run
    measured (`loopvec.memory`: 2 or 3). Where every call of both runs gave the same bytes (a peak
    under a page counting as a page), B/A is exact and said so, not drawn as an interval; else
    Welch's t over the calls' log bytes, as time's over passes. verdict: less | more | same
    (within the tie band, or its interval)."""

    a_bytes: tuple[int, ...]
    b_bytes: tuple[int, ...]
    change: Estimate
    verdict: str

    @property
    def exact(self) -> bool:
        """Repeated in both runs: the same bytes at every call (a peak under a page counting as
        a page)."""
        return all(
            len(v) > 1 and len({max(b, PAGE_BYTES) for b in v}) == 1
            for v in (self.a_bytes, self.b_bytes)
        )

    @property
    def words(self) -> str:
        """'0.500 exact' or '1.012 [0.981, 1.044]'."""
        c = self.change
        if self.exact:
            return f"{c.value:.3f} exact"
        return f"{c.value:.3f} [{c.low:.3f}, {c.high:.3f}]"

    def as_json(self) -> dict[str, object]:
        c = self.change
        interval = None if self.exact else [x if math.isfinite(x) and x > 0 else None
                                            for x in (c.low, c.high)]  # fmt: skip
        return {"a_bytes": list(self.a_bytes), "b_bytes": list(self.b_bytes),
                "ratio": c.value, "exact": self.exact, "ci": interval,
                "verdict": self.verdict}  # fmt: skip


def memory_change(
    a: AnyRecord, b: AnyRecord, tie_band: float = DEFAULT_TIE_BAND
) -> MemoryChange | None:
    """B's peak bytes per call against A's, for gradient cells measured in both; else None."""
    if isinstance(a, TrainingRecord) or isinstance(b, TrainingRecord):
        return None
    a_bytes, b_bytes = a.peak_bytes_calls, b.peak_bytes_calls
    if not (a_bytes and b_bytes):
        return None
    logs = [[math.log(max(v, PAGE_BYTES)) for v in side] for side in (a_bytes, b_bytes)]
    change = difference_between_runs(*logs)
    return MemoryChange(a_bytes, b_bytes, change, _MEMORY_WORDS[verdict(change, tie_band)])


@dataclass(frozen=True)
class Comparison:
    """One cell timed in both runs: change = time B / time A (above 1: B is slower), or the
    same of their speedups against a reference backend; verdict faster | slower | same, or
    DRIFTED where it would be a change but the machine moved (`drift` names how)."""

    a: AnyRecord
    b: AnyRecord
    change: Estimate
    verdict: str
    drift: tuple[str, ...] = ()  #: the canary workloads this cell follows that moved
    memory: MemoryChange | None = None  #: peak bytes per call, where both runs measured them

    @property
    def cell(self) -> str:
        """What was compared, in words."""
        r = self.a
        if isinstance(r, TrainingRecord):
            loop = "" if r.loop == "python" else f" {r.loop} loop"
            return (
                f"train {r.dataset} {r.backend} m={r.m} n={r.n} t={r.threads} i={r.iterations}"
                + loop
            )
        layout = " F-order" if r.layout == "F" else ""  # the course's C order unsaid
        return f"{r.backend} m={r.m} n={r.n} t={r.threads} {r.dtype}{layout}"

    @property
    def ratio(self) -> float:
        return self.change.value

    @property
    def interval(self) -> str:
        """'1.012 [0.981, 1.044]': B/A with its 95 % interval."""
        return f"{self.ratio:.3f} [{self.change.low:.3f}, {self.change.high:.3f}]"

    @property
    def code_changed(self) -> bool:
        """Whether B timed other code than A (its backend's code fingerprint differs)."""
        return self.a.code_fingerprint != self.b.code_fingerprint

    def as_json(self) -> dict[str, object]:
        c = self.change
        return {
            "cell": self.cell,
            "ratio": self.change.value,
            # null: one pass on a side, the spread between processes unknown
            "ci": [x if math.isfinite(x) and x > 0 else None for x in (c.low, c.high)],
            "verdict": self.verdict,
            "drift": list(self.drift),
            "code_changed": self.code_changed,
            "memory": self.memory.as_json() if self.memory else None,
        }


def _key(record: AnyRecord) -> tuple[type, tuple[object, ...]]:
    return (type(record), record.cell)


def _reference_of(record: AnyRecord, backend: str) -> tuple[type, tuple[object, ...]]:
    """The key of `backend`'s record timed beside `record` (same problem and threads)."""
    return _key(replace(record, backend=backend))


def _relative_logs(record: AnyRecord, reference: AnyRecord) -> list[float]:
    mine, theirs, paired = shared_passes(record, reference)
    return pass_log_ratios(mine, theirs, paired=paired)


def compare_runs(
    a: Sequence[AnyRecord],
    b: Sequence[AnyRecord],
    *,
    tie_band: float = DEFAULT_TIE_BAND,
    relative_to: str | None = None,
    drifts: Mapping[str, Drift] | None = None,
    interleaved: bool = False,
) -> list[Comparison]:
    """The cells (gradient or training) timed in both runs, whatever their hosts, in A's order;
    with `relative_to`, those timed beside that backend in both (that backend's own left out).
    `drifts`: the canaries' verdicts (`drift.canary_drift`); `interleaved`: A and B are two
    versions of one ABBA run, pass k of each timed next to the other's."""
    timed_a = {_key(r): r for r in a if r.timed}
    timed_b = {_key(r): r for r in b if r.timed}
    comparisons = []
    for key, record_a in timed_a.items():
        record_b = timed_b.get(key)
        if record_b is None:
            continue
        if interleaved:
            mine, theirs, _ = shared_passes(record_b, record_a)
            if not mine:
                continue
            change = ratio_estimate(mine, theirs, paired=False)  # per pair of neighbours
            if len(mine) < 2:  # one pair: the spread between processes is unknown
                change = Estimate(change.value, 0.0, math.inf)
        elif relative_to is None:
            change = between_runs(record_a.samples, record_b.samples)
        else:
            ref_a = timed_a.get(_reference_of(record_a, relative_to))
            ref_b = timed_b.get(_reference_of(record_b, relative_to))
            if record_a.backend == relative_to or ref_a is None or ref_b is None:
                continue
            logs_a, logs_b = _relative_logs(record_a, ref_a), _relative_logs(record_b, ref_b)
            change = difference_between_runs(logs_a, logs_b)
        called = verdict(change, tie_band)
        moved = _moved(record_a, drifts or {})
        if called != "same" and explains(change, moved):
            called = DRIFTED
        workloads = tuple(d.workload for d in moved)
        memory = memory_change(record_a, record_b, tie_band)
        comparisons.append(Comparison(record_a, record_b, change, called, workloads, memory))
    return comparisons


def _moved(record: AnyRecord, drifts: Mapping[str, Drift]) -> list[Drift]:
    """The workloads `record`'s time follows (`drift.workloads_of`) where the machine moved."""
    backend = BACKENDS.get(record.backend)
    family = backend.family if backend else None
    workloads = workloads_of(family, record.m, record.n, getattr(record, "dtype", "float64"))
    return affected(workloads, drifts)


def expected_by_chance(cells: int) -> float:
    """The most changes that a comparison of `cells` unchanged cells calls by chance."""
    return (1 - CONFIDENCE) * cells


def regressions(comparisons: list[Comparison], percent: float) -> list[Comparison]:
    """Cells whose whole interval lies more than `percent` % above 1: called slower, or not
    called because the machine drifted (a gate cannot vouch for those: time them again)."""
    return [
        c
        for c in comparisons
        if c.verdict in ("slower", DRIFTED) and c.change.low > 1 + percent / 100
    ]
