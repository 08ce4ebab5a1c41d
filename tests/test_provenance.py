"""Fingerprints: what a timing depends on changes them, nothing else does."""

from __future__ import annotations

import copy
import re
import subprocess
from pathlib import Path
from typing import Any

import numba
import numpy as np
import pytest

from loopvec.grid import thread_limit
from loopvec.machine import READ_STREAMS, _read_sum, last_level_cache_bytes, machine_record
from loopvec.provenance import (
    code_identity,
    cpu_word,
    git_state,
    machine_fingerprint,
    run_name,
)
from loopvec.sources import module_closure

MACHINE: dict[str, Any] = {
    "host": "vm",
    "cpu": "AMD EPYC 9B45 128-Core Processor",
    "cpu_target": "znver5",
    "simd": ["avx", "avx2", "avx512f", "fma", "sse4.2"],
    "logical_cores": 2,
    "physical_cores": 2,
    "memory_bytes": 25_276_518_400,
    "os": "Linux-6.18.44-x86_64-with-glibc2.36",
    "python": "3.11.7",
    "versions": {"numpy": "2.4.6", "numba": "0.68.1", "llvmlite": "0.50.0", "torch": None},
    "blas": [
        {
            "internal_api": "openblas",
            "version": "0.3.31",
            "num_threads": 2,
            "architecture": "SkylakeX",
        }
    ],
    "numba_threads": 2,
    "read_bandwidth_bytes_per_s": {"1": 4.2e10, "2": 4.9e10},
}


def changed(path: str, value: Any) -> dict[str, Any]:
    """MACHINE with the entry at `path` ('versions.numpy', 'blas.0.architecture') set."""
    record = copy.deepcopy(MACHINE)
    *parents, last = path.split(".")
    target: Any = record
    for key in parents:
        target = target[int(key)] if key.isdigit() else target[key]
    target[int(last) if last.isdigit() else last] = value
    return record


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("cpu", "Intel(R) Xeon(R) Platinum 8488C"),
        ("cpu_target", "sapphirerapids"),
        ("simd", ["avx", "avx2", "fma", "sse4.2"]),  # no AVX-512: other loop widths
        ("logical_cores", 4),
        ("physical_cores", 1),
        ("memory_bytes", 2 * 25_276_518_400),
        ("os", "Linux-6.1.0-x86_64-with-glibc2.36"),
        ("python", "3.12.1"),
        ("versions.numpy", "2.3.0"),
        ("versions.numba", "0.67.0"),
        ("versions.llvmlite", "0.49.0"),
        ("blas.0.architecture", "Haswell"),  # OPENBLAS_CORETYPE pins another kernel
        ("blas.0.version", "0.3.30"),
    ],
)
def test_what_a_timing_depends_on_changes_the_machine_fingerprint(path: str, value: Any) -> None:
    assert machine_fingerprint(changed(path, value)) != machine_fingerprint(MACHINE)


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("host", "ci-runner-7"),
        ("numba_threads", 1),
        ("blas.0.num_threads", 1),
        ("read_bandwidth_bytes_per_s", {"1": 1e9}),
        ("memory_bytes", 25_276_502_016),  # a few kB less after a reboot
        ("versions.torch", "2.13.0"),  # a framework is part of its backends' code fingerprint
    ],
)
def test_what_it_does_not_depend_on_leaves_the_fingerprint(path: str, value: Any) -> None:
    assert machine_fingerprint(changed(path, value)) == machine_fingerprint(MACHINE)


def test_this_machine_has_a_stable_fingerprint_and_a_readable_run_name() -> None:
    first, second = machine_record(measure_bandwidth=False), machine_record(measure_bandwidth=False)
    assert first["fingerprint"] == second["fingerprint"] == machine_fingerprint(first)
    assert re.fullmatch(r"[0-9a-f]{16}", first["fingerprint"])
    name = run_name(first, "quick")
    assert name.endswith(f"-{first['logical_cores']}c-quick-{first['fingerprint'][:8]}")


@pytest.mark.parametrize(("features", "target"), [("", "haswell"), ("+avx2", "haswell +avx2")])
def test_compiling_for_another_cpu_is_another_machine_state(
    monkeypatch: pytest.MonkeyPatch, features: str, target: str
) -> None:
    """NUMBA_CPU_NAME (as numba's config holds it) names the code numba compiles: its cells, and
    the kernel plan kept under the fingerprint, must not pass for this CPU's own."""
    native = machine_record(measure_bandwidth=False)
    monkeypatch.setattr(numba.config, "CPU_NAME", "haswell")
    monkeypatch.setattr(numba.config, "CPU_FEATURES", features)
    other = machine_record(measure_bandwidth=False)
    assert other["cpu_target"] == target
    assert other["fingerprint"] != native["fingerprint"]


def test_run_names_read_like_the_machine() -> None:
    fingerprint = machine_fingerprint(MACHINE)
    assert run_name(MACHINE, "default") == f"vm-epyc-2c-default-{fingerprint[:8]}"
    assert run_name({**MACHINE, "host": "My Laptop.local"}, "quick").startswith("my-laptop-local-")
    assert cpu_word("Intel(R) Core(TM) i7-9750H CPU @ 2.60GHz") == "i7-9750h"
    assert cpu_word("Intel(R) Xeon(R) Platinum 8488C") == "xeon"
    assert cpu_word("Apple M2 Pro") == "m2"
    assert cpu_word("") == "cpu"


def test_a_kernel_s_code_is_its_module_and_every_loopvec_module_it_imports() -> None:
    parallel = module_closure("loopvec.backends.numba_parallel")
    assert {
        "loopvec.backends.numba_parallel",
        "loopvec.backends.numba_fused",  # `from loopvec.backends import numba_fused`
        "loopvec.backends._blocked",
        "loopvec.backends._jit",
    } <= set(parallel)
    assert "loopvec.backends" not in parallel  # the registry is not part of the kernel
    loops = module_closure("loopvec.backends.python_loops")
    assert "loopvec.sigmoid" in loops
    assert "loopvec.backends._jit" not in loops
    # `from loopvec.backends import descent_step`: a name defined by the package itself
    assert "loopvec.backends" in module_closure("loopvec.backends.torch_autograd")


def test_code_fingerprints_differ_by_backend_and_name_their_framework() -> None:
    fused, parallel = code_identity("numba_fused"), code_identity("numba_parallel")
    assert fused["code_fingerprint"] != parallel["code_fingerprint"]
    assert set(fused["code_modules"]) < set(parallel["code_modules"])
    assert "loopvec.problem" in fused["code_modules"]  # what made the timed input
    assert set(code_identity("jax_grad")["code_versions"]) == {"jax", "jaxlib"}
    assert code_identity("numpy_vectorized")["code_versions"] == {}
    training = code_identity("numba_fused", training=True)
    assert "loopvec.training" in training["code_modules"]
    assert training["code_fingerprint"] != fused["code_fingerprint"]


def test_git_state_of_a_checkout_and_of_a_plain_folder(tmp_path: Path) -> None:
    assert git_state(tmp_path) == {"git_commit": None, "git_dirty": None}

    def git(*args: str) -> None:
        subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True)

    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "kernel.py").write_text("x = 1\n")
    git("init", "-q")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "kernel")
    clean = git_state(tmp_path / "src")
    assert re.fullmatch(r"[0-9a-f]{40}", clean["git_commit"])
    assert clean["git_dirty"] is False
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "cell.json").write_text("{}")  # results do not make it dirty
    assert git_state(tmp_path)["git_dirty"] is False
    (tmp_path / "src" / "kernel.py").write_text("x = 2\n")
    assert git_state(tmp_path) == {"git_commit": clean["git_commit"], "git_dirty": True}


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("size", [1, 15, 16 * READ_STREAMS, 10_007])
def test_the_bandwidth_read_sums_every_element_once(threads: int, size: int) -> None:
    """Each thread's part read as 8 streams side by side, and what does not divide evenly."""
    a = np.arange(1.0, size + 1.0)
    with thread_limit(threads):
        assert _read_sum(a, threads) == size * (size + 1) / 2


def test_the_last_level_cache_is_the_largest_data_cache_linux_describes(tmp_path: Path) -> None:
    caches = {
        "index0": ("Data", "48K"),
        "index1": ("Instruction", "64M"),
        "index2": ("Unified", "2048K"),
        "index3": ("Unified", "105M"),
        "index4": ("Unified", "unreadable"),
    }
    for index, (kind, size) in caches.items():
        (tmp_path / "cache" / index).mkdir(parents=True)
        (tmp_path / "cache" / index / "type").write_text(f"{kind}\n")
        (tmp_path / "cache" / index / "size").write_text(f"{size}\n")
    assert last_level_cache_bytes(tmp_path) == 105 * 2**20
    assert last_level_cache_bytes(tmp_path / "nowhere") == 0
