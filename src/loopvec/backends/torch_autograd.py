"""The idiomatic torch way: a loss, then backward(). The framework derives the gradient.

loss = binary_cross_entropy_with_logits(w.T X + b, Y), the mean cross-entropy computed from z
(stable for any z); backward() fills w.grad and b.grad.
"""

from __future__ import annotations

import functools
from typing import Any, cast

import numpy as np
import torch
from numpy.typing import NDArray
from torch.nn.functional import binary_cross_entropy_with_logits

from loopvec.backends import descent_step
from loopvec.backends._loop import Advance
from loopvec.backends._torch import compiled


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


def _loss(w: torch.Tensor, b: torch.Tensor, X: torch.Tensor, Y: torch.Tensor) -> torch.Tensor:
    return binary_cross_entropy_with_logits(w.T @ X + b, Y)


def _sgd_loop(
    w: torch.Tensor,
    b: torch.Tensor,
    X: torch.Tensor,
    Y: torch.Tensor,
    learning_rate: float,
    weight_decay: float,
    *,
    compile_: bool,
) -> tuple[Advance, torch.Tensor, torch.Tensor]:
    """How torch users train: zero_grad(), backward(), an SGD optimizer's step(), on fresh leaves
    (SGD steps them in place: never the caller's, nor the numpy w they share memory with), the
    weight decay (the L2 penalty) on w only. compile_: with torch's recipe, torch.compile of the
    loss (its backward is compiled with it) and of the optimizer's step; b is then a 1-element
    vector, as torch 2.13's compiled SGD step leaves a 0-d parameter as it was (the training
    check caught a b that never moved)."""
    b = b.reshape(1) if compile_ else b
    w, b = w.detach().clone().requires_grad_(), b.detach().clone().requires_grad_()
    groups: list[dict[str, Any]] = [{"params": [w], "weight_decay": weight_decay}, {"params": [b]}]
    optimizer = torch.optim.SGD(groups, lr=learning_rate)
    loss, step = (
        (compiled(_loss), compiled(optimizer.step)) if compile_ else (_loss, optimizer.step)
    )

    def advance(_w: Any, _b: Any, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
        for _ in range(steps):
            optimizer.zero_grad()
            loss(w, b, X, Y).backward()
            step()
        return w, b

    return advance, w, b


python_loop = functools.partial(_sgd_loop, compile_=False)
compiled_loop = functools.partial(_sgd_loop, compile_=True)
