"""This process's kernel plan as the kernels see it: the plan `loopvec.tuning` keeps for this
machine, looked up on first use and then held.

A module of its own: a kernel's code identity (its numba cache folder, its cells' code
fingerprint) follows its imports, and should hold the plan's values (`loopvec.provenance`), not
the code that measures them.
"""

from __future__ import annotations

import importlib
from typing import Any

from loopvec.backends._blocked import KernelPlan

_held: list[KernelPlan] = []  # once looked up


def kernel_plan() -> KernelPlan:
    """The plan the kernels run with in this process."""
    if not _held:
        _held.append(_tuning().current().plan)
    return _held[0]


def plan_record() -> dict[str, Any]:
    """The plan and where it came from, as every cell of a planned kernel records it."""
    record: dict[str, Any] = _tuning().current().as_json()
    return record


def _tuning() -> Any:
    # importlib, not an import statement: the measuring code stays out of the kernels' code
    # identity, and out of an import cycle (`loopvec.sources` and the cycle test follow import
    # statements; loopvec.tuning imports loopvec.results, which imports loopvec.provenance).
    return importlib.import_module("loopvec.tuning")


def hold(plan: KernelPlan) -> None:
    """Run the kernels with `plan` from now on (`loopvec.tuning` after measuring one)."""
    _held[:] = [plan]
