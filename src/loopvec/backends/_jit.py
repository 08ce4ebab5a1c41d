"""numba options, set once for every compiled kernel.

cache=True keeps compiled code on disk (NUMBA_CACHE_DIR where the package folder is read-only), so
only the first process pays for compilation. fastmath is off unless a kernel asks for it. Full
fastmath also assumes no inf/NaN and allows approximate functions and reciprocals; the kernels
that need vectorized sums ask only for REASSOCIATE: reordering a sum (so LLVM can split it over
SIMD lanes) changes the result by rounding only, which the reference tolerance is built for.
No explicit signatures: compilation then happens on the first call, where the benchmark measures
it as compile_s, and each memory layout of X (C, Fortran, strided) gets its own specialization.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast, overload

import numba

F = TypeVar("F", bound=Callable[..., Any])

#: fastmath flags that let LLVM vectorize reductions: reassociate, fuse multiply-adds, ignore the
#: sign of zero. Not nnan/ninf (inputs may be extreme), not afn/arcp (exp and division stay exact).
REASSOCIATE = frozenset({"reassoc", "contract", "nsz"})


@overload
def jit(function: F, /) -> F: ...
@overload
def jit(*, parallel: bool = ..., fastmath: bool | frozenset[str] = ...) -> Callable[[F], F]: ...


def jit(
    function: F | None = None,
    /,
    *,
    parallel: bool = False,
    fastmath: bool | frozenset[str] = False,
) -> F | Callable[[F], F]:
    """Compile in nopython mode with loopvec's options: `@jit` or `@jit(parallel=True)`."""

    def compile_(f: F) -> F:
        flags = set(fastmath) if isinstance(fastmath, frozenset) else fastmath
        compiled = numba.njit(cache=True, nogil=True, parallel=parallel, fastmath=flags)(f)
        return cast(F, compiled)

    return compile_ if function is None else compile_(function)
