"""SalUn (Fan et al., ICLR 2024, "SalUn: Empowering Machine Unlearning via Gradient-based Weight Saliency").

1. Weight saliency, once per run on the PARENT weights theta_o (the prepare hook): g = grad_theta of the forget
   loss l_f(theta_o; D_f) (mean cross-entropy over the whole forget set, true labels, clean images, eval mode);
   the mask m_S selects the top ``salun_fraction`` of all trainable weights by |g| (one global ranking over every
   tensor, the paper's hard threshold m_S = 1(|g| >= gamma) with gamma at that quantile).
2. Random-label unlearning restricted to the mask (the paper's Eq. 6):
   min  E_{D_f}[CE(x, y' != y)] + salun_retain_weight * E_{D_r}[CE(x, y)],
   theta_u = m_S * (theta_o + delta) + (1 - m_S) * theta_o: after every optimiser step the weights outside the
   mask are put back to the parent's values, so neither the optimiser's momentum nor weight decay moves them.

Classifiers only: the forgetting objective relabels the forget samples, and an encoder has no labels (see
docs/unlearning.md for what an encoder variant would need).

Example:
    >>> grads = forget_gradients(model, PrepareData(source, ids, device))
    >>> masks = saliency_mask(grads, 0.5)           # {name: bool tensor shaped like the weight}
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from trainables.models.base import unwrap
from trainables.unlearning.baselines import random_labels_step
from trainables.unlearning.prepared import PrepareData, RunState, saved_tensors
from trainables.unlearning.step_data import StepData

_PREFIX = "mask."


def forget_gradients(model: nn.Module, data: PrepareData) -> dict[str, Tensor]:
    """grad of the mean forget-set cross-entropy at the current weights, per trainable parameter (eval mode;
    ``.grad`` is not touched)."""
    base = unwrap(model)
    named = [(n, p) for n, p in base.named_parameters() if p.requires_grad]
    total = [torch.zeros_like(p) for _, p in named]
    n = len(data.ids["forget"])
    was = base.training
    base.eval()
    try:
        for images, labels in data.clean_batches("forget"):
            loss = F.cross_entropy(base(images, task="head"), labels, reduction="sum") / n
            for acc, g in zip(total, torch.autograd.grad(loss, [p for _, p in named]), strict=True):
                acc.add_(g)
    finally:
        base.train(was)
    return {name: g for (name, _), g in zip(named, total, strict=True)}


def saliency_mask(grads: dict[str, Tensor], fraction: float) -> dict[str, Tensor]:
    """The ``round(fraction * N)`` weights with the largest |g| over all N entries of ``grads`` (one ranking across
    tensors), as bool masks shaped like each tensor."""
    flat = torch.cat([g.detach().abs().flatten() for g in grads.values()])
    k = int(round(fraction * flat.numel()))
    chosen = torch.zeros(flat.numel(), dtype=torch.bool, device=flat.device)
    if k > 0:
        chosen[torch.topk(flat, k, sorted=False).indices] = True
    masks, start = {}, 0
    for name, g in grads.items():
        masks[name] = chosen[start:start + g.numel()].view_as(g)
        start += g.numel()
    return masks


class SaliencyMask(RunState):
    """The mask, and the parent's values of the weights outside it (restored after every step)."""

    def __init__(self, model: nn.Module, masks: dict[str, Tensor]):
        params = dict(unwrap(model).named_parameters())
        self.masks = {name: m.to(params[name].device) for name, m in masks.items()}
        # Weights outside the mask never move, so on a resume the current values ARE the parent's.
        self.frozen = {name: params[name].detach()[~m].clone() for name, m in self.masks.items()}

    def tensors(self) -> dict[str, Tensor]:
        return {_PREFIX + name: m.cpu() for name, m in self.masks.items()}

    @torch.no_grad()
    def after_step(self, model: nn.Module) -> None:
        params = dict(unwrap(model).named_parameters())
        for name, m in self.masks.items():
            params[name].masked_scatter_(~m, self.frozen[name])

    @property
    def kept_fraction(self) -> float:
        return sum(int(m.sum()) for m in self.masks.values()) / sum(m.numel() for m in self.masks.values())


def prepare(model: nn.Module, data: PrepareData, job, saved: dict[str, Tensor] | None) -> SaliencyMask:
    """The prepare hook (prepared.py): the saliency mask of the parent, or the one a resumed run saved."""
    if saved is not None:
        return SaliencyMask(model, saved_tensors(saved, _PREFIX, "salun"))
    return SaliencyMask(model, saliency_mask(forget_gradients(model, data), job.salun_fraction))


def salun_step(model: nn.Module, data: StepData, job) -> dict[str, Tensor]:
    """Primary split: forget (random labels); a retain batch per step. The mask acts after the step."""
    return random_labels_step(model, data, job, retain_weight=job.salun_retain_weight)
