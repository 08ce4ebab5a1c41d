"""Timings in, estimates with 95 % intervals and verdicts out. Pure: no I/O, no plotting.

A cell's samples have two levels (docs/method.md states the protocol):

    samples[pass][block][round] = seconds per call

A *pass* is a separate process that visits the whole grid; within a pass the backends of one
problem are timed side by side in interleaved *blocks* of rounds. Passes are the independent
units: each gives one estimate (the median of its rounds; for a ratio of two backends of one
problem, the median over blocks of the paired block log-ratios, so slow drift within a pass hits
both alike), and the interval is Student's t over the passes' log estimates. So the interval holds
the spread between processes (memory layout, frequency, what else ran), which rounds within one
process cannot show, and it is honest with few passes, where a percentile bootstrap over five
units is too narrow. Times and ratios are lognormal-ish: everything is done on log scale.

A single pass has no between-process spread to measure: its interval is a bootstrap over blocks
(or rounds) with scipy, seeded from the cell, and `instability` says so.

A ratio is called a win only when its interval lies wholly beyond the tie band (default 2 %):
otherwise the two are a tie.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np

#: samples[pass][block][round], seconds per call.
Samples = Sequence[Sequence[Sequence[float]]]

CONFIDENCE = 0.95
#: Ratios within this band of 1 (either way) are a tie, whatever their interval.
DEFAULT_TIE_BAND = 0.02
#: Rounds whose coefficient of variation within a pass exceeds this make a cell unstable. It is
#: the robust CV (IQR / 1.349 / median, the standard deviation's estimate for normal noise), so
#: that one interrupted round does not flag a cell whose other rounds agree.
UNSTABLE_CV = 0.10
#: A first round this many times a pass's median means the warm-up did not warm enough.
SLOW_FIRST_ROUND = 1.5
#: Passes disagree when the spread of their medians is above this share of the time and above the
#: spread of the rounds within a pass: the process a cell ran in mattered more than the noise.
PASS_SPREAD_FLOOR = 0.05
BOOTSTRAP_RESAMPLES = 2000


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its 95 % interval [low, high] (seconds, or a ratio)."""

    value: float
    low: float
    high: float

    @property
    def half_width(self) -> float:
        """Half the interval's width relative to the value, e.g. 0.03 for +-3 %."""
        return (self.high - self.low) / 2 / self.value if self.value else math.inf

    def inverse(self) -> Estimate:
        return Estimate(1 / self.value, 1 / self.high, 1 / self.low)

    def scaled(self, factor: float) -> Estimate:
        return Estimate(self.value * factor, self.low * factor, self.high * factor)


def seed_of(*parts: object) -> int:
    """A stable seed from a cell's identity (never Python's salted hash)."""
    text = "\x1f".join(map(str, parts)).encode("utf-8")
    return int.from_bytes(hashlib.sha256(text).digest()[:8], "little")


def _log_t_interval(values: Sequence[float]) -> tuple[float, float, float]:
    """Mean of log values and its t interval; the interval is the point where all are equal."""
    logs = np.asarray(values, dtype=np.float64)
    mean = float(logs.mean())
    margin = _t(logs.size - 1) * float(logs.std(ddof=1)) / math.sqrt(logs.size)
    return mean, mean - margin, mean + margin


@cache
def _t(degrees_of_freedom: float) -> float:
    """The two-sided CONFIDENCE quantile of Student's t."""
    return float(_scipy_stats().t.ppf((1 + CONFIDENCE) / 2, degrees_of_freedom))


def _bootstrap(values: Sequence[float], seed: int) -> tuple[float, float, float]:
    """Median of log values with a percentile bootstrap interval (one pass only)."""
    logs = np.asarray(values, dtype=np.float64)
    middle = float(np.median(logs))
    if logs.size < 2 or np.all(logs == logs[0]):
        return middle, middle, middle
    result = _scipy_stats().bootstrap(
        (logs,),
        np.median,
        confidence_level=CONFIDENCE,
        n_resamples=BOOTSTRAP_RESAMPLES,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    return middle, float(result.confidence_interval.low), float(result.confidence_interval.high)


def _estimate(per_pass: Sequence[float], single: Sequence[float], seed: int) -> Estimate:
    """From log estimates per pass (two or more) or, for one pass, its log samples."""
    if len(per_pass) >= 2:
        mean, low, high = _log_t_interval(per_pass)
    else:
        mean, low, high = _bootstrap(single, seed)
    return Estimate(math.exp(mean), math.exp(low), math.exp(high))


def _rounds(samples_of_pass: Sequence[Sequence[float]]) -> np.ndarray:
    return np.asarray([r for block in samples_of_pass for r in block], dtype=np.float64)


def pass_log_medians(samples: Samples) -> list[float]:
    """log(median of every round of the pass), per pass."""
    return [float(np.log(np.median(_rounds(p)))) for p in samples]


def time_estimate(samples: Samples, seed: int = 0) -> Estimate:
    """The typical time per call: the geometric mean of the passes' medians, with its interval."""
    single = list(np.log(_rounds(samples[0]))) if len(samples) == 1 else []
    return _estimate(pass_log_medians(samples), single, seed)


def _block_log_ratios(a: Sequence[Sequence[float]], b: Sequence[Sequence[float]]) -> list[float]:
    """log(median a / median b) per block of one pass (blocks interleaved: paired)."""
    return [float(np.log(np.median(x) / np.median(y))) for x, y in zip(a, b, strict=False)]


def pass_log_ratios(a: Samples, b: Samples, *, paired: bool) -> list[float]:
    """log(time(a) / time(b)) per pass, passes matched by position (pass k of each ran in one
    process). paired: a and b were timed in the same interleaved blocks (one problem, one thread
    count), so each pass's value is the median of its block log-ratios; otherwise the difference
    of the two passes' log medians."""
    passes = min(len(a), len(b))
    if paired:
        return [float(np.median(_block_log_ratios(a[k], b[k]))) for k in range(passes)]
    logs_a, logs_b = pass_log_medians(a[:passes]), pass_log_medians(b[:passes])
    return [x - y for x, y in zip(logs_a, logs_b, strict=True)]


def ratio_estimate(a: Samples, b: Samples, *, paired: bool, seed: int = 0) -> Estimate:
    """time(a) / time(b) with its interval, from the passes both have (`pass_log_ratios`)."""
    if min(len(a), len(b)) == 0:
        raise ValueError("ratio_estimate needs at least one pass of each")
    if min(len(a), len(b)) >= 2:
        return _estimate(pass_log_ratios(a, b, paired=paired), [], seed)
    blocks = _block_log_ratios(a[0], b[0]) if paired else []
    if len(blocks) >= 2:
        return _estimate([], blocks, seed)
    single = np.log(_rounds(a[0])) - float(np.log(np.median(_rounds(b[0]))))
    return _estimate([], list(single), seed)


def difference_estimate(a: Samples, b: Samples) -> Estimate:
    """time(a) - time(b) in seconds: per pass (pass k of each ran in one process) the difference
    of the medians, then their mean with Student's t interval, on linear scale (a difference may
    be zero or negative). With one pass the spread is unknown: the interval is (-inf, inf)."""
    passes = min(len(a), len(b))
    if passes == 0:
        raise ValueError("difference_estimate needs at least one pass of each")
    each = np.array([np.median(_rounds(a[k])) - np.median(_rounds(b[k])) for k in range(passes)])
    mean = float(each.mean())
    if passes < 2:
        return Estimate(mean, -math.inf, math.inf)
    margin = _t(passes - 1) * float(each.std(ddof=1)) / math.sqrt(passes)
    return Estimate(mean, mean - margin, mean + margin)


def between_runs(a: Samples, b: Samples) -> Estimate:
    """time(b) / time(a) for one cell in two runs (two sets of processes): Welch's t over the
    passes' log medians of each run (`difference_between_runs`)."""
    return difference_between_runs(pass_log_medians(a), pass_log_medians(b))


def difference_between_runs(a_logs: Sequence[float], b_logs: Sequence[float]) -> Estimate:
    """exp(mean b - mean a) of per-pass log values of two runs, with Welch's t interval; with
    one pass on either side the spread between processes is unknown: the interval is (0, inf),
    which no verdict can call a change."""
    x, y = np.asarray(b_logs, dtype=np.float64), np.asarray(a_logs, dtype=np.float64)
    difference = float(x.mean() - y.mean())
    if x.size < 2 or y.size < 2:
        return Estimate(math.exp(difference), 0.0, math.inf)
    vx, vy = float(x.var(ddof=1)) / x.size, float(y.var(ddof=1)) / y.size
    if vx + vy == 0.0:
        value = math.exp(difference)
        return Estimate(value, value, value)
    # Welch-Satterthwaite degrees of freedom, as scipy.stats.ttest_ind(equal_var=False) uses
    freedom = (vx + vy) ** 2 / (vx**2 / (x.size - 1) + vy**2 / (y.size - 1))
    margin = _t(freedom) * math.sqrt(vx + vy)
    return Estimate(
        math.exp(difference), math.exp(difference - margin), math.exp(difference + margin)
    )


def verdict(ratio: Estimate, tie_band: float = DEFAULT_TIE_BAND) -> str:
    """'slower' if the whole interval of a time ratio lies above 1 + tie_band, 'faster' if below
    1 / (1 + tie_band), else 'same' (a tie)."""
    if ratio.low > 1 + tie_band:
        return "slower"
    if ratio.high < 1 / (1 + tie_band):
        return "faster"
    return "same"


def robust_cv(values: np.ndarray) -> float:
    """IQR / 1.349 / median: the coefficient of variation, not moved by a few outliers."""
    return float(_scipy_stats().iqr(values, scale="normal") / np.median(values))


def _scipy_stats() -> Any:
    """scipy.stats, imported on first use: it takes a second to import, and every bench pass, CLI
    call and Dask worker imports this module, most of them to compute no interval."""
    from scipy import stats  # noqa: PLC0415

    return stats


def instability(samples: Samples) -> list[str]:
    """Why a cell's timing is not to be trusted as it stands; empty if nothing is wrong."""
    reasons = []
    rounds = [_rounds(p) for p in samples]
    cvs = [float(robust_cv(r)) for r in rounds if r.size >= 4]
    if cvs and max(cvs) > UNSTABLE_CV:
        reasons.append(f"rounds vary: CV {max(cvs):.0%} in a pass (over {UNSTABLE_CV:.0%})")
    for k, (p, r) in enumerate(zip(samples, rounds, strict=True), 1):
        first, middle = (p[0][0] if p and p[0] else 0.0), float(np.median(r))
        if r.size >= 3 and first > SLOW_FIRST_ROUND * middle:
            reasons.append(f"slow first round in pass {k}: {first / middle:.1f}x its median")
            break
    if len(samples) == 1:
        reasons.append("one pass: its interval cannot hold the spread between processes")
        return reasons
    between = float(np.std(pass_log_medians(samples), ddof=1))
    within = [float(np.std(np.log(r), ddof=1)) for r in rounds if r.size > 1]
    spread = float(np.median(within)) if within else 0.0
    if between > max(spread, PASS_SPREAD_FLOOR):
        reasons.append(
            f"passes disagree: their medians spread {between:.1%}, "
            f"rounds within a pass {spread:.1%}"
        )
    return reasons
