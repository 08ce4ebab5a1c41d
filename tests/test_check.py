"""`loopvec check`: planted student solutions (tests/fixtures/solutions) each get the right verdict
and diagnosis; targets that cannot be loaded are one line; --time measures in processes."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest

import loopvec
from loopvec.checks import check
from loopvec.cli import main
from loopvec.diagnosis import (
    CHECK_M,
    CHECK_N,
    Expected,
    check_problem,
    describe_db,
    describe_dw,
    diagnose,
    large_z_problem,
)
from loopvec.runner.head_to_head import time_against
from loopvec.target import TargetError, load_target, of_function

SOLUTIONS = Path(__file__).parent / "fixtures" / "solutions"

#: solution file -> {check name: (status, words its detail must hold)}; the other checks pass
#: (cost: not applicable to the gradient signature).
PLANTED = {
    "vectorized": {},
    "loops": {},
    "refuses_float32": {"float32 inputs": ("pass", "refused clearly: TypeError")},
    "no_one_over_m": {"gradient": ("FAIL", "no 1/m: dw and db are sums, m = 37 times")},
    "m_minus_one": {"gradient": ("FAIL", "divided by m - 1 instead of m")},
    "sign": {"gradient": ("FAIL", "the sign of dZ: dw and db are negated")},
    "db_sum": {"gradient": ("FAIL", "db is a sum, np.sum(dZ), not the mean")},
    "bias_ignored": {"gradient": ("FAIL", "the bias is ignored")},
    "dw_row": {"shapes and types": ("FAIL", "dw has shape (1, n) = (1, 5), a row")},
    "x_transposed": {"runs": ("FAIL", "X transposed: given X as (m, n) = (37, 5)")},
    "in_place": {"inputs unchanged": ("FAIL", "X was changed in place")},
    "stateful": {  # its global grows with each call: every later call is wrong
        "large |z|": ("FAIL", "at z from -1000 to 1000: dw[0] = "),
        "float32 inputs": ("FAIL", "dw is wrong in a way no known mistake explains"),
        "same answer twice": ("FAIL", "keeps state between calls"),
    },
    "naive_sigmoid": {"large |z|": ("FAIL", "exp overflows at large |z|: take exp of -|z|")},
    "nan_sigmoid": {"large |z|": ("FAIL", "the sigmoid gives NaN: exp(z) overflows to inf")},
    "unknown": {"gradient": ("FAIL", "no known mistake matches\ndw[0] = ")},
    "raises": {"runs": ("FAIL", "raised NameError: name 'valeus' is not defined")},
}
#: Checks that only say "not applicable" after a failure of the kind planted.
NOT_APPLICABLE_AFTER = {
    "gradient": {"large |z|", "float32 inputs"},
    "runs": {"shapes and types", "gradient", "large |z|", "float32 inputs"}
    | {"inputs unchanged", "same answer twice"},
}


@pytest.mark.parametrize("name", list(PLANTED))
def test_planted_solution_gets_its_verdict_and_diagnosis(name: str) -> None:
    result = check(load_target(f"{SOLUTIONS / name}.py:gradient"))
    planted = PLANTED[name]
    skipped = set().union(*(NOT_APPLICABLE_AFTER.get(c, set()) for c in planted))
    for c in result.checks:
        if c.name in planted:
            status, words = planted[c.name]
            assert c.status == status, c
            assert words in c.detail, c
        else:
            assert c.status == ("n/a" if c.name in skipped | {"cost"} else "pass"), c
    assert bool(result) == all(status == "pass" for status, _ in planted.values())


def test_a_sign_error_is_not_reported_as_a_scale_error() -> None:
    problem = check_problem()
    expected = Expected.of(problem)
    words = diagnose(-expected.with_bias.dw, -expected.with_bias.db, expected)
    assert words == ["the sign of dZ: dw and db are negated (dZ = Y - A where it is A - Y)"]
    both = diagnose(-CHECK_M * expected.with_bias.dw, expected.with_bias.db, expected)
    assert both == [
        "the sign of dZ: dw is negated (dZ = Y - A where it is A - Y)",
        f"dw is not divided by m: it is m = {CHECK_M} times too large",
    ]


def test_mistakes_combine_and_each_part_is_named() -> None:
    expected = Expected.of(check_problem())
    unbiased = expected.without_bias
    words = diagnose(CHECK_M * unbiased.dw, CHECK_M * unbiased.db, expected)
    assert words == [
        f"no 1/m: dw and db are sums, m = {CHECK_M} times the mean (divide both by m)",
        "the bias is ignored: Z = w.T X, where it is Z = w.T X + b",
    ]
    assert diagnose(expected.with_bias.dw + 1.0, expected.with_bias.db, expected) == [
        "dw is wrong in a way no known mistake explains (see below)"
    ]


def test_the_propagate_signature_checks_the_cost_too() -> None:
    result = check(load_target(f"{SOLUTIONS}/propagate.py:propagate"), signature="propagate")
    assert result
    assert [c.status for c in result.checks] == ["pass"] * 8
    wrong_form = check(load_target(f"{SOLUTIONS}/propagate.py:propagate"))
    assert not wrong_form
    (shapes,) = [c for c in wrong_form.checks if c.name == "shapes and types"]
    assert "--signature propagate" in shapes.detail


def test_the_traceback_starts_in_the_users_file() -> None:
    result = check(load_target(f"{SOLUTIONS}/raises.py:gradient"))
    runs = result.checks[0]
    assert f'File "{SOLUTIONS}/raises.py", line 17, in total' in runs.traceback
    assert f'File "{SOLUTIONS}/raises.py", line 12, in gradient' in runs.traceback
    assert "loopvec" not in runs.traceback.replace(str(SOLUTIONS), "")


def test_the_check_problems_show_each_mistake() -> None:
    problem = check_problem()
    assert problem.n != problem.m
    assert problem.m & (problem.m - 1)  # not a power of two
    assert problem.b != 0
    assert {0.0, 1.0} < set(problem.Y[0])
    assert any(0 < y < 1 for y in problem.Y[0])
    z = large_z_problem()
    values = (z.w.T @ z.X + z.b)[0]
    np.testing.assert_allclose(sorted(values), np.linspace(-1000, 1000, CHECK_M), atol=1e-9)


@pytest.mark.parametrize(
    ("dw", "words"),
    [
        (np.zeros((1, CHECK_N)), "a row"),
        (np.zeros(CHECK_N), "a flat vector"),
        (np.zeros((CHECK_N, CHECK_M)), "broadcast where it should be summed"),
        (np.zeros((CHECK_M, 1)), "X is used transposed"),
        (np.zeros((CHECK_N, 1), dtype=int), "not a float dtype"),
        ([0.0] * CHECK_N, "dw is a list"),
        (np.zeros((CHECK_N, 1)), None),
    ],
)
def test_dw_shapes_are_named(dw: object, words: str | None) -> None:
    got = describe_dw(dw, CHECK_N, CHECK_M)
    assert got is None if words is None else words in (got or "")


@pytest.mark.parametrize(
    ("db", "words"),
    [
        (np.array([[0.5]]), "holding one number, not a number"),
        (np.zeros((1, CHECK_M)), "sum dZ over all examples"),
        (True, "a bool"),
        ("0.5", "a str"),
        (np.float64(0.5), None),
        (np.array(0.5), None),
        (1, None),
    ],
)
def test_db_types_are_named(db: object, words: str | None) -> None:
    got = describe_db(db)
    assert got is None if words is None else words in (got or "")


def test_a_float32_crash_is_not_a_clear_refusal(tmp_path: Path) -> None:
    source = tmp_path / "asserts.py"
    source.write_text(
        textwrap.dedent(
            f"""
            import sys
            sys.path.insert(0, {str(SOLUTIONS)!r})
            from vectorized import gradient as right

            def gradient(w, b, X, Y):
                assert X.dtype == "float64"
                return right(w, b, X, Y)
            """
        )
    )
    result = check(load_target(f"{source}:gradient"))
    (single,) = [c for c in result.checks if c.name == "float32 inputs"]
    assert single.status == "FAIL"
    assert "AssertionError" in single.detail
    assert "line 7, in gradient" in single.traceback


@pytest.mark.parametrize(
    ("source", "target", "words"),
    [
        (None, "missing.py:gradient", "missing.py: does not exist"),
        ("def gradient(w, b, X, Y)\n    pass\n", "bad.py:gradient", "bad.py, line 1: syntax error"),
        ("import os\nimport not_a_module_here\n", "bad.py:gradient", "bad.py, line 2: Module"),
        ("def helper():\n    pass\n", "bad.py:gradient", "has no function 'gradient' (the"),
        ("gradient = 3\n", "bad.py:gradient", "gradient is a int, not a function"),
        (None, "bad.py", "TARGET must be FILE.py:FUNCTION or MODULE:FUNCTION"),
        (None, "not_a_module_here:gradient", "no module named 'not_a_module_here'"),
    ],
)
def test_a_target_that_cannot_load_is_one_line(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    source: str | None,
    target: str,
    words: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    if source is not None:
        (tmp_path / "bad.py").write_text(source)
    with pytest.raises(TargetError) as error:
        load_target(target)
    assert words in str(error.value)
    assert main(["check", target]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert words in err


def test_an_importable_module_is_a_target(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "course_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "grad.py").write_text((SOLUTIONS / "loops.py").read_text())
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    target = load_target("course_pkg.grad:gradient")
    assert check(target)
    assert target.fingerprint == load_target(f"{package / 'grad.py'}:gradient").fingerprint


def test_cli_exit_status_and_output(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", f"{SOLUTIONS}/vectorized.py:gradient"]) == 0
    out = capsys.readouterr().out
    assert "7 passed, 0 failed, 1 not applicable: all checks pass" in out
    assert main(["check", f"{SOLUTIONS}/sign.py:gradient", "--time"]) == 1
    out = capsys.readouterr().out
    assert "FAIL  gradient           the sign of dZ" in out
    assert "not timed: a function that fails a check is never timed" in out


def test_the_result_prints_and_shows_in_a_notebook() -> None:
    def gradient(w, b, X, Y):  # type: ignore[no-untyped-def]  # a notebook's: <, > escaped
        return np.dot(X, (loopvec.gradient(w, b, X, Y)[0] * 0 + 1)), 0.0

    result = loopvec.check(gradient)
    assert not result
    assert result.failed
    assert str(result).splitlines()[0].startswith("loopvec check test_the_result_prints")
    page = result._repr_html_()
    assert "<table>" in page
    assert "&lt;locals&gt;" in page  # escaped
    assert "FAIL" in page


#: The bench's options that keep a timing test short (no timing is asserted).
QUICK = ["--benchmark-max-time=0.02", "--blocks=2", "--no-bandwidth"]


@pytest.mark.usefixtures("as_a_user_runs_it")
def test_time_measures_against_the_baselines_by_the_grid(tmp_path: Path) -> None:
    timing = time_against(
        load_target(f"{SOLUTIONS}/vectorized.py:gradient"),
        sizes=[10, 200],
        n=3,
        passes=2,
        results_dir=tmp_path,
        options=QUICK,
        say=lambda text: None,
    )
    assert timing.passes == 2
    assert timing.wall_s > 0
    assert Path(timing.folder).parent == tmp_path
    for size in timing.sizes:
        assert {"yours", "python_loops", "numpy_vectorized"} <= size.times.keys()
        assert {"python_loops", "numpy_vectorized"} <= size.speedups.keys()
        for estimate in size.speedups.values():
            assert 0 < estimate.low <= estimate.value <= estimate.high
        assert size.sentence().startswith(f"m = {size.m:,}, n = 3: yours ")
    assert "the loops" in str(timing)


@pytest.mark.usefixtures("as_a_user_runs_it")
def test_time_ships_a_function_defined_in_main(tmp_path: Path) -> None:
    script = tmp_path / "notebook.py"
    script.write_text(
        textwrap.dedent(
            """
            import numpy as np
            import loopvec

            def mine(w, b, X, Y):
                m = X.shape[1]
                e = np.exp(-np.abs(w.T @ X + b))
                A = np.where(w.T @ X + b >= 0, 1 / (1 + e), e / (1 + e))
                return X @ (A - Y).T / m, float(np.sum(A - Y)) / m

            result = loopvec.check(mine, time=True, sizes=[100], n=2, passes=2)
            print(result.timing.sizes[0].sentence())
            """
        )
    )
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, check=False, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert "m = 100, n = 2: yours" in done.stdout
    assert "the loops" in done.stdout


@pytest.mark.usefixtures("as_a_user_runs_it")
def test_a_function_wrong_at_a_timed_size_is_never_timed(tmp_path: Path) -> None:
    right = load_target(f"{SOLUTIONS}/vectorized.py:gradient").function

    def wrong_when_large(w, b, X, Y):  # type: ignore[no-untyped-def]
        dw, db = right(w, b, X, Y)
        return (dw * 2 if X.shape[1] >= 50 else dw), db

    timing = time_against(
        of_function(wrong_when_large), sizes=[10, 50], n=3, passes=2, results_dir=tmp_path,
        options=QUICK, say=lambda text: None,
    )  # fmt: skip
    small, large = timing.sizes
    assert "yours" in small.times
    assert "yours" not in large.times
    assert "DisagreementError" in large.skipped["yours"]
    assert large.sentence().startswith("m = 50, n = 3: yours not timed (")


#: A solution's first lines, to build on the right vectorized one: `right(w, b, X, Y)`.
RIGHT = (
    f"import sys\nsys.path.insert(0, {str(SOLUTIONS)!r})\n"
    "from vectorized import gradient as right\n"
)


def _checked(
    tmp_path: Path, source: str, signature: str = "gradient", *, on_right: bool = False
) -> dict[str, object]:
    """{check name: Check} of the function `gradient` (or `propagate`) in `source`, which
    starts with RIGHT where `on_right`."""
    path = tmp_path / "solution.py"
    path.write_text((RIGHT if on_right else "") + textwrap.dedent(source))
    result = check(load_target(f"{path}:{signature}"), signature=signature)
    return {c.name: c for c in result.checks}


def test_sys_exit_in_the_function_is_a_failure_not_a_pass(tmp_path: Path) -> None:
    checks = _checked(tmp_path, "import sys\ndef gradient(w, b, X, Y):\n    sys.exit(0)\n")
    assert checks["runs"].status == "FAIL"
    assert "raised SystemExit" in checks["runs"].detail
    (tmp_path / "exits.py").write_text("import sys\nsys.exit(0)\n")
    with pytest.raises(TargetError, match=r"line 2: SystemExit"):
        load_target(f"{tmp_path / 'exits.py'}:gradient")


def test_each_file_imports_its_own_neighbours(tmp_path: Path) -> None:
    for student, sigmoid in (("alice", "1 / (1 + np.exp(-z))"), ("bob", "0.5 + 0 * z")):
        folder = tmp_path / student
        folder.mkdir()
        (folder / "helper.py").write_text(
            f"import numpy as np\ndef sigmoid(z):\n    return {sigmoid}\n"
        )
        (folder / "solution.py").write_text(
            "import numpy as np\nfrom helper import sigmoid\n"
            "def gradient(w, b, X, Y):\n    dZ = sigmoid(w.T @ X + b) - Y\n"
            "    return X @ dZ.T / X.shape[1], float(np.sum(dZ)) / X.shape[1]\n"
        )
    before = set(sys.modules)
    alice = check(load_target(f"{tmp_path}/alice/solution.py:gradient"))
    bob = check(load_target(f"{tmp_path}/bob/solution.py:gradient"))
    assert [c.status for c in alice.checks][:3] == ["pass", "pass", "pass"]
    assert bob.checks[2].status == "FAIL"  # bob's sigmoid, not alice's
    assert "helper" not in set(sys.modules) - before


def test_a_result_of_the_wrong_form_is_not_a_float32_refusal(tmp_path: Path) -> None:
    checks = _checked(
        tmp_path,
        """
        def gradient(w, b, X, Y):
            return right(w, b, X, Y) if X.dtype == "float64" else None
        """,
        on_right=True,
    )
    assert checks["float32 inputs"].status == "FAIL"
    assert "ResultShapeError" in checks["float32 inputs"].detail


def test_state_in_an_array_returned_each_call_is_caught(tmp_path: Path) -> None:
    checks = _checked(
        tmp_path,
        """
        import numpy as np
        DW = np.zeros((5, 1))
        def gradient(w, b, X, Y):
            e = np.exp(-np.abs(w.T @ X + b))
            dZ = np.where(w.T @ X + b >= 0, 1 / (1 + e), e / (1 + e)) - Y
            DW[:] += X @ dZ.T / X.shape[1]  # never reset
            return DW, float(np.sum(dZ)) / X.shape[1]
        """,
    )
    assert checks["gradient"].status == "pass"
    assert checks["same answer twice"].status == "FAIL"


def test_a_cost_taking_log_of_zero_is_named_as_the_cost(tmp_path: Path) -> None:
    checks = _checked(
        tmp_path,
        """
        import numpy as np
        def propagate(w, b, X, Y):
            m = X.shape[1]
            Z = w.T @ X + b
            e = np.exp(-np.abs(Z))
            A = np.where(Z >= 0, 1 / (1 + e), e / (1 + e))
            cost = -np.sum(Y * np.log(A) + (1 - Y) * np.log(1 - A)) / m
            return {"dw": X @ (A - Y).T / m, "db": np.sum(A - Y) / m}, cost
        """,
        signature="propagate",
    )
    assert checks["gradient"].status == "pass"
    assert checks["cost"].status == "pass"
    assert checks["large |z|"].status == "FAIL"
    assert checks["large |z|"].detail.startswith("the cost takes log(0)")


def test_odd_results_are_named_not_crashed_on(tmp_path: Path) -> None:
    complex_dw = _checked(
        tmp_path, "import numpy as np\ndef gradient(w, b, X, Y):\n    return w * 1j, 0.0\n"
    )
    assert "not a real float dtype" in complex_dw["shapes and types"].detail
    assert complex_dw["gradient"].status == "n/a"
    reshaped = _checked(
        tmp_path,
        """
        def gradient(w, b, X, Y):
            result = right(w, b, X, Y)
            w.shape = (1, w.size)
            return result
        """,
        on_right=True,
    )
    assert "w was reshaped in place: (5, 1) is now (1, 5)" in reshaped["inputs unchanged"].detail


def test_a_gradient_close_but_beyond_the_tolerance_is_named(tmp_path: Path) -> None:
    checks = _checked(
        tmp_path,
        """
        def gradient(w, b, X, Y):
            dw, db = right(w, b, X, Y)
            return dw * (1 + 1e-9), db
        """,
        on_right=True,
    )
    assert "dw is close to the exact value but beyond the tolerance 1e-10" in (
        checks["gradient"].detail
    )


def test_timing_options_need_time_and_timing_failures_keep_the_checks() -> None:
    right = load_target(f"{SOLUTIONS}/vectorized.py:gradient")
    with pytest.raises(TypeError, match="sizes: options of the timing, which needs time=True"):
        check(right, sizes=[10])
    lock = threading.Lock()

    def unpicklable(w, b, X, Y):  # type: ignore[no-untyped-def]
        with lock:
            return right.function(w, b, X, Y)

    result = check(unpicklable, time=True, sizes=[10], passes=1)
    assert result
    assert result.timing is None
    assert "cannot be sent to the timing processes" in result.not_timed
    assert "not timed: " in str(result)
