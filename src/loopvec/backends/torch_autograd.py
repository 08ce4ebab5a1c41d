"""The idiomatic torch way: a loss, then backward(). The framework derives the gradient.

loss = binary_cross_entropy_with_logits(w.T X + b, Y), the mean cross-entropy computed from z
(stable for any z); backward() fills w.grad and b.grad.
"""

from __future__ import annotations

from typing import Any, cast

import numpy as np
import torch
from numpy.typing import NDArray
from torch.nn.functional import binary_cross_entropy_with_logits

from loopvec.backends import descent_step


def to_native(
    w: NDArray[Any], b: float, X: NDArray[Any], Y: NDArray[Any]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Tensors sharing the inputs' memory; w and b are leaves that record gradients.

    requires_grad only marks the tensors; the numpy arrays are never written to.
    """
    w_leaf = torch.from_numpy(w).requires_grad_(True)
    b_leaf = torch.tensor(float(b), dtype=w_leaf.dtype, requires_grad=True)
    return w_leaf, b_leaf, torch.from_numpy(X), torch.from_numpy(Y)


def to_numpy(result: tuple[torch.Tensor, torch.Tensor]) -> tuple[NDArray[np.floating], float]:
    dw, db = result
    return dw.detach().numpy().copy(), float(db.detach())


def gradient(
    w: torch.Tensor, b: torch.Tensor, X: torch.Tensor, Y: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """dw (n, 1) and db (0-d tensor): the gradients backward() leaves on the leaves w and b."""
    w.grad = None  # backward() adds into .grad: start from nothing on every call
    b.grad = None
    loss = binary_cross_entropy_with_logits(w.T @ X + b, Y)
    loss.backward()  # type: ignore[no-untyped-call]
    return cast(torch.Tensor, w.grad), cast(torch.Tensor, b.grad)


def step(
    w: torch.Tensor,
    b: torch.Tensor,
    dw: torch.Tensor,
    db: torch.Tensor,
    learning_rate: float,
    weight_decay: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The plain update, outside the autograd graph, then new leaves for the next backward()."""
    with torch.no_grad():
        w_next, b_next = descent_step(w, b, dw, db, learning_rate, weight_decay)
    return w_next.requires_grad_(), b_next.requires_grad_()
