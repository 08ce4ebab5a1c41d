"""What both benchmarks take from a timing: one call timed by hand, pytest-benchmark's stats."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def time_one_call(function: Callable[..., Any], args: tuple[Any, ...] = ()) -> tuple[Any, float]:
    """Call `function` once: (result, seconds)."""
    start = time.perf_counter()
    result = function(*args)
    return result, time.perf_counter() - start


def timing_fields(benchmark: Any) -> dict[str, float | int]:
    """The statistics of a finished pytest-benchmark fixture, in seconds, for a cell file."""
    stats = benchmark.stats.stats
    return {
        "median_s": stats.median,
        "iqr_s": stats.iqr,
        "q1_s": stats.q1,
        "q3_s": stats.q3,
        "min_s": stats.min,
        "max_s": stats.max,
        "mean_s": stats.mean,
        "stddev_s": stats.stddev,
        "rounds": stats.rounds,
    }
