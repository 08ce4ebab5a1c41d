"""Intervals and verdicts on synthetic timings with known truths: drift, spikes, noisy passes.

No real timing is asserted here: the samples are drawn from a model of a benchmark run.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from loopvec.stats import (
    Estimate,
    between_runs,
    difference_estimate,
    instability,
    ratio_estimate,
    seed_of,
    time_estimate,
    verdict,
)

SEEDS = range(200)


def simulate(
    rng: np.random.Generator,
    times_s: tuple[float, ...],
    *,
    passes: int = 5,
    blocks: int = 3,
    rounds: int = 15,
    pass_sd: float = 0.03,  # each process: its own memory layout, frequency, neighbours
    shared_pass_sd: float = 0.05,  # machine state that hits every backend of a pass alike
    drift_sd: float = 0.02,  # slow drift within a pass: hits the backends of a block alike
    round_sd: float = 0.04,
    spike_rate: float = 0.03,  # an interrupt, a page fault: a round 2x to 5x slower
) -> list[list[list[list[float]]]]:
    """Samples [backend][pass][block][round] of backends timed side by side."""
    out: list[list[list[list[float]]]] = [[] for _ in times_s]
    for _ in range(passes):
        shared = rng.normal(0, shared_pass_sd)
        own = rng.normal(0, pass_sd, len(times_s))
        drift = rng.normal(0, drift_sd, blocks)
        for k, true_s in enumerate(times_s):
            level = true_s * math.exp(shared + own[k])
            pass_ = []
            for b in range(blocks):
                noise = np.exp(rng.normal(drift[b], round_sd, rounds))
                spikes = np.where(rng.random(rounds) < spike_rate, rng.uniform(2, 5, rounds), 1)
                pass_.append(list(level * noise * spikes))
            out[k].append(pass_)
    return out


@pytest.mark.parametrize(
    ("times_s", "paired"),
    [((1.3e-5, 1e-5), True), ((2e-3, 1e-3), False)],
    ids=["side by side", "apart"],
)
def test_ratio_intervals_cover_the_true_ratio_90_to_99_percent_of_the_time(
    times_s: tuple[float, float], paired: bool
) -> None:
    truth = times_s[0] / times_s[1]
    covered = 0
    for seed in SEEDS:
        slow, fast = simulate(np.random.default_rng(seed), times_s)
        estimate = ratio_estimate(slow, fast, paired=paired)
        covered += estimate.low <= truth <= estimate.high
    assert 0.90 <= covered / len(SEEDS) <= 0.99, covered


def test_equal_backends_are_a_tie_at_least_92_percent_of_the_time() -> None:
    ties = sum(
        verdict(ratio_estimate(*simulate(np.random.default_rng(seed), (1e-5, 1e-5)), paired=True))
        == "same"
        for seed in SEEDS
    )
    assert ties / len(SEEDS) >= 0.92, ties


def test_a_true_1_3x_is_called_decisively_at_least_95_percent_of_the_time() -> None:
    calls = [
        verdict(ratio_estimate(*simulate(np.random.default_rng(seed), (1.3e-5, 1e-5)), paired=True))
        for seed in SEEDS
    ]
    assert calls.count("slower") / len(SEEDS) >= 0.95
    assert "faster" not in calls


def test_the_same_cell_in_two_runs_is_called_the_same_at_least_92_percent_of_the_time() -> None:
    same = 0
    for seed in SEEDS:
        rng = np.random.default_rng(seed)
        (a,), (b,) = simulate(rng, (1e-4,)), simulate(rng, (1e-4,))
        same += verdict(between_runs(a, b)) == "same"
    assert same / len(SEEDS) >= 0.92, same


def test_a_run_twice_as_slow_is_slower() -> None:
    rng = np.random.default_rng(1)
    (a,), (b,) = simulate(rng, (1e-4,)), simulate(rng, (2e-4,))
    change = between_runs(a, b)
    assert verdict(change) == "slower"
    assert change.low < 2.0 < change.high


def test_time_intervals_cover_the_true_time_without_spikes() -> None:
    covered = 0
    for seed in SEEDS:
        (samples,) = simulate(np.random.default_rng(seed), (3e-6,), spike_rate=0.0)
        estimate = time_estimate(samples)
        covered += estimate.low <= 3e-6 <= estimate.high
    assert 0.90 <= covered / len(SEEDS) <= 0.99, covered


def test_interleaving_cancels_drift_that_hits_both_backends() -> None:
    """With a large drift shared within blocks, pairing by block keeps the ratio's interval
    narrow; comparing whole passes does not."""
    rng = np.random.default_rng(7)
    slow, fast = simulate(rng, (1.1e-5, 1e-5), drift_sd=0.3, shared_pass_sd=0.0, pass_sd=0.005)
    paired = ratio_estimate(slow, fast, paired=True)
    assert paired.half_width < 0.03
    assert paired.low <= 1.1 <= paired.high


def test_estimates_are_bit_identical_for_the_same_samples_and_seed() -> None:
    slow, fast = simulate(np.random.default_rng(3), (1.3e-5, 1e-5), passes=1)
    seed = seed_of("numba_fused", 1000, 100, 1, "float64", "C")
    first = ratio_estimate(slow, fast, paired=False, seed=seed), time_estimate(slow, seed=seed)
    again = ratio_estimate(slow, fast, paired=False, seed=seed), time_estimate(slow, seed=seed)
    assert first == again
    assert seed == seed_of("numba_fused", 1000, 100, 1, "float64", "C")  # not salted per process


def test_a_time_interval_is_students_t_over_the_passes_log_medians() -> None:
    """Derived independently with scipy: the t interval of the mean of log(median per pass)."""
    medians_s = [1.0e-3, 1.1e-3, 0.95e-3, 1.05e-3, 1.02e-3]
    samples = [[[m * 0.9, m, m * 1.3], [m, m * 1.01]] for m in medians_s]  # medians: m
    logs = np.log(medians_s)
    low, high = scipy_stats.t.interval(0.95, len(logs) - 1, logs.mean(), scipy_stats.sem(logs))
    estimate = time_estimate(samples)
    assert estimate.value == pytest.approx(math.exp(logs.mean()))
    assert estimate.low == pytest.approx(math.exp(low))
    assert estimate.high == pytest.approx(math.exp(high))


def test_a_paired_ratio_is_the_median_of_its_blocks_so_one_odd_block_does_not_move_it() -> None:
    a = [[[1.1, 1.1], [2.2, 2.2], [9.0, 9.0]]] * 3  # the third block disturbed: 3x, not 1.1x
    b = [[[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]]] * 3
    assert ratio_estimate(a, b, paired=True).value == pytest.approx(1.1)
    assert ratio_estimate(a, b, paired=False).value == pytest.approx(2.2 / 2.0)  # medians of all


def test_verdicts_respect_the_tie_band() -> None:
    assert verdict(Estimate(1.05, 1.03, 1.07)) == "slower"
    assert verdict(Estimate(1.02, 1.01, 1.03)) == "same"  # decisive, but inside the 2 % band
    assert verdict(Estimate(1.02, 1.01, 1.03), tie_band=0.005) == "slower"
    assert verdict(Estimate(0.9, 0.85, 0.95)) == "faster"
    assert verdict(Estimate(1.2, 0.9, 1.5)) == "same"  # wide: could be either


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"round_sd": 0.3}, "rounds vary: CV"),
        ({"pass_sd": 0.2}, "passes disagree"),
        ({"passes": 1}, "one pass"),
    ],
)
def test_unstable_cells_say_why(change: dict[str, float], reason: str) -> None:
    (samples,) = simulate(np.random.default_rng(0), (1e-4,), spike_rate=0.0, **change)  # type: ignore[arg-type]
    assert any(r.startswith(reason) for r in instability(samples)), instability(samples)


def test_a_slow_first_round_is_flagged_and_a_quiet_cell_is_not() -> None:
    quiet = {"spike_rate": 0.0, "round_sd": 0.01, "pass_sd": 0.01, "shared_pass_sd": 0.01}
    (samples,) = simulate(np.random.default_rng(0), (1e-4,), **quiet)  # type: ignore[arg-type]
    assert instability(samples) == []
    samples[2][0][0] *= 3
    samples[1][1][4] *= 10  # one interrupted round: not a reason by itself
    assert instability(samples) == ["slow first round in pass 3: 3.0x its median"]


def test_one_pass_whose_rounds_vary_makes_the_cell_unstable() -> None:
    quiet = {"spike_rate": 0.0, "round_sd": 0.01, "pass_sd": 0.01, "shared_pass_sd": 0.01}
    (samples,) = simulate(np.random.default_rng(1), (1e-4,), **quiet)  # type: ignore[arg-type]
    noise = np.random.default_rng(2).lognormal(0, 0.3, 45)
    samples[3] = [
        list(np.asarray(block) * noise[15 * b : 15 * b + 15]) for b, block in enumerate(samples[3])
    ]
    reasons = instability(samples)
    assert len(reasons) == 1
    assert reasons[0].startswith("rounds vary: CV")


def test_a_difference_of_times_is_the_mean_over_passes_with_a_t_interval() -> None:
    a, b = [[[3.0, 3.0]], [[5.0]]], [[[1.0]], [[2.0]]]  # per pass: 3 - 1, 5 - 2
    margin = 12.706204736 * (0.5**0.5) / 2**0.5  # t(1 dof) x std / sqrt(2)
    got = difference_estimate(a, b)
    assert (got.value, got.low, got.high) == pytest.approx((2.5, 2.5 - margin, 2.5 + margin))
    assert difference_estimate(a[:1], b[:1]) == Estimate(2.0, -math.inf, math.inf)  # one pass
