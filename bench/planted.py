"""A planted slowdown for `nox -s aa`: the lesson's gradient (numpy_vectorized's kernel) computed
`REPEATS` times. With 10 instead of 9 it does 11 % more work, a true 10 % slowdown, which both
ways of comparing (two separate runs; two versions in one run) must call slower.

    pytest bench --backend planted=bench/planted.py:gradient
"""

from loopvec.backends.numpy_vectorized import gradient as lesson_gradient

REPEATS = 9


def gradient(w, b, X, Y):  # type: ignore[no-untyped-def]
    """(dw, db) as numpy_vectorized gives them, computed REPEATS times."""
    for _ in range(REPEATS):
        result = lesson_gradient(w, b, X, Y)
    return result
