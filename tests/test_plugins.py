"""Backends that are not loopvec's own: entry points, `--backend NAME=TARGET`, `loopvec.register`.

The end-to-end test installs examples/plugin and a broken plug-in into a folder of their own (a
temporary environment on PYTHONPATH) and runs the grid with them: found, checked, timed, marked;
the broken one named and skipped, the run going on.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import loopvec
from loopvec.analysis import is_framework, ours_and_theirs
from loopvec.backends import _PROBLEMS, BACKENDS, Backend, get_kernel, get_loop, register
from loopvec.formatting import context, plugins_note
from loopvec.provenance import code_identity
from loopvec.report import headline
from loopvec.results import Record
from loopvec.runner.settings import SettingsError, register_user_backends
from loopvec.sources import digest

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = ROOT / "tests" / "fixtures" / "solutions"
RIGHT = f"{SOLUTIONS}/vectorized.py:gradient"


@pytest.fixture
def registry() -> Iterator[None]:
    """Whatever a test registers, or finds wrong with a plug-in, is gone after it."""
    before, problems = dict(BACKENDS), dict(_PROBLEMS)
    yield
    BACKENDS.clear()
    BACKENDS.update(before)
    _PROBLEMS.clear()
    _PROBLEMS.update(problems)


@pytest.mark.usefixtures("registry")
def test_a_target_joins_the_registry_with_its_own_fingerprint() -> None:
    register("mine", RIGHT)
    spec = BACKENDS["mine"]
    assert not spec.own
    assert spec.origin == f"--backend {RIGHT}"
    assert "mine" in loopvec.available_backends()
    identity = code_identity("mine")
    assert identity["origin"] == spec.origin
    assert digest((SOLUTIONS / "vectorized.py").read_bytes()) in identity["code_modules"].values()
    problem = loopvec.make_problem(7, 3)
    args = (problem.w, problem.b, problem.X, problem.Y)
    assert get_kernel("mine")(*args)[1] == pytest.approx(loopvec.gradient(*args)[1])


@pytest.mark.usefixtures("registry")
def test_a_spec_and_a_function_register_too() -> None:
    spec = Backend("", "plug-in", (), "blas", "a spec", kernel=get_kernel("numpy_vectorized"))
    register("as_spec", spec)
    assert BACKENDS["as_spec"].origin == "yours"
    register("as_function", get_kernel("numpy_vectorized"))
    assert BACKENDS["as_function"].origin.startswith("function ")


@pytest.mark.parametrize(
    ("name", "target", "words"),
    [
        ("numpy_vectorized", RIGHT, "one of loopvec's own backends"),
        ("not a name", RIGHT, "must be an identifier"),
        ("mine", "missing.py:gradient", "missing.py: does not exist"),
    ],
)
@pytest.mark.usefixtures("registry")
def test_a_bad_registration_says_why(name: str, target: str, words: str) -> None:
    with pytest.raises(ValueError, match=re.escape(words)):
        register(name, target)


@pytest.mark.usefixtures("registry")
def test_backend_options_name_what_is_wrong() -> None:
    with pytest.raises(SettingsError, match="expected NAME=TARGET"):
        register_user_backends(["mine"])
    with pytest.raises(SettingsError, match=re.escape("--backend mine=nowhere.py:f: nowhere.py")):
        register_user_backends(["mine=nowhere.py:f"])
    assert register_user_backends([f"mine={RIGHT}"]) == {"mine": RIGHT}


def _record(backend: str, origin: str, median_s: float) -> Record:
    return Record(
        backend=backend,
        m=1000,
        n=10,
        threads=1,
        dtype="float64",
        layout="C",
        host="vm",
        status="timed",
        origin=origin,
        median_s=median_s,
        low_s=median_s,
        high_s=median_s,
    )


def test_a_plugin_is_never_counted_as_loopvecs_own() -> None:
    records = [
        _record("numba_fused", "loopvec", 2e-5),
        _record("torch_formula", "loopvec", 3e-5),
        _record("mine", "--backend alice.py:gradient", 1e-5),  # the fastest, but not ours
    ]
    cells = {(r.backend, r.m, r.n): r for r in records}
    ours, theirs = ours_and_theirs(cells, 1000, 10)
    assert (ours.backend, theirs.backend) == ("numba_fused", "torch_formula")
    assert plugins_note(records) == "not loopvec's own: mine (--backend alice.py:gradient)"
    (line,) = headline(cells, {(1000, 10)})
    assert line.startswith("- **m = 1,000, n = 10**: fastest is `mine` (a plug-in)")
    assert context({"cpu": "AMD EPYC"}, records, 1).endswith("\nnot loopvec's own: mine")
    assert "not loopvec's own" not in context({"cpu": "AMD EPYC"}, records[:2], 1)


BROKEN = {
    "pyproject.toml": """
        [build-system]
        requires = ["setuptools>=70.1"]
        build-backend = "setuptools.build_meta"
        [project]
        name = "loopvec-broken-plugin"
        version = "0.1.0"
        [project.entry-points."loopvec.backends"]
        broken = "loopvec_broken_plugin"
        wrong = "loopvec_wrong_kernel"
        [tool.setuptools]
        packages = ["loopvec_broken_plugin"]
        py-modules = ["loopvec_wrong_kernel"]
        """,
    "loopvec_broken_plugin/__init__.py": "import a_package_nobody_installed\n",
    "loopvec_wrong_kernel.py": (
        "import numpy as np\n\ndef gradient(w, b, X, Y):\n"
        "    return np.zeros_like(w), 0.0  # wrong: never timed\n"
    ),
}


def _wrong_from_m_100(folder: Path) -> Path:
    """A gradient that passes `loopvec check` (m = 37) and is wrong from m = 100 on."""
    path = folder / "late.py"
    path.write_text(
        f"import sys\nsys.path.insert(0, {str(SOLUTIONS)!r})\n"
        "from vectorized import gradient as right\n\n"
        "def gradient(w, b, X, Y):\n    dw, db = right(w, b, X, Y)\n"
        "    return (2 * dw if X.shape[1] >= 100 else dw), db\n"
    )
    return path


def _install(package: Path, site: Path, work: Path) -> None:
    """pip install a copy of it (its build files stay out of the checkout) into `site`, a
    folder of its own (offline: setuptools is already here)."""
    copy = work / f"copy-of-{package.name}"
    shutil.copytree(package, copy, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps"]
    command += ["--no-build-isolation", "--target", str(site), str(copy)]
    subprocess.run(command, check=True, capture_output=True, timeout=300)


@pytest.mark.usefixtures("as_a_user_runs_it")
def test_plugins_are_found_checked_timed_and_marked(tmp_path: Path) -> None:
    site = tmp_path / "site"
    _install(ROOT / "examples" / "plugin", site, tmp_path)
    broken = tmp_path / "broken"
    for name, text in BROKEN.items():
        (broken / name).parent.mkdir(parents=True, exist_ok=True)
        (broken / name).write_text(text.replace("\n        ", "\n").strip() + "\n")
    _install(broken, site, tmp_path)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]),
    }
    results = tmp_path / "results"
    command = [sys.executable, "-m", "pytest", str(ROOT / "bench" / "test_gradient.py")]
    command += ["-p", "no:cacheprovider", "--grid=smoke", "--threads=1"]
    command += ["--dtypes=float64", "--layouts=C", "--passes=2", "--blocks=2", "--no-bandwidth"]
    command += ["--benchmark-max-time=0.02", f"--results-dir={results}", "--report"]
    command += [
        "--backends=numpy_vectorized,example_module,example_spec,broken,wrong,mine,bad,late"
    ]
    command += [f"--backend=mine={RIGHT}", f"--backend=bad={SOLUTIONS}/sign.py:gradient"]
    command += [f"--backend=late={_wrong_from_m_100(tmp_path)}:gradient"]
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=600, check=False, env=env, cwd=ROOT
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "backend broken was not timed: plug-in broken: ModuleNotFoundError" in done.stdout
    (run,) = [p for p in results.iterdir() if p.is_dir()]
    cells = {p.stem: json.loads(p.read_text()) for p in run.glob("*-m*.json")}
    for name in ("example_module", "example_spec", "mine"):
        cell = cells[f"{name}-m100-n10-t1-float64-C"]
        assert cell["status"] == "timed"
        assert cell["origin"] != "loopvec"
    for name in ("wrong", "bad"):
        cell = cells[f"{name}-m100-n10-t1-float64-C"]
        assert cell["status"] == "skipped"
        assert cell["reason"].startswith("fails loopvec check (gradient:")
    assert not any(name.startswith("broken") for name in cells)
    late = cells["late-m100-n10-t1-float64-C"]  # right where the checks look, wrong at m = 100
    # failed; or, where a pass met its other m = 100 cell first, skipped for that failure
    assert late["status"] in {"failed", "skipped"}
    assert "DisagreementError" in late["reason"]
    assert cells["late-m1-n1-t1-float64-C"]["status"] == "timed"
    report = (run / "REPORT.md").read_text()
    assert "**Plug-ins.** Not loopvec's own: " in report
    assert "example_module (entry point of loopvec-example-plugin)" in report
    assert "not loopvec's own" in html.unescape((run / "report.html").read_text())
    info = subprocess.run(
        [sys.executable, "-m", "loopvec", "info", "--no-bandwidth"],
        capture_output=True, text=True, check=True, env=env, timeout=120,
    )  # fmt: skip
    record = json.loads(info.stdout)
    assert record["backends"]["example_spec"]["available"]
    assert "a_package_nobody_installed" in record["plugin_problems"]["broken"]


@pytest.mark.usefixtures("registry")
def test_a_declared_compiled_loop_must_be_given() -> None:
    kernel = get_kernel("numpy_vectorized")
    register("no_loop", Backend("", "plug-in", (), "blas", "s", kernel=kernel, compiled_loop="x"))
    with pytest.raises(ValueError, match="declares a compiled loop but has none"):
        get_loop("no_loop", "compiled")


@pytest.mark.usefixtures("registry")
def test_a_plugin_of_the_framework_family_is_not_one_of_the_frameworks() -> None:
    kernel = get_kernel("numpy_vectorized")
    register("fake_torch", Backend("", "framework", (), "torch", "s", kernel=kernel))
    assert not is_framework("fake_torch")
    assert is_framework("torch_formula")
