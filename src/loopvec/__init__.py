"""loopvec: loops vs vectorization vs JIT for the logistic-regression gradient, measured."""

from typing import TYPE_CHECKING

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
    "BenchResults",
    "CheckResult",
    "Problem",
    "TrainResult",
    "TrainingDiverged",
    "TrainingInterrupted",
    "__version__",
    "available_backends",
    "backend_names",
    "bench",
    "check",
    "gradient",
    "loss",
    "make_problem",
    "predict",
    "register",
    "train",
    "worked_example",
]


if TYPE_CHECKING:  # loaded on first use (`__getattr__`)
    from loopvec.benchmark import BenchResults, bench


def __getattr__(name: str) -> object:
    """`bench` and `BenchResults` load the analysis (scipy) only when asked for."""
    if name in {"bench", "BenchResults"}:
        from loopvec import benchmark  # noqa: PLC0415

        return getattr(benchmark, name)
    raise AttributeError(f"module 'loopvec' has no attribute {name!r}")


# Last: a plug-in's spec module imports loopvec and needs its names (loopvec.Backend).
discover_plugins()
