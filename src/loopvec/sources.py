"""The source files behind a module: what "the code" of a kernel is, as a short hash.

A module's closure is the module and every loopvec module it imports, found by reading import
statements (never by importing them), followed recursively: `numba_parallel` brings in
`numba_fused.py`, `_blocked.py`, `_jit.py`, `sigmoid.py`. Its fingerprint hashes their sources.
Both the code fingerprint of a timed cell (`loopvec.provenance`) and the folder of a kernel's
compiled code (`loopvec.backends._jit`) come from here, so an edit of any module a kernel uses
changes both. This module imports nothing from loopvec: `_jit` uses it while kernels load.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import json
from functools import cache
from pathlib import Path
from typing import Any

#: Hex digits kept of a SHA-256: 64 bits, no collision in any realistic results folder.
FINGERPRINT_DIGITS = 16


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:FINGERPRINT_DIGITS]


def json_digest(value: Any) -> str:
    return digest(json.dumps(value, sort_keys=True).encode("utf-8"))


def source_path(module: str) -> Path:
    """The .py file of `module` (found without importing it)."""
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise ImportError(f"cannot find the source of module {module}")
    return Path(spec.origin)


def _is_module(name: str) -> bool:
    """Whether `name` is a module, found without importing it: `loopvec.backends._dask.checked`
    is a name in a module, and finding it as a submodule would import the module (and Dask)."""
    parent = name.rpartition(".")[0]
    try:
        package = importlib.util.find_spec(parent) if parent else None
        if parent and (package is None or package.submodule_search_locations is None):
            return False  # a plain module has no submodules
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


@cache  # as module_closure is: every backend's closure shares most modules
def _imports(module: str) -> frozenset[str]:
    """The loopvec modules that `module` imports by name (absolute or relative)."""
    path = source_path(module)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_bytes(), filename=str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # from . import x, from ._blocked import y
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            # `from loopvec.backends import numba_fused` imports a module, `import descent_step`
            # a name defined in loopvec.backends itself.
            names = [f"{base}.{alias.name}" for alias in node.names]
            submodules = {name for name in names if name.startswith("loopvec") and _is_module(name)}
            found |= submodules | ({base} if len(submodules) < len(names) else set())
    return frozenset(name for name in found if name == "loopvec" or name.startswith("loopvec."))


@cache
def module_closure(*roots: str) -> tuple[str, ...]:
    """`roots` and every loopvec module they import, directly or through each other, sorted."""
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo.extend(_imports(module) - seen)
    return tuple(sorted(seen))


def source_digests(*roots: str) -> dict[str, str]:
    """{module: hash of its source} for the closure of `roots`."""
    return {name: digest(source_path(name).read_bytes()) for name in module_closure(*roots)}
