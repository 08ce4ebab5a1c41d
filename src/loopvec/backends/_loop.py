"""The types of a training loop, shared by the registry and the backends that define loops (a
module of its own: a kernel's code fingerprint takes in what it imports, and not the registry)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

#: k steps of gradient descent from (w, b), in the backend's own arrays: advance(w, b, k) -> (w, b).
Advance = Callable[[Any, Any, int], tuple[Any, Any]]
#: How a backend runs the training loop: loop(w, b, X, Y, learning_rate, weight_decay) gives
#: (advance, w, b), the stepping function and the state it starts from (its own copies where it
#: steps them in place). A backend module's `python_loop` (the default: kernel, then `step`, one
#: step per call) and `compiled_loop` (many steps in one compiled call) are Loops.
Loop = Callable[[Any, Any, Any, Any, float, float], tuple[Advance, Any, Any]]
