"""The backend registry: every way loopvec computes one logistic-regression gradient.

Conventions
-----------
Every backend module exposes one raw kernel with the same signature::

    gradient(w, b, X, Y) -> (dw, db)

    X  : ndarray of shape (n, m)            features x examples (C or Fortran order)
    Y  : ndarray of shape (1, m)            labels in [0, 1]
    w  : ndarray of shape (n, 1)            X, Y, w: float64, or float32 where asked for
    b  : float
    dw : ndarray of shape (n, 1)            dw = X dZ.T / m (float64, or float32 from numpy)
    db : float                              db = sum(dZ) / m

    with Z = w.T X + b,  A = sigmoid(Z),  dZ = A - Y.

Kernels do no validation (so validation is never timed) and never modify their inputs;
`loopvec.gradient` validates once and then calls the kernel. A backend is one module here plus one
entry in `BACKENDS`; the tests and the benchmark grid are parametrized over this dict.

A framework backend (torch, JAX) works on its own array type. Its module then also defines
`to_native(w, b, X, Y)`, which moves numpy inputs into the framework (done before timing), and
`to_numpy(result)`, which brings (dw, db) back (done after); `call` strings the three together.

Training updates w and b where the kernel left them, in the backend's own arrays: `descent_step`
does it with arithmetic, which numpy, torch and JAX arrays all support; a backend whose parameters
need more (autograd leaves) defines its own `step` with the same signature.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from importlib.metadata import EntryPoint, entry_points
from types import SimpleNamespace
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from loopvec.backends._loop import Advance, Loop

Kernel = Callable[
    [NDArray[np.float64], float, NDArray[np.float64], NDArray[np.float64]],
    tuple[NDArray[np.float64], float],
]

#: What a backend's `threads` setting controls: nothing (runs on one thread), the BLAS pool,
#: numba's pool, torch's pool, or nothing it can change at run time though it uses every core
#: ("fixed": XLA sizes its pool when the process starts).
Threading = Literal["none", "blas", "numba", "torch", "fixed"]


@dataclass(frozen=True)
class Backend:
    """One registered way to compute the gradient."""

    module: str  #: module under loopvec.backends that defines `gradient`
    family: str  #: loops | partly vectorized | vectorized | jit | framework | dask
    requires: tuple[str, ...]  #: packages that must import, beyond numpy
    threading: Threading  #: which thread pool the `threads` axis sets
    summary: str  #: one line for tables and --help
    extra_bytes_per_element: int = 0  #: memory beyond X per entry of X (for the grid's memory rule)
    dtypes: tuple[str, ...] = ("float64",)  #: the dtypes the grid times it in
    #: the memory orders of X the grid times it in: both where it reads a strided X in place
    #: (Fortran order is `data.T` of the (m, n) arrays users hold); others copy X into a layout
    #: of their own before timing, so the order could not change their time
    layouts: tuple[str, ...] = ("C",)
    #: compiles again for each new shape of its inputs (JAX's jit), not only per dtype and layout
    compiles_per_shape: bool = False
    #: how its `compiled_loop` runs the whole training loop in compiled code; "" if it has none
    compiled_loop: str = ""
    #: who wrote it: "loopvec", or where a plug-in came from ("entry point DIST", "--backend
    #: TARGET"); a backend not loopvec's own is never counted as loopvec's in a claim
    origin: str = "loopvec"
    #: a spec that carries its functions (a plug-in's `Backend`): the kernel, and optionally its
    #: adapters and training step; else they are `module`'s (a plug-in's module is a full path)
    kernel: Kernel | None = None
    to_native: Callable[..., tuple[Any, ...]] | None = None
    to_numpy: Callable[[Any], Any] | None = None
    step: Callable[..., tuple[Any, Any]] | None = None
    #: a spec's compiled training loop (`Loop`), with `compiled_loop` saying how it works
    loop: Loop | None = None
    #: a digest of a plug-in's own source, where `register` knows it (a file's, a pickle's)
    fingerprint: str = ""

    @property
    def own(self) -> bool:
        """Is it loopvec's own (a module of loopvec.backends)?"""
        return self.origin == "loopvec"


def backend_names() -> list[str]:
    """Every registered backend name, in registry order (slowest idea first)."""
    return list(BACKENDS)


@cache
def _importable(package: str) -> bool:
    try:
        importlib.import_module(package)
    except Exception:  # ImportError, or a package broken in another way: not usable here
        return False
    return True


def available_backends() -> list[str]:
    """The registered backends whose dependencies import on this machine (a plug-in's module
    too: one that fails to import is in `plugin_problems` instead)."""
    return [
        name
        for name, spec in BACKENDS.items()
        if all(map(_importable, spec.requires)) and name not in plugin_problems()
    ]


#: A backend's entry point names a module that defines `gradient`, or a `Backend`.
ENTRY_POINTS = "loopvec.backends"


def _from_entry_point(entry: EntryPoint) -> Backend:
    """The backend an entry point names: a `Backend` (loaded now), or a module (loaded when
    used: a module plug-in costs nothing until it is timed)."""
    origin = f"entry point of {entry.dist.name if entry.dist else entry.value}"
    if entry.attr:
        spec = entry.load()
        if not isinstance(spec, Backend):
            raise TypeError(f"{entry.value} is a {type(spec).__name__}, not a loopvec.Backend")
        return dataclasses.replace(spec, origin=origin)
    summary = f"plug-in: {entry.value}.gradient"
    return Backend(entry.value, "plug-in", (), "blas", summary, origin=origin)


_PROBLEMS: dict[str, str] = {}


def plugin_problems() -> dict[str, str]:
    """{name: why} of the plug-ins that cannot be used: an entry point that fails to load, a
    module without `gradient`, a name loopvec's own backends hold."""
    for name, spec in BACKENDS.items():
        if not spec.own and spec.kernel is None and name not in _PROBLEMS:
            try:
                _module(name).gradient  # noqa: B018 (imports the plug-in's module)
            except Exception as error:  # a plug-in's bug must not stop the run
                _PROBLEMS[name] = f"{type(error).__name__}: {error}"
    return dict(_PROBLEMS)


def discover_plugins() -> None:
    """Register the backends of the installed entry points (`ENTRY_POINTS`)."""
    for entry in entry_points(group=ENTRY_POINTS):
        if entry.name in _BUILT_IN:
            _PROBLEMS[entry.name] = f"{entry.value}: the name is one of loopvec's own backends"
        elif not entry.name.isidentifier():
            _PROBLEMS[entry.name] = f"{entry.value}: a backend's name must be an identifier"
        elif entry.name in BACKENDS:
            _PROBLEMS[entry.name] = f"{entry.value}: two plug-ins take the name {entry.name!r}"
            del BACKENDS[entry.name]
        else:
            try:
                BACKENDS[entry.name] = _from_entry_point(entry)
            except KeyboardInterrupt:
                raise
            except BaseException as error:  # a plug-in's import must never stop loopvec's
                _PROBLEMS[entry.name] = f"{entry.value}: {type(error).__name__}: {error}"


def register(name: str, target: str | Backend | Callable[..., Any]) -> None:
    """Add a backend that is not loopvec's own for this process: a TARGET as `loopvec check`
    takes it (FILE.py:FUNCTION or MODULE:FUNCTION), a `Backend`, or a function."""
    from loopvec.target import load_target, of_function  # noqa: PLC0415 (target imports us)

    if not name.isidentifier():
        raise ValueError(f"a backend's name must be an identifier; got {name!r}")
    if name in _BUILT_IN:
        raise ValueError(f"{name!r} is one of loopvec's own backends: choose another name")
    if isinstance(target, Backend):
        BACKENDS[name] = target if not target.own else dataclasses.replace(target, origin="yours")
        return
    loaded = load_target(target) if isinstance(target, str) else of_function(target)
    origin = f"--backend {target}" if isinstance(target, str) else f"function {loaded.label}"
    BACKENDS[name] = Backend(
        "",
        "yours",
        (),
        "blas",
        f"yours: {loaded.label}",
        origin=origin,
        kernel=loaded.function,
        fingerprint=loaded.fingerprint,
    )


def get_backend(name: str) -> Backend:
    """The registry entry for `name`; ValueError listing the valid names if there is none."""
    try:
        return BACKENDS[name]
    except (KeyError, TypeError):
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}; got {name!r}") from None


def not_installed(name: str, package: str) -> str:
    """Why backend `name` cannot run here: it needs `package`."""
    return (
        f"backend {name!r} needs the package {package!r}, which is not installed; "
        f"install it with: pip install {package}"
    )


def get_kernel(name: str) -> Kernel:
    """The raw kernel of backend `name`, importing its module on first use.

    Raises ValueError for an unknown name and ImportError naming the package a registered
    backend needs but cannot import.
    """
    spec = get_backend(name)
    for package in spec.requires:
        if not _importable(package):
            raise ImportError(not_installed(name, package))
    kernel: Kernel = _module(name).gradient
    return kernel


def _module(name: str) -> Any:
    """The module of backend `name` (loopvec's, or a plug-in's), or for a spec that carries its
    functions a namespace of them: `gradient`, and `to_native`, `to_numpy`, `step` if given."""
    spec = get_backend(name)
    if spec.kernel is not None:
        given = {
            "to_native": spec.to_native,
            "to_numpy": spec.to_numpy,
            "step": spec.step,
            "compiled_loop": spec.loop,
        }
        base = importlib.import_module(spec.module) if spec.module else None
        functions = {k: v for k, v in given.items() if v is not None}
        return SimpleNamespace(
            **{**vars(base or SimpleNamespace()), "gradient": spec.kernel, **functions}
        )
    return importlib.import_module(spec.module if not spec.own else f"{__name__}.{spec.module}")


def _same(*arrays: Any) -> Any:
    return arrays


def _as_numpy(result: Any) -> tuple[NDArray[np.floating], float]:
    return result  # type: ignore[no-any-return]


def get_adapters(name: str) -> tuple[Callable[..., tuple[Any, ...]], Callable[[Any], Any]]:
    """(to_native, to_numpy) of backend `name`: identities for backends that work on numpy."""
    get_kernel(name)  # unknown names and missing packages fail here, with their messages
    module = _module(name)
    return getattr(module, "to_native", _same), getattr(module, "to_numpy", _as_numpy)


def call(
    name: str, w: NDArray[Any], b: float, X: NDArray[Any], Y: NDArray[Any]
) -> tuple[NDArray[np.floating], float]:
    """Backend `name`'s gradient of numpy inputs as numpy (dw, db), through its own arrays."""
    to_native, to_numpy = get_adapters(name)
    result: tuple[NDArray[np.floating], float] = to_numpy(get_kernel(name)(*to_native(w, b, X, Y)))
    return result


def descent_step(
    w: Any, b: Any, dw: Any, db: Any, learning_rate: float, weight_decay: float
) -> tuple[Any, Any]:
    """One gradient-descent update: w - learning_rate (dw + weight_decay w), b - learning_rate db.

    weight_decay is the L2 penalty's lambda / m (the bias is not penalized); 0 skips that term.
    """
    if weight_decay:
        dw = dw + weight_decay * w
    return w - learning_rate * dw, b - learning_rate * db


def get_step(name: str) -> Callable[..., tuple[Any, Any]]:
    """Backend `name`'s update of (w, b) in its own arrays: its `step`, else `descent_step`."""
    get_kernel(name)
    step: Callable[..., tuple[Any, Any]] = getattr(_module(name), "step", descent_step)
    return step


#: The training loops: "python" (a Python for loop around the backend's step, the default) and
#: "compiled" (the whole loop in the backend's compiled code, where it has one).
LOOPS = ("python", "compiled")


def get_loop(name: str, loop: str = "python") -> Loop:
    """Backend `name`'s training `loop` (see `Loop`); ValueError for an unknown loop or a
    compiled loop the backend does not have, naming the backends that have one."""
    if loop not in LOOPS:
        raise ValueError(f"loop must be one of {', '.join(map(repr, LOOPS))}; got {loop!r}")
    spec = get_backend(name)
    if loop == "compiled" and not spec.compiled_loop:
        having = ", ".join(n for n, s in BACKENDS.items() if s.compiled_loop)
        raise ValueError(
            f"backend {name!r} has no compiled training loop (loop='compiled'); these do: {having}"
        )
    kernel, step, module = get_kernel(name), get_step(name), _module(name)
    if getattr(module, f"{loop}_loop", None) is not None:
        return getattr(module, f"{loop}_loop")  # type: ignore[no-any-return]
    if loop == "compiled":  # declared but not given (a plug-in's spec): never the Python loop
        raise ValueError(f"backend {name!r} declares a compiled loop but has none (Backend.loop)")

    def python_loop(
        w: Any, b: Any, X: Any, Y: Any, learning_rate: float, weight_decay: float
    ) -> tuple[Advance, Any, Any]:
        def advance(w: Any, b: Any, steps: int) -> tuple[Any, Any]:
            for _ in range(steps):
                dw, db = kernel(w, b, X, Y)
                w, b = step(w, b, dw, db, learning_rate, weight_decay)
            return w, b

        return advance, w, b

    return python_loop


BACKENDS: dict[str, Backend] = {
    "python_loops": Backend(
        module="python_loops",
        family="loops",
        requires=(),
        threading="none",
        summary="the lesson's double for-loop over examples and features, in plain Python",
        extra_bytes_per_element=32,  # X as lists: a float object and a list slot per entry
    ),
    "partly_vectorized": Backend(
        module="partly_vectorized",
        family="partly vectorized",
        requires=(),
        threading="none",
        summary="one Python loop over examples; dw accumulated as a numpy vector",
    ),
    "numpy_vectorized": Backend(
        module="numpy_vectorized",
        family="vectorized",
        requires=(),
        threading="blas",
        summary="no Python loop: two matrix products (BLAS) and a sigmoid; the reference",
        dtypes=("float64", "float32"),
        layouts=("C", "F"),
    ),
    "numba_loops": Backend(
        module="numba_loops",
        family="jit",
        requires=("numba",),
        threading="none",
        summary="the same double loop as python_loops, compiled by numba @njit",
        compiled_loop="numba: every step in one jitted function",
    ),
    "numba_fused": Backend(
        module="numba_fused",
        family="jit",
        requires=("numba",),
        threading="none",
        summary="one pass over X in cache-sized blocks, SIMD loops and a vectorized exp (numba)",
        dtypes=("float64", "float32"),
        layouts=("C", "F"),
        compiled_loop="numba: every step in one jitted function",
    ),
    "numba_parallel": Backend(
        module="numba_parallel",
        family="jit",
        requires=("numba",),
        threading="numba",
        summary="numba_fused split over threads, one partial dw per thread",
        dtypes=("float64", "float32"),
        layouts=("C", "F"),
        compiled_loop="numba: every step in one jitted function",
    ),
    "torch_autograd": Backend(
        module="torch_autograd",
        family="framework",
        requires=("torch",),
        threading="torch",
        summary="PyTorch, idiomatic: binary_cross_entropy_with_logits and backward()",
        layouts=("C", "F"),
        compiled_loop="torch.compile of the forward pass and of the optimizer's step",
    ),
    "torch_formula": Backend(
        module="torch_formula",
        family="framework",
        requires=("torch",),
        threading="torch",
        summary="PyTorch operations for the lesson's vectorized formula, no autograd",
        layouts=("C", "F"),
        compiled_loop="torch.compile of the step",
    ),
    "jax_grad": Backend(
        module="jax_grad",
        family="framework",
        requires=("jax",),
        threading="fixed",
        summary="JAX, idiomatic: jax.jit(jax.grad(loss)) in float64",
        extra_bytes_per_element=8,  # the inputs are copied onto the JAX device
        compiles_per_shape=True,
        compiled_loop="jax.jit of a lax.fori_loop over the steps",
    ),
    "jax_formula": Backend(
        module="jax_formula",
        family="framework",
        requires=("jax",),
        threading="fixed",
        summary="the lesson's vectorized formula under jax.jit in float64",
        extra_bytes_per_element=8,
        compiles_per_shape=True,
        compiled_loop="jax.jit of a lax.fori_loop over the steps",
    ),
    "dask_fused": Backend(
        module="dask_fused",
        family="dask",
        requires=("dask", "distributed"),
        threading="fixed",
        summary="a Dask cluster: numba_fused's pass per chunk of examples, partial sums reduced",
        extra_bytes_per_element=8,  # X persisted on the workers
        dtypes=("float64", "float32"),
    ),
    "dask_array": Backend(
        module="dask_array",
        family="dask",
        requires=("dask", "distributed"),
        threading="fixed",
        summary="the lesson's vectorized formula in dask.array operations, on a Dask cluster",
        extra_bytes_per_element=8,
    ),
}
#: loopvec's own backends; plug-ins join BACKENDS beside them (`discover_plugins`, `register`).
_BUILT_IN = frozenset(BACKENDS)
