"""One call timed by hand: the first call of a kernel (compile included) and its warm-up."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def time_one_call(function: Callable[..., Any], args: tuple[Any, ...] = ()) -> tuple[Any, float]:
    """Call `function` once: (result, seconds)."""
    start = time.perf_counter()
    result = function(*args)
    return result, time.perf_counter() - start
