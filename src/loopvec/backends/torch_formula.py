"""The lesson's vectorized formula written with torch operations, no autograd.

    Z = w.T X + b;  A = sigmoid(Z);  dZ = A - Y;  dw = X dZ.T / m;  db = sum(dZ) / m

torch.sigmoid is computed stably; torch.from_numpy shares memory with the numpy inputs, so moving
them in costs nothing and changes nothing.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from loopvec.backends import descent_step
from loopvec.backends._loop import Advance
from loopvec.backends._torch import compiled


def to_native(
    w: NDArray[Any], b: float, X: NDArray[Any], Y: NDArray[Any]
) -> tuple[torch.Tensor, float, torch.Tensor, torch.Tensor]:
    """numpy inputs as CPU tensors sharing their memory (done before timing)."""
    return torch.from_numpy(w), float(b), torch.from_numpy(X), torch.from_numpy(Y)


def to_numpy(result: tuple[torch.Tensor, torch.Tensor]) -> tuple[NDArray[np.floating], float]:
    dw, db = result
    return dw.detach().numpy(), float(db)


def gradient(
    w: torch.Tensor, b: float, X: torch.Tensor, Y: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """dw (n, 1) and db (0-d tensor) of the mean cross-entropy; X (n, m), Y (1, m), w (n, 1)."""
    m = X.shape[1]
    dZ = torch.sigmoid(w.T @ X + b) - Y
    return X @ dZ.T / m, dZ.sum() / m


def _step(
    w: torch.Tensor,
    b: torch.Tensor,
    X: torch.Tensor,
    Y: torch.Tensor,
    learning_rate: float,
    weight_decay: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    dw, db = gradient(w, b, X, Y)  # type: ignore[arg-type]
    return descent_step(w, b, dw, db, learning_rate, weight_decay)


def compiled_loop(
    w: torch.Tensor,
    b: float,
    X: torch.Tensor,
    Y: torch.Tensor,
    learning_rate: float,
    weight_decay: float,
) -> tuple[Advance, torch.Tensor, torch.Tensor]:
    """The step (gradient and update) under torch.compile, called once per step. b is a 0-d
    tensor here: a Python float that changes at every step would be compiled again."""
    step = compiled(_step)

    def advance(w: torch.Tensor, b: torch.Tensor, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
        for _ in range(steps):
            w, b = step(w, b, X, Y, learning_rate, weight_decay)
        return w, b

    return advance, w, torch.tensor(b, dtype=w.dtype)
