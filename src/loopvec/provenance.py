"""Where a number came from: the machine state and the code that were timed, as short hashes.

A run belongs to one machine state; its fingerprint hashes what a timing depends on (CPU model and
SIMD features, cores, memory, OS, Python, numpy, numba and llvmlite, numpy's BLAS library and the
kernel it runs), never the host name, the date or a measured bandwidth. A cell also records the
code fingerprint of its backend: the source of the backend's module and of every loopvec module it
imports (followed recursively by `loopvec.sources`: `_blocked.py`, `_jit.py`, `sigmoid.py`, ...),
the module that makes the timed problem, the versions of the framework the backend runs on
(torch, jax), and for the blocked kernels the machine's kernel plan (`loopvec.tuning`), which the
cell also records whole. Resume keeps
a cell only when both fingerprints and every parameter match, so an edit of `_blocked.py` retimes
exactly the backends that use it.
"""

from __future__ import annotations

import re
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

from loopvec.backends import get_backend
from loopvec.backends._plan import kernel_plan, plan_record
from loopvec.sources import digest, json_digest, module_closure, source_digests, source_path
from loopvec.target import of_function

#: The cell-file format: 2 added the run, machine and code fingerprints, 3 the samples of every
#: round by pass and block. Files of another format
#: cannot be told apart from another machine's or another kernel's timings and are not used.
FORMAT = 3
#: Hex digits of the machine fingerprint in a run folder's name.
NAME_DIGITS = 8
#: What makes a backend's timed problem: every cell's inputs come from here.
PROBLEM_MODULES = ("loopvec.problem",)
#: ... and a training cell's, plus the loop that is timed.
TRAINING_MODULES = ("loopvec.problem", "loopvec.datasets", "loopvec.training")
#: The module whose kernels run with a `KernelPlan` (`loopvec.tuning`).
PLANNED_MODULE = "loopvec.backends._plan"
#: Distributions whose version is part of the code of a backend that requires the package.
DISTRIBUTIONS = {"jax": ("jax", "jaxlib"), "numba": ("numba", "llvmlite")}
#: Versions in the machine fingerprint: what every backend and the bench itself run on.
MACHINE_PACKAGES = ("numpy", "numba", "llvmlite")
#: What makes a checkout dirty: its code, not the results a run writes.
CODE_PATHS = ("src", "bench", "pyproject.toml")
#: Words in a CPU's brand that do not tell one CPU from another (for run folder names).
_CPU_NOISE = {"amd", "intel", "apple", "genuine", "cpu", "processor", "core", "r", "tm"}


def machine_identity(record: dict[str, Any]) -> dict[str, Any]:
    """The entries of a machine record (`loopvec.machine.machine_record`) that a timing depends
    on: not the host name, thread settings, budgets or the measured bandwidth."""
    versions = record.get("versions", {})
    return {
        "cpu": record.get("cpu"),
        "cpu_target": record.get("cpu_target"),
        "simd": record.get("simd"),
        "logical_cores": record.get("logical_cores"),
        "physical_cores": record.get("physical_cores"),
        # The total moves by a few kB between boots of the same machine: whole GiB are stable.
        "memory_gib": round(record.get("memory_bytes", 0) / 2**30),
        "os": record.get("os"),
        "python": record.get("python"),
        "versions": {package: versions.get(package) for package in MACHINE_PACKAGES},
        "blas": [
            {key: pool.get(key) for key in ("internal_api", "version", "architecture")}
            for pool in record.get("blas", [])
        ],
    }


def machine_fingerprint(record: dict[str, Any]) -> str:
    """A short stable hash of `machine_identity(record)`."""
    return json_digest(machine_identity(record))


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def cpu_word(cpu: str) -> str:
    """'AMD EPYC 9B45 128-Core Processor' -> 'epyc': the first word that names the CPU."""
    words = [w for w in re.split(r"[^a-z0-9.-]+", cpu.lower()) if w and w not in _CPU_NOISE]
    return _slug(words[0]) if words else "cpu"


def run_name(record: dict[str, Any], grid: str) -> str:
    """The folder name of a run: readable part, then the machine fingerprint's first digits,
    e.g. 'vm-epyc-2c-default-3f9a1c2e'."""
    host = _slug(str(record.get("host", "host"))) or "host"
    cores = record.get("logical_cores", "?")
    fingerprint = machine_fingerprint(record)[:NAME_DIGITS]
    return f"{host}-{cpu_word(str(record.get('cpu', '')))}-{cores}c-{grid}-{fingerprint}"


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def planned(backend: str) -> bool:
    """Whether `backend`'s kernels run with the machine's kernel plan (`loopvec.tuning`)."""
    spec = get_backend(backend)
    return spec.own and PLANNED_MODULE in module_closure(f"loopvec.backends.{spec.module}")


def code_identity(backend: str, *, training: bool = False) -> dict[str, Any]:
    """What a cell of `backend` timed: {"origin": whose, "code_fingerprint": hash,
    "code_modules": {module: source hash}, "code_versions": {distribution: version}}.
    `training`: a training cell."""
    spec = get_backend(backend)
    problem = TRAINING_MODULES if training else PROBLEM_MODULES
    if spec.own:
        modules = source_digests(f"loopvec.backends.{spec.module}", *problem)
    else:  # a plug-in's own source files: its module (and loopvec's it imports), its kernel's
        modules = {**source_digests(*problem), **_plugin_module(spec.module)}
        if spec.kernel is not None:
            kernel = f"kernel {getattr(spec.kernel, '__qualname__', '?')}"
            modules[kernel] = spec.fingerprint or of_function(spec.kernel).fingerprint
    versions = {
        distribution: _version(distribution)
        for package in spec.requires
        for distribution in DISTRIBUTIONS.get(package, (package,))
    }
    with_plan = PLANNED_MODULE in modules
    if with_plan:  # the kernels run with this machine's plan: a new plan is new code to time
        modules["kernel plan"] = json_digest(kernel_plan()._asdict())
    return {
        "origin": spec.origin,
        "code_fingerprint": json_digest({"modules": modules, "versions": versions}),
        "code_modules": modules,
        "code_versions": versions,
        **({"kernel_plan": plan_record()} if with_plan else {}),
    }


def _plugin_module(module: str) -> dict[str, str]:
    """{module: hash} of a plug-in's module and the loopvec modules it imports; for a compiled
    extension (Cython, Rust), the hash of its file's bytes."""
    if not module:
        return {}
    try:
        return source_digests(module)
    except (SyntaxError, ValueError, UnicodeDecodeError):  # not Python source
        return {module: digest(source_path(module).read_bytes())}


def git_state(folder: Path) -> dict[str, Any]:
    """{"git_commit": sha, "git_dirty": bool} of the checkout holding `folder`; None for both
    outside a checkout. Dirty means uncommitted changes to the code (src, bench, pyproject.toml):
    results written by a run do not make a checkout dirty."""

    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", "-C", str(folder), *args],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        )
        return done.stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        changes = git("status", "--porcelain", "--", *(f":(top){path}" for path in CODE_PATHS))
    except (OSError, subprocess.SubprocessError):
        return {"git_commit": None, "git_dirty": None}
    return {"git_commit": commit, "git_dirty": bool(changes)}


def loopvec_checkout_state(folder: Path) -> dict[str, Any]:
    """`git_state` of the checkout holding `folder` if it holds the loopvec running, else None
    for both: an installed loopvec in a virtual environment inside a user's repository is not
    that repository's commit."""
    state = git_state(folder)
    if state["git_commit"] is None:
        return state
    done = subprocess.run(
        ["git", "-C", str(folder), "rev-parse", "--show-toplevel"],
        capture_output=True, text=True, check=False, timeout=30,
    )  # fmt: skip
    top = Path(done.stdout.strip()).resolve()
    if done.returncode != 0 or not Path(__file__).resolve().is_relative_to(top):
        return {"git_commit": None, "git_dirty": None}
    return state
