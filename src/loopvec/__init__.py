"""loopvec: loops vs vectorization vs JIT for the logistic-regression gradient, measured."""

from loopvec.backends import (
    Backend,
    available_backends,
    backend_names,
    discover_plugins,
    register,
)
from loopvec.checks import CheckResult, check
from loopvec.logistic import gradient, loss
from loopvec.problem import Problem, make_problem, worked_example
from loopvec.training import TrainingDiverged, TrainingInterrupted, TrainResult, predict, train

__version__ = "0.1.0"

__all__ = [
    "Backend",
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
    "register",
    "train",
    "worked_example",
]

# Last: a plug-in's spec module imports loopvec and needs its names (loopvec.Backend).
discover_plugins()
