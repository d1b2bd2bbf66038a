"""Per-sample norms of the gradient of the model output with respect to its input: the core of both penalties.

``autograd.grad(outputs=model(x), inputs=x, grad_outputs=ones, create_graph=True)`` as in the paper's Algorithms 1
and 2: ``ones`` sums the output dimensions, so sample i's gradient is d(sum_j f_j(x_i)) / d x_i. ``create_graph``
keeps the graph so that the penalty itself can be minimised (double backward). Under DDP this is the pattern that
works: an ``autograd.grad`` on the inputs, then ONE ordinary ``loss.backward()`` per step (what works under DDP);
never ``backward(create_graph=True)``.

With BatchNorm in train mode the output of sample i depends on the whole batch, so "per-sample" gradients carry
cross-sample terms; in eval mode (the unlearning default for penalty methods) they are exactly per sample.
The penalty runs in float32 even inside a bf16 autocast region.

Example:
    >>> norms = input_gradient_norms(model, x)      # x (B, 3, S, S) -> (B,), differentiable w.r.t. the weights
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor, nn


class Penalty(NamedTuple):
    """A penalty value (scalar, differentiable) and the per-sample gradient norms behind it (B,), detached."""

    loss: Tensor
    grad_norms: Tensor


def input_gradient_norms(model: nn.Module, x: Tensor, task: str = "embed",
                         output: Callable[[Tensor], Tensor] | None = None) -> Tensor:
    """||d sum_j model(x)_ij / d x_i||_2 per sample: x (B, ...) -> (B,), with the graph kept for a backward pass.
    ``output``: differentiate ``output(x)`` instead of ``model(x, task=task)`` (``penalty_outputs.py``)."""
    x = x.detach()
    x = (x.float() if x.dtype in (torch.float16, torch.bfloat16) else x).requires_grad_(True)
    with torch.autocast(x.device.type, enabled=False):  # bf16 input gradients are too coarse to penalise
        out = output(x) if output is not None else model(x, task=task)
        (grad,) = torch.autograd.grad(outputs=out, inputs=x, grad_outputs=torch.ones_like(out), create_graph=True,
                                      retain_graph=True, only_inputs=True)
        return grad.reshape(grad.shape[0], -1).norm(2, dim=1)
