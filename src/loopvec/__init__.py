"""loopvec: loops vs vectorization vs JIT for the logistic-regression gradient, measured."""

from loopvec.backends import available_backends, backend_names
from loopvec.checks import CheckResult, check
from loopvec.logistic import gradient, loss
from loopvec.problem import Problem, make_problem, worked_example
from loopvec.training import TrainingDiverged, TrainingInterrupted, TrainResult, predict, train

__version__ = "0.1.0"

__all__ = [
    "CheckResult",
    "Problem",
    "TrainResult",
    "TrainingDiverged",
    "TrainingInterrupted",
    "__version__",
    "available_backends",
    "backend_names",
    "check",
    "gradient",
    "loss",
    "make_problem",
    "predict",
    "train",
    "worked_example",
]
