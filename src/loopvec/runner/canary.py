"""The canary: three small fixed workloads a pass times at its start and at its end, so that a
comparison of two separate runs can tell a machine that changed speed from code that did.

Each workload stands for one way a cell spends its time, and none of them is loopvec's code (a
canary that changes with the code could not tell the two apart):

    interpreter  a pure-Python loop over floats: the loops' backends, and every small cell's
                 calls and dispatch
    compute      numpy's exp of an array that stays in the L2 cache: arithmetic, no memory traffic
    memory       numpy's sum of an array 4x a large L3 cache: read bandwidth

They run on one thread, interleaved round by round (`CANARY_ROUNDS` rounds each, after one
warm-up round), a round about 2 ms (interpreter, compute) or 6.5 ms (memory) on a Zen 3: about
0.1 s a moment, untimed by the grid.
The pass writes them to `passes/pass-K-PID.json` of its run folder (`write_pass_canary`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from loopvec.grid import thread_limit
from loopvec.results import CANARY_FOLDER, utc_now, write_json_atomic

#: Rounds of each workload per moment (the pass's start, its end).
CANARY_ROUNDS = 7
#: The interpreter workload's loop length: about 2 ms of Python.
INTERPRETER_STEPS = 40_000
#: The compute workload: exp of this many float64s (256 KiB, in L2), this many times a round.
COMPUTE_ELEMENTS, COMPUTE_REPEATS = 32_768, 10
#: The memory workload's array: 128 MiB, four times a 32 MiB L3 (Zen 3's, Zen 5's per CCD).
MEMORY_BYTES = 128 * 2**20


def _interpreter(values: list[float]) -> float:
    total = 0.0
    for x in values:
        total += x * x - 0.5 * x
    return total


def workloads() -> dict[str, Callable[[], object]]:
    """name -> a call of the workload, its data made here (outside the timing)."""
    floats = [k / INTERPRETER_STEPS for k in range(INTERPRETER_STEPS)]
    small = np.linspace(-1.0, 1.0, COMPUTE_ELEMENTS)
    out = np.empty_like(small)
    large = np.ones(MEMORY_BYTES // 8)

    def compute() -> object:
        for _ in range(COMPUTE_REPEATS):
            np.exp(small, out=out)
        return out

    return {
        "interpreter": lambda: _interpreter(floats),
        "compute": compute,
        "memory": lambda: np.add.reduce(large),
    }


def measure(rounds: int = CANARY_ROUNDS) -> dict[str, list[float]]:
    """name -> seconds of each of `rounds` rounds, the workloads interleaved, on one thread,
    after one warm-up round each (pages touched, caches filled)."""
    calls = workloads()
    seconds: dict[str, list[float]] = {name: [] for name in calls}
    with thread_limit(1):
        for call in calls.values():
            call()
        for _ in range(rounds):
            for name, call in calls.items():
                start = time.perf_counter()
                call()
                seconds[name].append(time.perf_counter() - start)
    return seconds


class PassCanary:
    """The canary file of one pass process: its start moment when made, its end at `finish`."""

    def __init__(self, folder: Path, pass_number: int) -> None:
        self.path = folder / CANARY_FOLDER / f"pass-{pass_number}-{os.getpid()}.json"
        self.record: dict[str, Any] = {
            "pass": pass_number,
            "pid": os.getpid(),
            "started_at": utc_now(),
            "canary": {"start": measure()},
        }
        self._write()

    def finish(self, cells_timed: int) -> None:
        self.record["canary"]["end"] = measure()
        self.record.update(finished_at=utc_now(), cells_timed=cells_timed)
        self._write()

    def _write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.path, self.record)
