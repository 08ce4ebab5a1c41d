"""Gradient descent with every backend: same model, the course's numbers, clear errors."""

from __future__ import annotations

import dataclasses
import gc
import math
import os
import signal
from functools import cache
from typing import Any

import exact
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

import loopvec
from loopvec.agreement import DisagreementError, check_training
from loopvec.backends import BACKENDS, get_backend
from loopvec.datasets import Dataset, breast_cancer
from loopvec.training import TrainingInterrupted, TrainResult, accuracy


@cache
def data() -> Dataset:
    return breast_cancer()


@cache
def reference_run(iterations: int = 1000) -> TrainResult:
    return loopvec.train(data().X, data().Y, learning_rate=0.5, iterations=iterations)


def test_every_backend_learns_the_same_model_on_breast_cancer(backend: str) -> None:
    # A Dask step is a round trip to the cluster (tens of ms): 100 steps show the same model.
    iterations = 100 if get_backend(backend).family == "dask" else 1000
    got = loopvec.train(
        data().X, data().Y, backend=backend, learning_rate=0.5, iterations=iterations
    )
    check_training(backend, got, reference_run(iterations))  # w, b, costs to rtol 1e-9
    assert got.iterations == iterations
    assert got.backend == backend


def test_every_compiled_loop_learns_the_same_model_on_breast_cancer(compiled_backend: str) -> None:
    got = loopvec.train(
        data().X, data().Y, backend=compiled_backend, learning_rate=0.5, iterations=1000,
        loop="compiled",
    )  # fmt: skip
    check_training(compiled_backend, got, reference_run())  # w, b, costs to rtol 1e-9
    assert (got.iterations, got.backend) == (1000, compiled_backend)


def test_every_compiled_loop_applies_the_l2_penalty_as_the_python_loop(
    compiled_backend: str,
) -> None:
    """The weight decay lambda / m w inside each compiled loop: a wrong term (its sign, its m,
    the bias penalized) learns another model than numpy's Python loop."""
    options = {"learning_rate": 0.5, "iterations": 300, "l2_penalty": 5.0, "w0": None}
    options["w0"] = np.linspace(-1, 1, data().n).reshape(-1, 1)  # every weight decays
    got = loopvec.train(data().X, data().Y, backend=compiled_backend, loop="compiled", **options)
    want = loopvec.train(data().X, data().Y, **options)
    check_training(compiled_backend, got, want)
    unpenalized = loopvec.train(data().X, data().Y, **{**options, "l2_penalty": 0.0})
    with pytest.raises(DisagreementError):  # the penalty is large enough to be seen
        check_training(compiled_backend, got, unpenalized)


def test_a_compiled_loop_stops_at_the_end_of_its_steps_on_ctrl_c() -> None:
    problem = loopvec.make_problem(40, 4, seed=2)
    calls = []

    def interrupt_at_two(steps: int) -> None:
        calls.append(steps)
        if len(calls) == 2:
            raise KeyboardInterrupt

    options = {"backend": "numba_fused", "iterations": 1000, "record_every": 30}
    with pytest.raises(TrainingInterrupted) as caught:
        loopvec.train(problem.X, problem.Y, **options, loop="compiled", progress=interrupt_at_two)
    partial = caught.value.result
    assert calls == [30, 30]  # progress after each call of the compiled loop, its steps done
    assert partial.iterations == 60
    assert len(partial.costs) == 2  # at steps 0 and 30
    python = loopvec.train(
        problem.X, problem.Y, backend="numba_fused", iterations=60, record_every=30
    )
    np.testing.assert_allclose(partial.w, python.w, rtol=1e-12)
    np.testing.assert_allclose(partial.costs, python.costs, rtol=1e-12)


def test_a_compiled_loop_catches_divergence_at_the_next_recorded_cost() -> None:
    with pytest.raises(loopvec.TrainingDiverged, match="not finite at iteration 100 "):
        loopvec.train(
            data().X, data().Y, backend="numba_fused", learning_rate=1e306, iterations=500,
            loop="compiled",
        )  # fmt: skip


def test_a_backend_without_a_compiled_loop_names_those_with_one() -> None:
    problem = loopvec.make_problem(10, 4, seed=0)
    having = [name for name, spec in BACKENDS.items() if spec.compiled_loop]
    assert {"numba_fused", "jax_grad", "torch_formula"} <= set(having)
    with pytest.raises(ValueError, match="'numpy_vectorized' has no compiled training loop") as e:
        loopvec.train(problem.X, problem.Y, loop="compiled")
    assert ", ".join(having) in str(e.value)
    with pytest.raises(ValueError, match="loop must be one of 'python', 'compiled'; got 'jit'"):
        loopvec.train(problem.X, problem.Y, backend="numba_fused", loop="jit")


def test_torch_compile_without_a_compiler_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    torch_support = pytest.importorskip("loopvec.backends._torch")
    monkeypatch.setattr(torch_support.shutil, "which", lambda _: None)
    problem = loopvec.make_problem(10, 4, seed=0)
    with pytest.raises(RuntimeError, match=r"torch\.compile needs a C\+\+ compiler for CPU code"):
        loopvec.train(problem.X, problem.Y, backend="torch_formula", loop="compiled")


def test_the_training_check_catches_a_different_model() -> None:
    want = reference_run()
    nudged = dataclasses.replace(want, w=want.w * (1 + 1e-8), backend="nudged")
    with pytest.raises(DisagreementError, match="nudged learned a different w"):
        check_training("nudged", nudged, want)


def test_the_courses_optimize_example() -> None:
    """The course's optimize(w, b, X, Y, num_iterations=100, learning_rate=0.009) test values."""
    example = loopvec.worked_example()
    result = loopvec.train(
        example.X, example.Y, w0=example.w, b0=example.b, learning_rate=0.009, iterations=100
    )
    np.testing.assert_allclose(result.w, [[0.19033591], [0.12259159]], rtol=1e-7)
    assert result.b == pytest.approx(1.92535983008, rel=1e-9)
    assert result.costs.tolist() == [pytest.approx(5.80154532, rel=1e-9)]  # as printed there
    first_cost = exact.cost(example.w, example.b, example.X, example.Y)
    assert result.costs[0] == pytest.approx(float(first_cost), rel=1e-14)


def test_the_recorded_cost_with_an_l2_penalty_is_the_loss_plus_the_penalty() -> None:
    """J = cross-entropy + lambda / (2 m) ||w||^2, recorded before the first step and at the end."""
    problem = loopvec.make_problem(200, 6, seed=4)
    w0, b0, penalty = np.linspace(-1.5, 2.0, 6).reshape(6, 1), 0.3, 2.5
    result = loopvec.train(
        problem.X, problem.Y, w0=w0, b0=b0, learning_rate=0.1, iterations=1, l2_penalty=penalty
    )
    start = exact.cost(w0, b0, problem.X, problem.Y, l2_penalty=penalty)
    assert start - exact.cost(w0, b0, problem.X, problem.Y) > 0.01  # the penalty counts
    assert result.costs.tolist() == [pytest.approx(float(start), rel=1e-13)]
    end = exact.cost(result.w, result.b, problem.X, problem.Y, l2_penalty=penalty)
    assert result.final_cost == pytest.approx(float(end), rel=1e-13)


def test_costs_are_recorded_every_record_every_iterations_from_the_start() -> None:
    problem = loopvec.make_problem(50, 3, seed=1)
    result = loopvec.train(problem.X, problem.Y, learning_rate=0.1, iterations=25, record_every=10)
    assert result.cost_iterations.tolist() == [0, 10, 20]
    assert result.costs[0] == pytest.approx(math.log(2), rel=1e-12)  # w = 0, b = 0: A = 1/2
    assert result.final_cost == pytest.approx(
        loopvec.loss(result.w, result.b, problem.X, problem.Y), rel=1e-12
    )


@pytest.mark.parametrize("dataset", ["breast_cancer", "synthetic"])
def test_with_a_small_learning_rate_the_cost_never_increases(dataset: str) -> None:
    source = data() if dataset == "breast_cancer" else loopvec.make_problem(2000, 20, seed=3)
    result = loopvec.train(source.X, source.Y, learning_rate=0.05, iterations=2000, record_every=1)
    # Never up by more than rounding: at the minimum the float64 cost can tick by an ulp.
    ulps = 2 * np.finfo(np.float64).eps * result.costs[1:]
    assert np.all(np.diff(result.costs) <= ulps)
    assert result.costs[-1] < result.costs[0]


@pytest.mark.parametrize("iterations", [1000, 20_000])
def test_with_the_l2_penalty_it_learns_scikit_learns_model(iterations: int) -> None:
    """The course's lambda / (2 m) ||w||^2 is scikit-learn's C = 1 / lambda, so both minimize
    one function: after 1000 steps accuracy is within a point and the cross-entropy within 5 %;
    after 20,000 steps gradient descent has reached scikit-learn's minimum."""
    result = loopvec.train(
        data().X, data().Y, learning_rate=0.5, iterations=iterations, l2_penalty=1
    )
    features, labels = data().X.T, data().Y[0]
    sklearn = LogisticRegression(C=1.0, tol=1e-12, max_iter=10_000).fit(features, labels)
    w_sklearn, b_sklearn = sklearn.coef_.T, float(sklearn.intercept_[0])
    ours = accuracy(result.w, result.b, data().X, data().Y)
    assert abs(ours - sklearn.score(features, labels)) <= 0.01
    ours_ce = loopvec.loss(result.w, result.b, data().X, data().Y)
    theirs_ce = loopvec.loss(w_sklearn, b_sklearn, data().X, data().Y)
    assert ours_ce == pytest.approx(theirs_ce, rel=0.05)
    if iterations == 20_000:
        assert ours_ce == pytest.approx(theirs_ce, rel=1e-7)
        np.testing.assert_allclose(result.w, w_sklearn, rtol=1e-5, atol=1e-5)  # the same model


def test_unpenalized_accuracy_is_within_one_point_of_scikit_learns() -> None:
    """The standardized data are separable: scikit-learn's unpenalized fit (C = inf, which
    replaces the deprecated penalty=None) classifies every example right, its weights growing
    without bound. Gradient descent gets within one percentage point of that; its cost keeps
    falling towards 0 and never matches the other's (~1e-12) in finite time."""
    features, labels = data().X.T, data().Y[0]
    sklearn = LogisticRegression(C=np.inf, tol=1e-10, max_iter=100_000).fit(features, labels)
    theirs = sklearn.score(features, labels)
    result = loopvec.train(
        data().X, data().Y, learning_rate=2.0, iterations=100_000, record_every=10_000
    )
    ours = accuracy(result.w, result.b, data().X, data().Y)
    assert theirs == 1.0
    assert abs(ours - theirs) <= 0.01
    assert np.all(np.diff(result.costs) < 0)


def test_a_too_large_learning_rate_stops_with_a_clear_error(backend: str) -> None:
    with pytest.raises(loopvec.TrainingDiverged) as caught:
        loopvec.train(data().X, data().Y, backend=backend, learning_rate=1e306, iterations=500)
    message = str(caught.value)
    assert "not finite at iteration 100" in message  # the first recorded cost after the overflow
    assert "last recorded cost was 0.693147 at iteration 0" in message
    assert "smaller learning_rate" in message
    assert isinstance(caught.value, ValueError)


def test_divergence_is_caught_at_the_end_too_never_returning_nan() -> None:
    with pytest.raises(loopvec.TrainingDiverged, match="not finite at iteration 3 "):
        loopvec.train(data().X, data().Y, learning_rate=1e306, iterations=3, record_every=100)


def test_training_never_modifies_its_inputs(backend: str) -> None:
    problem = loopvec.make_problem(40, 4, seed=2)
    copies = [problem.w.copy(), problem.X.copy(), problem.Y.copy()]
    loopvec.train(problem.X, problem.Y, backend=backend, w0=problem.w, iterations=5)
    for before, after in zip(copies, [problem.w, problem.X, problem.Y], strict=True):
        np.testing.assert_array_equal(before, after)


def test_ctrl_c_keeps_what_was_learned() -> None:
    problem = loopvec.make_problem(40, 4, seed=2)
    steps = []

    def interrupt_at_five(step: int) -> None:
        steps.append(step)
        if len(steps) == 5:
            raise KeyboardInterrupt

    with pytest.raises(TrainingInterrupted) as caught:
        loopvec.train(problem.X, problem.Y, iterations=1000, progress=interrupt_at_five)
    partial = caught.value.result
    assert partial.iterations == 5
    full = loopvec.train(problem.X, problem.Y, iterations=5)
    np.testing.assert_array_equal(partial.w, full.w)
    assert partial.b == full.b


@pytest.mark.usefixtures("sigint_as_a_terminal_sets_it")  # as a terminal's, not CI's
def test_ctrl_c_inside_a_step_takes_effect_after_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """A step that updates w in place (as torch's optimizers do) is never cut in half: the
    weights and their count stay together."""
    problem = loopvec.make_problem(40, 4, seed=2)
    steps = []

    def in_place(w: Any, b: Any, X: Any, Y: Any, rate: float, decay: float) -> Any:
        def advance(w: Any, b: Any, count: int) -> tuple[Any, Any]:
            w -= 1.0  # half the step ...
            steps.append(count)
            if len(steps) == 3:
                os.kill(os.getpid(), signal.SIGINT)
            w -= 1.0  # ... and the other half
            return w, b

        return advance, w.copy(), b

    monkeypatch.setattr("loopvec.training.get_loop", lambda backend, loop: in_place)
    with pytest.raises(TrainingInterrupted) as caught:
        loopvec.train(problem.X, problem.Y, w0=problem.w, iterations=1000)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored
    partial = caught.value.result
    assert partial.iterations == 3
    np.testing.assert_allclose(partial.w, problem.w - 6.0, rtol=1e-15)  # 3 whole steps


@pytest.mark.usefixtures("sigint_as_a_terminal_sets_it")  # as a terminal's, not CI's
@pytest.mark.parametrize("where", ["__del__", "gc callback"])
def test_a_second_ctrl_c_where_python_drops_exceptions_prints_no_traceback(
    where: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Dask's futures release themselves in `__del__`, and distributed watches the garbage
    collector: a KeyboardInterrupt raised in either is printed and lost. The second Ctrl-C then
    waits, and the first ends the run after its step."""
    problem = loopvec.make_problem(40, 4, seed=2)
    steps = []

    def second_ctrl_c(*args: object) -> None:
        os.kill(os.getpid(), signal.SIGINT)

    class Future:
        __del__ = second_ctrl_c

    def finalizing(w: Any, b: Any, X: Any, Y: Any, rate: float, decay: float) -> Any:
        def advance(w: Any, b: Any, count: int) -> tuple[Any, Any]:
            steps.append(count)
            if len(steps) == 3:
                os.kill(os.getpid(), signal.SIGINT)
                if where == "__del__":
                    Future()  # made and finalized at once
                else:
                    gc.callbacks.append(second_ctrl_c)
                    gc.collect()
                    gc.callbacks.remove(second_ctrl_c)
            return w - 1.0, b

        return advance, w.copy(), b

    monkeypatch.setattr("loopvec.training.get_loop", lambda backend, loop: finalizing)
    with pytest.raises(TrainingInterrupted) as caught:  # and no "Exception ignored in"
        loopvec.train(problem.X, problem.Y, w0=problem.w, iterations=1000)
    assert caught.value.result.iterations == 3


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"learning_rate": 0}, ValueError, "learning_rate must be a finite number > 0; got 0.0"),
        ({"learning_rate": float("nan")}, ValueError, "learning_rate must be a finite number"),
        ({"learning_rate": "0.1"}, TypeError, "learning_rate must be a real number; got str"),
        ({"iterations": 0}, ValueError, "iterations must be a positive integer; got 0"),
        ({"iterations": 10.0}, TypeError, "iterations must be a positive integer; got float"),
        ({"iterations": True}, TypeError, "iterations must be a positive integer; got bool"),
        ({"record_every": -1}, ValueError, "record_every must be a positive integer; got -1"),
        ({"l2_penalty": -1}, ValueError, "l2_penalty must be a finite number >= 0; got -1.0"),
        ({"w0": np.zeros((3, 1))}, ValueError, "w0 must have shape (n, 1) = (4, 1)"),
        ({"w0": np.full((4, 1), np.inf)}, ValueError, "w0 must be finite; got inf at index (0, 0)"),
        ({"b0": "1"}, TypeError, "b0 must be a real scalar"),
        ({"b0": float("nan")}, ValueError, "b0 must be finite; got nan"),
        ({"backend": "numpy"}, ValueError, "backend must be one of python_loops"),
    ],
)
def test_bad_arguments_name_themselves(options: dict, error: type, message: str) -> None:  # type: ignore[type-arg]
    problem = loopvec.make_problem(10, 4, seed=0)
    with pytest.raises(error) as caught:
        loopvec.train(problem.X, problem.Y, **options)
    assert message in str(caught.value)


def test_bad_labels_are_checked_once_up_front() -> None:
    problem = loopvec.make_problem(10, 4, seed=0)
    with pytest.raises(ValueError, match=r"Y must have shape \(1, m\) = \(1, 10\)"):
        loopvec.train(problem.X, problem.Y[:, :5])


def test_predict_gives_the_courses_labels() -> None:
    """The course's predict test: w = [[0.1124579], [0.23106775]], b = -0.3."""
    w = np.array([[0.1124579], [0.23106775]])
    X = np.array([[1.0, -1.1, -3.2], [1.2, 2.0, 0.1]])
    labels = loopvec.predict(w, -0.3, X)
    assert labels.tolist() == [[1, 1, 0]]
    assert labels.dtype == np.int64
    assert accuracy(w, -0.3, X, np.array([[1, 0, 0]])) == pytest.approx(2 / 3)


def test_predict_checks_its_inputs() -> None:
    with pytest.raises(ValueError, match=r"w must have shape \(n, 1\) = \(2, 1\)"):
        loopvec.predict(np.zeros((3, 1)), 0.0, np.zeros((2, 5)))
