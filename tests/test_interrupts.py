"""Ctrl-C is never lost: where Python would print a KeyboardInterrupt and drop it (raised in a gc
callback, as distributed's are), `interrupts.ctrl_c` keeps it for the loop to see."""

from __future__ import annotations

import gc
import os
import signal

import pytest

from loopvec.interrupts import ctrl_c

pytestmark = pytest.mark.usefixtures("sigint_as_a_terminal_sets_it")


def ctrl_c_in_a_gc_callback() -> None:
    """Press Ctrl-C (SIGINT to this process) while a gc callback runs: its KeyboardInterrupt is
    raised inside the callback, where Python cannot propagate it."""

    def press(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            press_ctrl_c()

    gc.callbacks.append(press)
    try:
        gc.collect()
    finally:
        gc.callbacks.remove(press)


def test_a_ctrl_c_python_drops_is_kept_and_not_printed(capfd: pytest.CaptureFixture[str]) -> None:
    with ctrl_c(first_at_once=True) as pressed:
        ctrl_c_in_a_gc_callback()  # raised in the callback, dropped there
        assert pressed.pressed  # the loop sees it between its units of work
    assert "KeyboardInterrupt" not in capfd.readouterr().err
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def press_ctrl_c() -> None:
    """SIGINT to this process, then work for the interpreter to run its handler in."""
    os.kill(os.getpid(), signal.SIGINT)
    for _ in range(1000):
        pass


def test_the_first_ctrl_c_raises_at_once_or_waits_for_the_loop() -> None:
    with ctrl_c(first_at_once=True), pytest.raises(KeyboardInterrupt):
        press_ctrl_c()
    with ctrl_c(first_at_once=False) as pressed:
        press_ctrl_c()
        assert pressed.pressed  # deferred: the step in progress finishes
        with pytest.raises(KeyboardInterrupt):  # a second one stops at once
            press_ctrl_c()
