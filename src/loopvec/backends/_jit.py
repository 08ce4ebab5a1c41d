"""numba options, set once for every compiled kernel.

cache=True keeps compiled code on disk (NUMBA_CACHE_DIR where the package folder is read-only), so
only the first process pays for compilation. fastmath stays off: it lets LLVM reorder sums and
assume no inf/NaN, which would change results beyond the reference tolerance. No explicit
signatures: compilation then happens on the first call, where the benchmark measures it as
compile_s, and each memory layout of X (C, Fortran, strided) gets its own specialization.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

import numba

F = TypeVar("F", bound=Callable[..., Any])


def jit(function: F) -> F:
    """Compile `function` in nopython mode with loopvec's options."""
    return cast(F, numba.njit(cache=True, fastmath=False, nogil=True)(function))
