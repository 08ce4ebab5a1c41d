"""One call timed by hand (the first call of a kernel, compile included, and its warm-up), and
the wait for the thread pools of the call before to fall asleep."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import psutil

#: How often `wait_until_quiet` looks: the kernel counts threads' CPU time in ticks of 10 ms.
QUIET_POLL_S = 0.01


def time_one_call(function: Callable[..., Any], args: tuple[Any, ...] = ()) -> tuple[Any, float]:
    """Call `function` once: (result, seconds)."""
    start = time.perf_counter()
    result = function(*args)
    return result, time.perf_counter() - start


def wait_until_quiet(max_s: float, poll_s: float = QUIET_POLL_S) -> float:
    """Sleep until no thread of this process but the caller's used CPU for poll_s (thread pools
    spin after a call: OpenBLAS's for about 100 ms here, OpenMP's for 10), at most max_s.
    Returns the seconds waited."""
    me, caller = psutil.Process(), threading.get_native_id()

    def others_cpu_s() -> float:
        return float(sum(t.user_time + t.system_time for t in me.threads() if t.id != caller))

    start = time.perf_counter()
    before = others_cpu_s()
    while (waited_s := time.perf_counter() - start) < max_s:
        time.sleep(poll_s)
        now = others_cpu_s()
        if now == before:
            break
        before = now
    return waited_s
