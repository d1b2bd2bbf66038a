"""ReLU gates held at their pattern at ``x``, and the bias-free pass of a perturbation through the held network:
the two tools of the finite-difference penalty (``finite_difference.py``).

With every ``nn.ReLU`` multiplying by its recorded on/off mask, a network built of convolutions, linear layers,
average pooling, residual sums and eval-mode BatchNorm is affine in its input, so the forward difference
``f(x + d) - f(x)`` is the *bias-free* pass of ``d`` (weights only; BatchNorm as its scale
``gamma / sqrt(running_var + eps)``; biases, BatchNorm shifts and running means drop out of a difference).
:func:`gated_linear` runs that pass; :func:`is_gated_linear` says whether the recorded forward ran only such
layers.

Example:
    >>> with recorded_gates(model) as gates:
    ...     out = model(x)
    >>> with gated_linear(gates):
    ...     jvp = model(u)      # = f(x + u) - f(x) for the held network, exactly
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch.nn.functional as F
from torch import Tensor, nn

_PASS_THROUGH = (nn.Identity, nn.Flatten, nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AvgPool1d, nn.AvgPool2d,
                 nn.Dropout, nn.Sequential, nn.ModuleList, nn.ModuleDict)
_BATCHNORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.SyncBatchNorm)  # SyncBatchNorm: plain BatchNorm in eval mode


class Gates(dict):
    """``{nn.ReLU module: [bool mask per call]}`` of the forwards run inside :func:`recorded_gates`, and
    ``called``: every module those forwards ran (what :func:`is_gated_linear` checks)."""

    def __init__(self):
        super().__init__()
        self.called: list[nn.Module] = []


@contextmanager
def recorded_gates(model: nn.Module) -> Iterator[Gates]:
    """Record, per ``nn.ReLU`` module and in call order, which units are on (bool masks) during the forwards run
    inside the block (a module called twice, as in a ResNet block, records twice)."""
    gates = Gates()

    def record(module: nn.Module, args, out) -> None:
        gates.called.append(module)
        if isinstance(module, nn.ReLU):
            gates.setdefault(module, []).append(out.detach() > 0)

    hooks = [m.register_forward_hook(record) for m in model.modules()]
    try:
        yield gates
    finally:
        for hook in hooks:
            hook.remove()


@contextmanager
def _overridden(forwards: dict[nn.Module, object]) -> Iterator[None]:
    for module, forward in forwards.items():
        module.forward = forward  # an instance attribute shadows the class's forward
    try:
        yield
    finally:
        for module in forwards:
            del module.forward


def _replay(masks: list[Tensor]):
    replay = iter(masks)
    return lambda y: y * next(replay).to(y.dtype)


def frozen_gates(gates: Gates):
    """Inside the block every recorded ``nn.ReLU`` multiplies by its recorded masks, in call order."""
    return _overridden({m: _replay(masks) for m, masks in gates.items()})


def is_gated_linear(gates: Gates) -> bool:
    """Whether every layer the recorded forward ran is affine in its input once the ReLU gates are held
    (BatchNorm in eval mode with running statistics; no GroupNorm, LayerNorm, max-pooling or other activation)."""
    for m in set(gates.called):
        if isinstance(m, _BATCHNORMS):
            if m.training or m.running_var is None:
                return False
        elif isinstance(m, nn.Dropout):
            if m.training:
                return False
        elif isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear, nn.ReLU, *_PASS_THROUGH)):
            continue
        elif next(m.children(), None) is None:
            return False  # an unknown leaf layer: maybe curved
    return True


def _bias_free(module: nn.Module):
    if isinstance(module, (nn.Conv1d, nn.Conv2d)):
        return lambda y: module._conv_forward(y, module.weight, None)
    if isinstance(module, nn.Linear):
        return lambda y: F.linear(y, module.weight)

    def batchnorm_scale(y: Tensor) -> Tensor:
        scale = (module.running_var + module.eps).rsqrt()
        scale = scale * module.weight if module.weight is not None else scale
        return y * scale.view((1, -1) + (1,) * (y.dim() - 2))
    return batchnorm_scale


def dropped_parameters(gates: Gates) -> list[Tensor]:
    """The biases and BatchNorm shifts the bias-free pass leaves out (their penalty gradient is 0)."""
    return [m.bias for m in set(gates.called) if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear, *_BATCHNORMS))
            and m.bias is not None and m.bias.requires_grad]


def gated_linear(gates: Gates):
    """Inside the block ``model`` computes the bias-free pass of its input through the held network (only
    meaningful where :func:`is_gated_linear` holds)."""
    forwards: dict[nn.Module, object] = {m: _replay(masks) for m, masks in gates.items()}
    for m in set(gates.called):
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear, *_BATCHNORMS)):
            forwards[m] = _bias_free(m)
    return _overridden(forwards)
