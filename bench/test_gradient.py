"""The gradient grid (loopvec/suite/test_gradient.py), as `pytest bench/test_gradient.py`."""

from loopvec.suite.test_gradient import test_gradient

__all__ = ["test_gradient"]
