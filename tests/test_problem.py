"""Synthetic problems are seeded, shaped like the course, and learnable."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_array_equal

import loopvec


def test_shapes_follow_the_course_layout() -> None:
    p = loopvec.make_problem(m=7, n=3)
    assert (p.X.shape, p.Y.shape, p.w.shape, p.m, p.n) == ((3, 7), (1, 7), (3, 1), 7, 3)
    assert isinstance(p.b, float)
    assert set(np.unique(p.Y)) <= {0.0, 1.0}


def test_same_seed_same_problem_other_seed_other_problem() -> None:
    a, b, c = (loopvec.make_problem(50, 4, seed=s) for s in (1, 1, 2))
    assert_array_equal(a.X, b.X)
    assert_array_equal(a.Y, b.Y)
    assert not np.array_equal(a.X, c.X)


def test_labels_are_learnable() -> None:
    # Plain gradient descent must bring the loss well below log 2, the loss of a coin toss.
    p = loopvec.make_problem(2000, 5, seed=0)
    w, b = np.zeros((5, 1)), 0.0
    for _ in range(300):
        dw, db = loopvec.gradient(w, b, p.X, p.Y)
        w, b = w - 1.0 * dw, b - 1.0 * db
    assert loopvec.loss(w, b, p.X, p.Y) < 0.9 * np.log(2)
    assert 0.1 < p.Y.mean() < 0.9


@pytest.mark.parametrize(
    ("m", "n", "error", "message"),
    [
        (0, 3, ValueError, "m must be a positive integer; got 0"),
        (3, -1, ValueError, "n must be a positive integer; got -1"),
        (2.5, 3, TypeError, "m must be a positive integer; got float 2.5"),
        (3, "4", TypeError, "n must be a positive integer; got str '4'"),
        (True, 3, TypeError, "m must be a positive integer; got bool"),
    ],
)
def test_bad_sizes_are_refused(m: object, n: object, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        loopvec.make_problem(m, n)  # type: ignore[arg-type]
