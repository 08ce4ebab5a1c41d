"""Ctrl-C that is never lost: for loops whose unit of work (a training step, a study's record)
must finish whole or not count.

Python raises KeyboardInterrupt wherever the main thread is when the signal arrives; where that is
a `__del__` or a gc callback (distributed's run some), it prints "Exception ignored in ..." with a
traceback and drops the interrupt, and the loop runs on as if nothing was pressed. `ctrl_c` keeps
the press: the loop asks `pressed` between its units of work.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from types import FrameType
from typing import Any


@dataclass
class CtrlC:
    pressed: bool = False  #: Ctrl-C was pressed in the block, whether it raised or not


@contextmanager
def ctrl_c(
    *, first_at_once: bool, second_at_once: bool = True, waiting: str = ""
) -> Iterator[CtrlC]:
    """Within the block, a Ctrl-C is recorded in `pressed` and raises KeyboardInterrupt at once
    if `first_at_once` (else it waits for the loop to look, and `waiting`, if given, goes to
    stderr as a line); a second one raises at once if `second_at_once`. A KeyboardInterrupt
    that Python would print and drop (in a `__del__`, a gc callback) is dropped unprinted:
    `pressed` still says it came. Where Python's own handler is not installed (another thread,
    SIGINT ignored or taken by the caller), nothing changes."""
    state = CtrlC()
    if threading.current_thread() is not threading.main_thread() or (
        signal.getsignal(signal.SIGINT) is not signal.default_int_handler
    ):
        yield state
        return

    def interrupt(signum: int, frame: FrameType | None) -> None:
        again, state.pressed = state.pressed, True
        if second_at_once if again else first_at_once:
            raise KeyboardInterrupt
        if waiting and not again:  # os.write: a print here could re-enter one in progress
            with suppress(OSError):
                os.write(2, f"{waiting}\n".encode())

    def drop_interrupt(unraisable: Any) -> None:  # `pressed` keeps it
        if not isinstance(unraisable.exc_value, KeyboardInterrupt):
            hook(unraisable)

    hook = sys.unraisablehook
    signal.signal(signal.SIGINT, interrupt)
    sys.unraisablehook = drop_interrupt
    try:
        yield state
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        sys.unraisablehook = hook
