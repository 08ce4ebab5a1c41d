"""The training benchmark (loopvec/suite/test_training.py), as `pytest bench/test_training.py`."""

from loopvec.suite.test_training import test_training

__all__ = ["test_training"]
