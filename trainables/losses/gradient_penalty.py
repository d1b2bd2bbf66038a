"""Algorithm 1 of the paper (after WGAN-GP, Gulrajani et al., 2017): the gradient penalty on random interpolates
between members and reference non-members (L_GP, Eq. 2).

``z_i = eps_i * x_nonmember_i + (1 - eps_i) * x_member_i`` with one ``eps_i ~ U[0, 1)`` per sample, then the
penalty of the per-sample input-gradient norms at ``z``. The non-members must come from the ``nonmember_ref``
split only: ``nonmember_eval`` is reserved for the audit.

Example:
    >>> penalty = gradient_penalty(model, x_forget, x_ref, "squared")     # both (B, 3, S, S)
    >>> penalty.loss.backward()
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from trainables.losses.finite_difference import DEFAULT_FD_STEP
from trainables.losses.input_gradient import Penalty
from trainables.losses.penalty_estimators import DEFAULT_ESTIMATOR, input_gradient_penalty
from trainables.losses.penalty_forms import DEFAULT_FORM


def interpolate(x_member: Tensor, x_nonmember_ref: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Per-sample random interpolates (B, ...) between two batches of the same shape."""
    if x_member.shape != x_nonmember_ref.shape:
        raise ValueError(f"member and non-member batches must have the same shape, got {tuple(x_member.shape)} "
                         f"and {tuple(x_nonmember_ref.shape)}")
    shape = (x_member.shape[0],) + (1,) * (x_member.dim() - 1)
    eps = torch.rand(shape, generator=generator, device="cpu" if generator is not None else x_member.device)
    eps = eps.to(device=x_member.device, dtype=x_member.dtype)
    return eps * x_nonmember_ref + (1 - eps) * x_member


def gradient_penalty(model: nn.Module, x_member: Tensor, x_nonmember_ref: Tensor, form: str = DEFAULT_FORM, *,
                     generator: torch.Generator | None = None, estimator: str = DEFAULT_ESTIMATOR,
                     fd_step: float = DEFAULT_FD_STEP, output: Callable[[Tensor], Tensor] | None = None) -> Penalty:
    """Members and reference non-members, both (B, 3, S, S) -> :class:`Penalty` at their random interpolates
    (``estimator``: ``exact`` double backward or ``finite_difference``, see ``penalty_estimators.py``; ``output``:
    the penalised output, default ``model(z)``, ``penalty_outputs.py``)."""
    z = interpolate(x_member.detach(), x_nonmember_ref.detach(), generator)
    return input_gradient_penalty(model, z, form, estimator=estimator, fd_step=fd_step, output=output)
