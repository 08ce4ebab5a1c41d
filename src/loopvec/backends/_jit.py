"""numba options, set once for every compiled kernel.

cache=True keeps compiled code on disk (NUMBA_CACHE_DIR where the package folder is read-only), so
only the first process pays for compilation. fastmath is off unless a kernel asks for it: it lets
LLVM reorder sums and assume no inf/NaN, which can change results beyond the reference tolerance.
No explicit signatures: compilation then happens on the first call, where the benchmark measures
it as compile_s, and each memory layout of X (C, Fortran, strided) gets its own specialization.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast, overload

import numba

F = TypeVar("F", bound=Callable[..., Any])


@overload
def jit(function: F, /) -> F: ...
@overload
def jit(*, parallel: bool = ..., fastmath: bool = ...) -> Callable[[F], F]: ...


def jit(
    function: F | None = None, /, *, parallel: bool = False, fastmath: bool = False
) -> F | Callable[[F], F]:
    """Compile in nopython mode with loopvec's options: `@jit` or `@jit(parallel=True)`."""

    def compile_(f: F) -> F:
        compiled = numba.njit(cache=True, nogil=True, parallel=parallel, fastmath=fastmath)(f)
        return cast(F, compiled)

    return compile_ if function is None else compile_(function)
