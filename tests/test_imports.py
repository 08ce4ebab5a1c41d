"""How the package's modules depend on each other: no import cycle, and matplotlib only where a
figure is drawn (a timing process or a Markdown report never pays for it)."""

from __future__ import annotations

import ast
import subprocess
import sys
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import pytest

SOURCE = Path(__file__).parents[1] / "src"
PACKAGE = SOURCE / "loopvec"


def module_name(path: Path) -> str:
    parts = path.relative_to(SOURCE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """module -> the package's modules it imports, at the top or inside a function alike.
    `from loopvec.a import b` is an edge to loopvec.a.b where b is a module, else to loopvec.a.
    (Importing a module also runs its parent packages' __init__, which is not counted: every
    module would otherwise form a cycle with the package that imports it.)"""
    paths = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in paths.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from the package, one level up per extra dot
                    base = ".".join(filter(None, [package.rsplit(".", node.level - 1)[0], base]))
                targets |= {
                    f"{base}.{alias.name}" if f"{base}.{alias.name}" in paths else base
                    for alias in node.names
                }
        graph[name] = {t for t in targets if t in paths and t != name}
    return graph


def test_the_import_graph_sees_imports_inside_functions() -> None:
    graph = import_graph()
    assert "loopvec.scale" in graph["loopvec.cli"]  # `from loopvec import scale` in a function
    assert "loopvec.analysis" in graph["loopvec.report"]
    assert "loopvec.backends._blocked" in graph["loopvec.backends._dask"]


def test_the_package_has_no_import_cycle() -> None:
    try:
        tuple(TopologicalSorter(import_graph()).static_order())
    except CycleError as error:
        pytest.fail(f"import cycle: {' -> '.join(error.args[1])}")


@pytest.mark.parametrize(
    "module", ["loopvec.analysis", "loopvec.formatting", "loopvec.report", "loopvec.scale"]
)
def test_numbers_and_text_import_without_matplotlib(module: str) -> None:
    """In a fresh process: what a timing pass or REPORT.md needs leaves matplotlib unloaded."""
    script = f"import sys, {module}; print('matplotlib' in sys.modules)"
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "False"


def test_import_and_fingerprints_load_no_framework() -> None:
    """`import loopvec` fingerprints its compiled code (the numba cache's folder); following
    `from loopvec.backends._dask import x` must not import Dask to learn that x is no module:
    every process that imports loopvec (each pass of a run) would pay for it."""
    script = (
        "import sys, loopvec; from loopvec.provenance import code_identity; "
        "code_identity('numpy_vectorized', training=True); code_identity('numba_parallel'); "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'dask', 'distributed', "
        "'torch', 'jax', 'matplotlib'}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]"
