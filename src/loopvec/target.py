"""Someone else's gradient: found from `path/to/file.py:function` or `package.module:function`,
adapted from the course's common signatures to loopvec's kernel, and named by its source.

    gradient(w, b, X, Y) -> (dw, db)                      loopvec's kernel (the default)
    propagate(w, b, X, Y) -> (grads, cost)                the course's, grads["dw"], grads["db"]

Shapes as everywhere in loopvec: X (n, m) features x examples, Y (1, m), w (n, 1), b a number.
Anything wrong with the target itself (no such file, no such function, a syntax error, an import
that fails) is one `TargetError` line naming the file and, where there is one, the line.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
import sysconfig
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loopvec.sources import digest

#: The user's function, called as the course calls it.
UserFunction = Callable[..., Any]

#: signature name -> how to call it, shown in the report.
SIGNATURES = {
    "gradient": "gradient(w, b, X, Y) -> (dw, db)",
    "propagate": 'propagate(w, b, X, Y) -> (grads, cost), grads["dw"] and grads["db"]',
}


class TargetError(ValueError):
    """The target cannot be loaded: one line saying which file (and line) and why."""


class ResultShapeError(TypeError):
    """The function returned something other than its signature's (dw, db) or (grads, cost)."""


@dataclass(frozen=True)
class Target:
    """A user's function and where it came from.

    label: as the user named it ("solutions/alice.py:gradient", or the function's own name);
    fingerprint: a digest of its source (the file's bytes, or the function's source text), which
    stands for its code the way a backend's source files do for a built-in backend.
    """

    function: UserFunction
    label: str
    fingerprint: str


def load_target(text: str) -> Target:
    """The function `text` names: FILE.py:FUNCTION (a path) or MODULE:FUNCTION (importable; the
    current folder is on the path, as with `python -m`). TargetError says what is wrong."""
    where, colon, name = text.rpartition(":")
    if not colon or not where or not name.isidentifier():
        raise TargetError(
            f"TARGET must be FILE.py:FUNCTION or MODULE:FUNCTION (for example "
            f"solutions/alice.py:gradient); got {text!r}"
        )
    if where.endswith(".pkl"):  # a function a notebook sent with cloudpickle (`loopvec.bench`)
        return _load_pickled(Path(where), name, text)
    if where.endswith(".py") or "/" in where or "\\" in where:
        module, source = _load_file(Path(where))
    else:
        module = _import_module(where)
        source = Path(module.__file__).read_bytes() if getattr(module, "__file__", None) else b""
    function = getattr(module, name, None)
    if function is None:
        defined = sorted(
            k for k, v in vars(module).items() if inspect.isfunction(v) and not k.startswith("_")
        )
        listed = ", ".join(defined) or "none"
        raise TargetError(f"{where} has no function {name!r} (the functions it defines: {listed})")
    if not callable(function):
        raise TargetError(f"{where}: {name} is a {type(function).__name__}, not a function")
    return Target(function, text, digest(source) if source else of_function(function).fingerprint)


def of_function(function: UserFunction) -> Target:
    """A function handed over in Python (a notebook's, say): named by itself, fingerprinted by
    the file it was defined in, else its source text, else its compiled code."""
    if not callable(function):
        raise TypeError(f"function must be callable; got {type(function).__name__}")
    label = getattr(function, "__qualname__", None) or repr(function)
    code = getattr(function, "__code__", None)
    file = Path(code.co_filename) if code is not None else None
    if file is not None and file.is_file():  # its whole file: a helper beside it counts too
        return Target(function, label, digest(file.read_bytes()))
    try:
        source = inspect.getsource(function).encode()
    except (OSError, TypeError):  # a REPL's, an unpickled one: its code object stands for it
        source = _code_bytes(code) if code is not None else repr(function).encode()
    return Target(function, label, digest(source))


def _code_bytes(code: Any) -> bytes:
    """A code object's bytecode, names and constants, nested code objects by their own bytes:
    the same in every process (a code object's repr holds its address, and marshal's output
    depends on reference counts)."""
    consts = [_code_bytes(c) if hasattr(c, "co_code") else repr(c).encode() for c in code.co_consts]
    return b"\x1f".join([code.co_code, repr(code.co_names).encode(), *consts])


def _load_pickled(path: Path, name: str, text: str) -> Target:
    """The function cloudpickle wrote to `path` (`pickled_target`), named `name`."""
    import cloudpickle  # noqa: PLC0415 (only functions sent from a notebook need it)

    if not path.is_file():
        raise TargetError(f"{path}: does not exist; TARGET is FILE.pkl:NAME")
    data = path.read_bytes()
    try:
        function = cloudpickle.loads(data)
    except Exception as error:
        raise TargetError(f"{path}: cannot be unpickled: {_one_line(error)}") from None
    if not callable(function):
        raise TargetError(f"{path}: holds a {type(function).__name__}, not a function")
    return Target(function, name, digest(data))


def pickled_target(function: UserFunction, name: str, folder: Path) -> str:
    """FILE.pkl:NAME of `function` written by cloudpickle into `folder` (by value where its
    module is importable nowhere else: a notebook's), for other processes to load."""
    import cloudpickle  # noqa: PLC0415

    module = sys.modules.get(getattr(function, "__module__", "") or "")
    by_value = module is not None and _users_own(module)
    if by_value:  # a user's module, importable here only through this process's sys.path
        cloudpickle.register_pickle_by_value(module)
    try:
        data = cloudpickle.dumps(function)
    finally:
        if by_value:
            cloudpickle.unregister_pickle_by_value(module)
    path = folder / f"{name}-{digest(data)}.pkl"
    folder.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        path.write_bytes(data)
    return f"{path}:{name}"


def _users_own(module: Any) -> bool:
    """Is `module` a user's file (not __main__, not installed, not the standard library)?"""
    file = getattr(module, "__file__", None)
    if module.__name__ == "__main__" or not file:
        return False
    installed = {sysconfig.get_path(key) for key in ("purelib", "platlib", "stdlib")}
    return not any(Path(file).resolve().is_relative_to(Path(p).resolve()) for p in installed)


def _load_file(path: Path) -> tuple[Any, bytes]:
    """(module, its source bytes) of the Python file at `path`, run with its folder first on
    sys.path so that it can import its neighbours (a helper.py beside it).

    Afterwards sys.path is as it was, and the module and the neighbours it imported are taken
    out of sys.modules (`_forget`): the next file checked imports its own helper.py, never this
    one's, and cloudpickle sends them to the timing processes by value.
    """
    if not path.is_file():
        reason = "is a folder" if path.is_dir() else "does not exist"
        raise TargetError(f"{path}: {reason}; TARGET is FILE.py:FUNCTION")
    source = path.read_bytes()
    try:
        code = compile(source, str(path), "exec")
    except SyntaxError as error:
        raise TargetError(f"{path}, line {error.lineno}: syntax error: {error.msg}") from None
    name = f"loopvec_user_{''.join(c if c.isalnum() else '_' for c in path.stem)}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None  # a .py path always has one
    module = importlib.util.module_from_spec(spec)
    folder = path.resolve().parent
    path_before, modules_before = list(sys.path), set(sys.modules)
    sys.path.insert(0, str(folder))
    sys.modules[name] = module  # while it runs: dataclasses and pickle look it up there
    try:
        exec(code, module.__dict__)
    except KeyboardInterrupt:
        raise
    except BaseException as error:  # its own code failed as it was imported (SystemExit too)
        raise TargetError(f"{_where_raised(error, path)}: {_one_line(error)}") from None
    finally:
        sys.path[:] = path_before
        _forget(set(sys.modules) - modules_before, path_before)
    return module, source


def _forget(added: set[str], path: list[str]) -> None:
    """Take out of sys.modules the modules in `added` that `path` cannot import under their
    names: the target's own, its neighbours, and any it reached by changing sys.path itself."""
    roots = [Path(entry or ".").resolve() for entry in path]
    for name in added:
        file = getattr(sys.modules[name], "__file__", None)
        if not file or not _importable(name, Path(file).resolve(), roots):
            del sys.modules[name]


def _importable(name: str, file: Path, roots: list[Path]) -> bool:
    """Is `file` what `import name` finds under one of `roots` (a module or a package)?"""
    parts = name.split(".")
    for root in roots:
        home = root.joinpath(*parts)
        if file.parent == home and file.name.startswith("__init__."):
            return True
        if file.parent == home.parent and file.name.split(".")[0] == parts[-1]:
            return True
    return False


def _import_module(name: str) -> Any:
    if "" not in sys.path and str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))  # as `python -m` does: the current folder's modules
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as error:
        if error.name and name.startswith(error.name):
            raise TargetError(
                f"no module named {error.name!r} (not installed, and not in {Path.cwd()})"
            ) from None
        raise TargetError(f"{name}: {_one_line(error)}") from None
    except SyntaxError as error:
        raise TargetError(
            f"{error.filename}, line {error.lineno}: syntax error: {error.msg}"
        ) from None
    except Exception as error:
        raise TargetError(f"{name}: {_one_line(error)}") from None


def _where_raised(error: BaseException, path: Path) -> str:
    """'FILE, line N' of the deepest frame of `error` in the user's file (else the file)."""
    frames = [f for f in traceback.extract_tb(error.__traceback__) if Path(f.filename) == path]
    return f"{path}, line {frames[-1].lineno}" if frames else str(path)


def _one_line(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}".splitlines()[0]


def call_as_gradient(function: UserFunction, signature: str, *args: Any) -> tuple[Any, Any, Any]:
    """(dw, db, cost) of `function` called with (w, b, X, Y) in its `signature`; cost is None
    for the kernel's signature. ResultShapeError where the return value is not of that form."""
    return split_result(function(*args), signature)


def split_result(result: Any, signature: str) -> tuple[Any, Any, Any]:
    """(dw, db, cost) of what a function of `signature` returned (see `call_as_gradient`)."""
    if signature == "gradient":
        if _is_grads(result):
            raise ResultShapeError(
                "it returned (grads, cost), the course's propagate form: check it with "
                '--signature propagate (signature="propagate" in Python)'
            )
        if not isinstance(result, tuple | list) or len(result) != 2:
            raise ResultShapeError(
                f"{SIGNATURES['gradient']} must return a pair (dw, db); it returned "
                f"{_describe(result)}"
            )
        dw, db = result
        return dw, db, None
    if signature == "propagate":
        if not isinstance(result, tuple | list) or len(result) != 2 or not _is_grads(result[0]):
            raise ResultShapeError(
                f"{SIGNATURES['propagate']} must return (grads, cost) with grads a dict holding "
                f'"dw" and "db"; it returned {_describe(result)}'
            )
        grads, cost = result
        return grads["dw"], grads["db"], cost
    raise ValueError(f"signature must be one of {', '.join(SIGNATURES)}; got {signature!r}")


def _is_grads(value: Any) -> bool:
    if isinstance(value, tuple | list) and len(value) == 2:
        value = value[0]
    return isinstance(value, dict) and {"dw", "db"} <= value.keys()


def _describe(value: Any) -> str:
    if isinstance(value, tuple | list):
        return f"a {type(value).__name__} of {len(value)}"
    if isinstance(value, dict):
        return f"a dict with keys {sorted(map(str, value))}"
    return f"a {type(value).__name__}"
