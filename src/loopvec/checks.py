"""`loopvec.check(function)`: is someone's gradient right, and if not, what is wrong with it?

The checks, in order, each a line of the result (pass, FAIL with why, or n/a with why not):

    runs                 it returns on the check problem (else the user's own traceback)
    shapes and types     dw an (n, 1) float array, db a real number
    gradient             agrees with the exact gradient (else which known mistake it shows)
    large |z|            the same at z from -1000 to 1000: no overflow, NaN or warning
    float32 inputs       within float32's tolerance, or a refusal that names the dtype
    inputs unchanged     w, X and Y are as they were
    same answer twice    a second call gives the first call's answer
    cost                 (propagate) the cost agrees with loopvec.loss

Every call gets copies of the problem, so one call's mistakes cannot reach the next.
"""

from __future__ import annotations

import copy
import dataclasses
import html
import math
import traceback
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from loopvec.agreement import RTOL_FLOAT32, RTOL_FLOAT64, Reference
from loopvec.diagnosis import (
    MATCH_RTOL,
    Expected,
    as_column,
    as_number,
    check_problem,
    describe_db,
    describe_dw,
    diagnose,
    first_disagreement,
    large_z_problem,
)
from loopvec.logistic import loss
from loopvec.problem import Problem
from loopvec.target import (
    SIGNATURES,
    ResultShapeError,
    Target,
    UserFunction,
    call_as_gradient,
    of_function,
)

Status = Literal["pass", "FAIL", "n/a"]
#: Why a function that fails a check has no timing (`check(..., time=True)`, `loopvec check`).
NEVER_TIMED = "a function that fails a check is never timed"
#: The checks, in the order they are reported.
NAMES = (
    "runs",
    "shapes and types",
    "gradient",
    "large |z|",
    "float32 inputs",
    "inputs unchanged",
    "same answer twice",
    "cost",
)
#: loopvec's own files: left out of the traceback a user is shown.
_PACKAGE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Check:
    """One line of the result: a check's name, its status and why (`detail`); `traceback` is
    the user's own where the function raised."""

    name: str
    status: Status
    detail: str
    traceback: str = ""


@dataclass(frozen=True)
class CheckResult:
    """The checks of one function. True only when no check failed (and it ran at all)."""

    label: str
    signature: str
    checks: tuple[Check, ...]
    fingerprint: str = ""
    #: filled in by time=True (`loopvec.runner.head_to_head.HeadToHead`) if the checks pass;
    #: else `not_timed` says why it is None
    timing: Any = field(default=None, compare=False)
    not_timed: str = ""

    def __bool__(self) -> bool:
        return all(c.status != "FAIL" for c in self.checks) and bool(self.checks)

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if c.status == "FAIL"]

    def summary(self) -> str:
        counts = {s: sum(c.status == s for c in self.checks) for s in ("pass", "FAIL", "n/a")}
        verdict = "all checks pass" if self else "NOT RIGHT YET"
        return (
            f"{counts['pass']} passed, {counts['FAIL']} failed, {counts['n/a']} not applicable: "
            f"{verdict}"
        )

    def __str__(self) -> str:
        lines = [f"loopvec check {self.label}: called as {SIGNATURES[self.signature]}"]
        for c in self.checks:
            first, *rest = c.detail.splitlines() or [""]
            lines.append(f"  {c.status:4}  {c.name:18} {first}")
            lines += [f"{'':27}{line}" for line in [*rest, *c.traceback.rstrip().splitlines()]]
        lines.append(self.summary())
        if self.timing is not None:
            lines.append(str(self.timing))
        if self.not_timed:
            lines.append(f"not timed: {self.not_timed}")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        colour = {"pass": "#1a7f37", "FAIL": "#cf222e", "n/a": "#6e7781"}
        rows = "".join(
            f"<tr><td style='color:{colour[c.status]};font-weight:bold'>{c.status}</td>"
            f"<td>{html.escape(c.name)}</td><td style='text-align:left'>"
            f"{html.escape(c.detail).replace(chr(10), '<br>')}"
            + (f"<pre>{html.escape(c.traceback)}</pre>" if c.traceback else "")
            + "</td></tr>"
            for c in self.checks
        )
        timing = "".join(
            f"<pre>{html.escape(text)}</pre>"
            for text in (str(self.timing) if self.timing is not None else "", self.not_timed)
            if text
        )
        return (
            f"<div><p><b>loopvec check</b> {html.escape(self.label)}: called as "
            f"<code>{html.escape(SIGNATURES[self.signature])}</code></p>"
            f"<table>{rows}</table><p><b>{html.escape(self.summary())}</b></p>{timing}</div>"
        )


@dataclass
class _Call:
    """One call of the user's function on copies of a problem: what it returned (copied at
    once, so that a later call cannot change it) or raised, the warnings it gave, and the copies
    of the inputs as the call left them."""

    inputs: Problem
    dw: Any = None
    db: Any = None
    cost: Any = None
    error: BaseException | None = None
    warned: list[str] = field(default_factory=list)


def _call(function: UserFunction, signature: str, problem: Problem) -> _Call:
    inputs = Problem(problem.w.copy(), problem.b, problem.X.copy(), problem.Y.copy())
    result = _Call(inputs)
    # Underflow to 0 is the right answer at large |z| (numpy ignores it by default too).
    with (
        warnings.catch_warnings(record=True) as caught,
        np.errstate(over="warn", invalid="warn", divide="warn", under="ignore"),
    ):
        warnings.simplefilter("always")
        try:
            returned = call_as_gradient(function, signature, inputs.w, inputs.b, inputs.X, inputs.Y)
            result.dw, result.db, result.cost = _copied(returned)
        except KeyboardInterrupt:
            raise
        except BaseException as error:  # the user's, SystemExit too: shown with their traceback
            result.error = error
    result.warned = [f"{w.category.__name__}: {w.message}" for w in caught]
    return result


def _copied(values: tuple[Any, ...]) -> tuple[Any, ...]:
    """Deep copies where they can be made: a function that returns one array it keeps and
    changes would otherwise change what an earlier call returned."""
    try:
        return copy.deepcopy(values)
    except Exception:  # an object that cannot be copied is read as it is
        return values


def user_traceback(error: BaseException) -> str:
    """The traceback of `error` without loopvec's own frames: it starts in the user's code."""
    summary = traceback.TracebackException.from_exception(error)
    summary.stack = traceback.StackSummary.from_list(
        [f for f in summary.stack if not Path(f.filename).resolve().is_relative_to(_PACKAGE)]
    )
    return "".join(summary.format())


def _raised(name: str, error: BaseException, hint: str = "") -> Check:
    said = f"raised {type(error).__name__}: {error}".splitlines()[0]
    return Check(name, "FAIL", said + (f"\n{hint}" if hint else ""), user_traceback(error))


def _values(call: _Call, n: int) -> tuple[Any, Any]:
    """(dw as an (n, 1) column, db as a float), each None where the value cannot be one."""
    return as_column(call.dw, n), as_number(call.db)


def _agreement(
    name: str,
    call: _Call,
    problem: Problem,
    rtol: float,
    *,
    diagnosed: bool = True,
) -> Check:
    """Do the call's values agree with the exact gradient of `problem`? If not, the known
    mistake they show (where `diagnosed`), and the first entry that is off."""
    reference = Reference.of(problem)
    dw, db = _values(call, problem.n)
    if dw is None or db is None:
        return Check(name, "n/a", "dw and db cannot be read as n real numbers and one")
    off = first_disagreement(dw, db, reference, rtol)
    if not (np.all(np.isfinite(dw)) and math.isfinite(db)):
        return Check(name, "FAIL", f"NaN or inf in the result\n{off}")
    error_dw = np.abs(dw - reference.dw) / (reference.scale_dw + reference.atol_dw)
    error_db = abs(db - reference.db) / (reference.scale_db + reference.atol_db)
    error = float(max(error_dw.max(), error_db))
    if error <= rtol:
        agrees = f"agrees with the exact gradient (relative error {error:.1g}, tolerance {rtol:g})"
        return Check(name, "pass", agrees)
    if not diagnosed:
        return Check(name, "FAIL", off)
    mistakes = diagnose(dw, db, Expected.of(problem), rtol)
    return Check(name, "FAIL", "\n".join([*(mistakes or ["no known mistake matches"]), off]))


def _shapes(call: _Call, problem: Problem) -> Check:
    wrong = [
        why
        for why in (describe_dw(call.dw, problem.n, problem.m), describe_db(call.db))
        if why is not None
    ]
    if wrong:
        return Check("shapes and types", "FAIL", "\n".join(wrong))
    described = f"dw {call.dw.shape} {call.dw.dtype}, db {type(call.db).__name__}"
    return Check("shapes and types", "pass", described)


def _transposed_hint(function: UserFunction, signature: str, problem: Problem) -> str:
    """Does the function work on X as (m, n), examples x features? Then that is the mistake."""
    swapped = Problem(problem.w, problem.b, np.ascontiguousarray(problem.X.T), problem.Y)
    attempt = _call(function, signature, swapped)
    dw, db = _values(attempt, problem.n)
    if attempt.error is None and dw is not None and db is not None:
        reference = Reference.of(problem)
        close = np.abs(dw - reference.dw) <= MATCH_RTOL * (reference.scale_dw + reference.atol_dw)
        if np.all(close):
            return (
                f"X transposed: given X as (m, n) = ({problem.m}, {problem.n}) it returns the "
                f"right gradient; loopvec's X, the course's, is (n, m) = ({problem.n}, "
                f"{problem.m}), features x examples"
            )
    return ""


def _new_runtime_warnings(call: _Call, first: _Call) -> list[str]:
    """The RuntimeWarnings of `call` that the first call (ordinary z) did not give."""
    return sorted(
        {w for w in call.warned if w.startswith("RuntimeWarning") and w not in first.warned}
    )


def _why_warned(warned: list[str], signature: str) -> str:
    """What the warnings at large |z| say about the code, in its words."""
    text = " ".join(warned)
    if signature == "propagate" and "in log" in text:
        return (
            "the cost takes log(0): A is exactly 0 or 1 at large |z|, so log(A) or "
            "log(1 - A) is -inf (compute it from Z: np.logaddexp(0, Z) - Y * Z)"
        )
    if "overflow" in text and "invalid value" in text:
        return (
            "the sigmoid gives NaN: exp(z) overflows to inf, and inf / inf is NaN at z = 1000"
            "\n(take exp of -|z| only)"
        )
    if "overflow" in text and "exp" in text:
        return (
            "exp overflows at large |z|: take exp of -|z| only\n(1 / (1 + np.exp(-z)) takes "
            "exp(1000) at z = -1000, and np.where computes both of its branches)"
        )
    return "a warning at large |z|, where a stable sigmoid gives none"


def _large_z(function: UserFunction, signature: str, first: _Call, gradient_wrong: bool) -> Check:
    """The sigmoid's check: z from -1000 to 1000 must give no error, new warning or NaN, and
    the right values once they are right at ordinary z (else they repeat that mistake)."""
    name, problem = "large |z|", large_z_problem()
    call = _call(function, signature, problem)
    if call.error is not None:
        hint = (
            "the sigmoid overflows: exp of a large number (take exp of -|z| only)"
            if isinstance(call.error, OverflowError | FloatingPointError)
            else ""
        )
        return _raised(name, call.error, hint)
    if gradient_wrong:  # the values repeat the first problem's mistake: NaN still tells
        values = _finite(call, problem.n)
    else:  # right at ordinary z: a known mistake matching here would be by chance
        values = _agreement(name, call, problem, RTOL_FLOAT64, diagnosed=False)
    if warned := _new_runtime_warnings(call, first):
        right = {
            "FAIL": values.detail,
            "n/a": values.detail,
            "pass": "values checked once the gradient is right"
            if gradient_wrong
            else "values right",
        }[values.status]
        return Check(
            name, "FAIL", f"{_why_warned(warned, signature)}\n{'; '.join(warned)}\n{right}"
        )
    if values.status == "FAIL":
        return Check(name, "FAIL", f"at z from -1000 to 1000: {values.detail}")
    if gradient_wrong:
        return Check(name, "n/a", "finite, no warning; values checked once the gradient is right")
    return Check(name, values.status, f"z from -1000 to 1000, no warning\n{values.detail}")


def _finite(call: _Call, n: int) -> Check:
    dw, db = _values(call, n)
    if dw is None or db is None:
        return Check("", "n/a", "dw and db cannot be read as numbers")
    if np.all(np.isfinite(dw)) and math.isfinite(db):
        return Check("", "pass", "finite")
    return Check("", "FAIL", "NaN or inf in dw or db at large |z|")


def _float32(
    function: UserFunction, signature: str, problem: Problem, gradient_wrong: bool
) -> Check:
    name, single = "float32 inputs", problem.astype("float32")
    call = _call(function, signature, single)
    error = call.error
    if isinstance(error, TypeError | ValueError) and not isinstance(error, ResultShapeError):
        if any(word in str(error).lower() for word in ("float32", "float64", "dtype")):
            return Check(name, "pass", f"refused clearly: {type(error).__name__}: {error}")
        return _raised(name, error, "a refusal of float32 inputs should name the dtype")
    if error is not None:
        return _raised(name, error)
    if gradient_wrong:
        return Check(name, "n/a", "returned; values checked once the gradient is right")
    return _agreement(name, call, single, RTOL_FLOAT32)


def _unchanged(call: _Call, problem: Problem) -> Check:
    changed = []
    for name in ("w", "X", "Y"):
        before, after = getattr(problem, name), getattr(call.inputs, name)
        if before.shape != after.shape:
            changed.append(f"{name} was reshaped in place: {before.shape} is now {after.shape}")
        elif not np.array_equal(before, after, equal_nan=True):
            index = tuple(int(k) for k in np.argwhere(before != after)[0])
            changed.append(
                f"{name} was changed in place: {name}[{index[0]}, {index[1]}] was "
                f"{float(before[index])!r}, is {float(after[index])!r} after the call"
            )
    if changed:
        why = (
            "(an in-place operation such as X -= ..., or an array assigned and then written "
            "to: copy before changing)"
        )
        return Check("inputs unchanged", "FAIL", "\n".join([*changed, why]))
    return Check("inputs unchanged", "pass", "w, X and Y are as they were")


def _twice(first: _Call, function: UserFunction, signature: str, problem: Problem) -> Check:
    second = _call(function, signature, problem)
    name = "same answer twice"
    if second.error is not None:
        return _raised(name, second.error, "the first call returned, the second raised")
    (dw1, db1), (dw2, db2) = _values(first, problem.n), _values(second, problem.n)
    if dw1 is None or db1 is None or dw2 is None or db2 is None:
        return Check(name, "n/a", "dw and db cannot be read as numbers")
    if np.array_equal(np.append(dw1, db1), np.append(dw2, db2), equal_nan=True):
        return Check(name, "pass", "a second call on the same inputs gives the same bits")
    j = int(np.argmax(np.abs(dw1 - dw2)[:, 0]))
    return Check(
        name,
        "FAIL",
        f"the second call returned dw[{j}] = {float(dw2[j, 0])!r}, db = {db2!r} where the "
        f"first returned {float(dw1[j, 0])!r}, {db1!r}\nit keeps state between calls (a "
        "global, a mutable default argument, an input changed in place)",
    )


def _cost(call: _Call, problem: Problem) -> Check:
    name = "cost"
    cost = as_number(call.cost)
    if cost is None:
        return Check(name, "FAIL", f"cost is a {type(call.cost).__name__}, not one number")
    want = loss(problem.w, problem.b, problem.X, problem.Y)
    if abs(cost - want) <= RTOL_FLOAT64 * abs(want):
        return Check(name, "pass", f"agrees with loopvec.loss: {want:.12g}")
    off = f"cost = {cost!r} where the exact value is {want!r}"
    for factor, why in (
        (problem.m, "the cost is a sum, not the mean: divide by m"),
        (-1.0, "the cost has the wrong sign: it is -mean(Y log A + (1 - Y) log(1 - A))"),
    ):
        if abs(cost - factor * want) <= MATCH_RTOL * abs(factor * want):
            return Check(name, "FAIL", f"{why}\n{off}")
    return Check(name, "FAIL", off)


def check(
    function: UserFunction | Target,
    *,
    signature: str = "gradient",
    time: bool = False,
    sizes: Sequence[int] | None = None,
    n: int | None = None,
    threads: int | None = None,
    passes: int | None = None,
    budget_s: float | None = None,
) -> CheckResult:
    """Check `function` (w, b, X, Y) -> (dw, db), or in the course's `propagate` form with
    signature="propagate", against the exact gradient and the known mistakes.

    time=True then times it, if every check passed, against the loops, numpy and the fastest
    backend here (`loopvec.runner.head_to_head.time_against`, with sizes (m values), n,
    threads, passes and budget_s where given): the result's `timing`."""
    if signature not in SIGNATURES:
        raise ValueError(f"signature must be one of {', '.join(SIGNATURES)}; got {signature!r}")
    options = {"sizes": sizes, "n": n, "threads": threads, "passes": passes, "budget_s": budget_s}
    given: dict[str, Any] = {key: value for key, value in options.items() if value is not None}
    if given and not time:
        raise TypeError(f"{', '.join(given)}: options of the timing, which needs time=True")
    target = function if isinstance(function, Target) else of_function(function)
    checks = tuple(_checks(target.function, signature))
    result = CheckResult(target.label, signature, checks, target.fingerprint)
    if not time:
        return result
    if not result:
        return dataclasses.replace(result, not_timed=NEVER_TIMED)
    from loopvec.runner.head_to_head import TimingError, time_against  # noqa: PLC0415

    try:
        timing = time_against(target, signature, **given)
    except TimingError as error:  # the checks stand; the timing says why it is missing
        return dataclasses.replace(result, not_timed=str(error))
    return dataclasses.replace(result, timing=timing)


def _checks(f: UserFunction, signature: str) -> list[Check]:
    problem = check_problem()
    size = f"n = {problem.n} features x m = {problem.m} examples, b = {problem.b}"
    first = _call(f, signature, problem)
    if isinstance(first.error, ResultShapeError):  # it returned, but not (dw, db)
        return [
            Check("runs", "pass", f"returned on {size}"),
            Check("shapes and types", "FAIL", str(first.error)),
            *(Check(name, "n/a", "it returned no (dw, db)") for name in NAMES[2:]),
        ]
    if first.error is not None:
        return [
            _raised("runs", first.error, _transposed_hint(f, signature, problem)),
            *(Check(name, "n/a", "it did not return on the check problem") for name in NAMES[1:]),
        ]
    gradient = _agreement("gradient", first, problem, RTOL_FLOAT64)
    wrong = gradient.status != "pass"
    warned = f" (warned: {'; '.join(first.warned)})" if first.warned else ""
    return [
        Check("runs", "pass", f"returned on {size}{warned}"),
        _shapes(first, problem),
        gradient,
        _large_z(f, signature, first, wrong),
        _float32(f, signature, problem, wrong),
        _unchanged(first, problem),
        _twice(first, f, signature, problem),
        _cost(first, problem)
        if signature == "propagate"
        else Check("cost", "n/a", "the gradient signature returns no cost"),
    ]
