"""What the torch backends share: torch.compile, with a clear error where it cannot work."""

from __future__ import annotations

import functools
import shutil
import warnings
from collections.abc import Callable
from typing import Any

import torch

#: The C++ compilers torch.compile's CPU code generator (inductor) can use.
CXX_COMPILERS = ("g++", "clang++", "c++")


def compiled(function: Callable[..., Any]) -> Callable[..., Any]:
    """torch.compile(function); RuntimeError saying why where it cannot compile (it compiles at
    the first call, so that is checked for a compiler here, and its failure there is explained)."""
    if not any(map(shutil.which, CXX_COMPILERS)):
        raise RuntimeError(
            "torch.compile needs a C++ compiler for CPU code and none of "
            f"{', '.join(CXX_COMPILERS)} is on PATH: install one (Debian: apt-get install g++), "
            "or train with loop='python'"
        )
    with warnings.catch_warnings():  # torch's compiler imports its own deprecated torch.jit
        warnings.filterwarnings(
            "ignore", "`torch.jit.script_method` is deprecated", DeprecationWarning
        )
        compiled_function = torch.compile(function)

    @functools.wraps(function)
    def call(*args: Any) -> Any:
        try:
            return compiled_function(*args)
        except torch._dynamo.exc.BackendCompilerFailed as error:
            raise RuntimeError(f"torch.compile could not compile the step: {error}") from error

    return call
