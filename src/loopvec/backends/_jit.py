"""numba options, set once for every compiled kernel, and where compiled code is kept.

cache=True keeps compiled code on disk, so only the first process pays for compilation. numba's
own cache notices an edit of the file that defines a function, but not of the modules it calls:
with a warm cache, a change in `_blocked.py` would never reach `numba_fused`. So each module's
compiled code goes to a folder named by the fingerprint of its sources and of every loopvec module
it imports (`loopvec.sources`): any edit of code a kernel runs selects a new, empty folder and the
kernel is compiled afresh. The folders live under NUMBA_CACHE_DIR when it is set, else under
$XDG_CACHE_HOME/loopvec/numba (~/.cache/loopvec/numba); old ones can be deleted at any time.

fastmath is off unless a kernel asks for it. Full fastmath also assumes no inf/NaN and allows
approximate functions and reciprocals; the kernels that need vectorized sums ask only for
REASSOCIATE: reordering a sum (so LLVM can split it over SIMD lanes) changes the result by rounding
only, which the reference tolerance is built for.
No explicit signatures: compilation then happens on the first call, where the benchmark measures
it as compile_s, and each memory layout of X (C, Fortran, strided) gets its own specialization.
"""

from __future__ import annotations

import os
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any, TypeVar, cast, overload

import numba
from filelock import FileLock, Timeout

from loopvec.backends._loop import Advance, Loop
from loopvec.sources import json_digest, source_digests

F = TypeVar("F", bound=Callable[..., Any])
_config: Any = numba.config  # untyped: its settings are read from the environment at import

#: fastmath flags that let LLVM vectorize reductions: reassociate, fuse multiply-adds, ignore the
#: sign of zero. Not nnan/ninf (inputs may be extreme), not afn/arcp (exp and division stay exact).
REASSOCIATE = frozenset({"reassoc", "contract", "nsz"})


def cache_root() -> Path:
    """The folder that holds one folder of compiled code per code fingerprint."""
    configured = os.environ.get("NUMBA_CACHE_DIR")
    if configured:
        return Path(configured)
    user_cache = os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache")
    return Path(user_cache).expanduser() / "loopvec" / "numba"


@cache
def cache_folder(module: str) -> Path:
    """Where the compiled code of `module`'s functions goes: named by its closure's sources."""
    return cache_root() / json_digest(source_digests(module))


#: Longest wait for another process's compilation before compiling alongside it.
COMPILE_WAIT_S = 600.0


@contextmanager
def compiling_alone(module: str) -> Iterator[None]:
    """One process at a time compiles (or loads) `module`'s kernels: processes that start
    together (a Dask cluster's workers) would each compile the same kernels, where the first can
    write the cache and the others load it. A lock file in the module's cache folder; where that
    cannot be written (a read-only cache), or after COMPILE_WAIT_S, each compiles its own."""
    folder = cache_folder(module)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        lock = FileLock(folder / "compiling.lock", timeout=COMPILE_WAIT_S)
        lock.acquire()
    except (OSError, Timeout):
        yield
        return
    try:
        yield
    finally:
        lock.release()


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
        # numba picks a function's cache folder when the function is decorated, from
        # config.CACHE_DIR (NUMBA_CACHE_DIR): set it to this module's folder for that moment.
        configured = _config.CACHE_DIR
        _config.CACHE_DIR = str(cache_folder(f.__module__))
        try:
            compiled = numba.njit(cache=True, nogil=True, parallel=parallel, fastmath=flags)(f)
        finally:
            _config.CACHE_DIR = configured
        return cast(F, compiled)

    return compile_ if function is None else compile_(function)


def _descend(w, b, X, Y, learning_rate, weight_decay, steps, extra):  # type: ignore[no-untyped-def]
    for _ in range(steps):
        dw, db = gradient(w, b, X, Y, *extra)  # type: ignore[name-defined]  # noqa: F821
        w = w - learning_rate * (dw + weight_decay * w)
        b = b - learning_rate * db
    return w, b


def compiled_descent(gradient: Any, extra_args: Callable[[], tuple[Any, ...]] = tuple) -> Loop:
    """The whole gradient-descent loop around the jitted `gradient(w, b, X, Y, *extra_args())`
    in one compiled function: a numba backend's `compiled_loop` (see `Loop`).

        for _ in range(steps):
            dw, db = gradient(w, b, X, Y)
            w = w - learning_rate (dw + weight_decay w);  b = b - learning_rate db
    """
    # `_descend` with `gradient` as a global of its own: numba keys the cached code of a
    # closure by its variables' pickled bytes, which for a dispatcher differ in every process,
    # so each process compiled its loops again (15 times in one CI run).
    descend = types.FunctionType(_descend.__code__, {"gradient": gradient}, "descend")
    # Cached in the gradient's own folder, named by the sources it runs: numba copies the kernel
    # into the loop's code, so an edit of the kernel must compile the loop afresh too.
    descend.__module__ = gradient.py_func.__module__
    compiled = jit(descend)

    def compiled_loop(
        w: Any, b: Any, X: Any, Y: Any, learning_rate: float, weight_decay: float
    ) -> tuple[Advance, Any, Any]:
        def advance(w: Any, b: Any, steps: int) -> tuple[Any, Any]:
            args = (learning_rate, weight_decay, steps, extra_args())
            return compiled(w, float(b), X, Y, *args)  # type: ignore[no-any-return]

        return advance, w, b

    return compiled_loop
