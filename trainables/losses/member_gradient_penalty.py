"""Algorithm 2 of the paper: the gradient penalty taken on the samples to forget themselves (L_MEMGP, Eq. 3).

Needs no non-member data. The paper found that penalising the members' input gradients brings their output
confidence to that of non-members, so Eq. 3 drops L_Norm and the interpolation.

Example:
    >>> penalty = member_gradient_penalty(model, x_forget, "squared")
    >>> (a * train_loss + b * penalty.loss).backward()
    >>> penalty.grad_norms.mean()          # what the loop logs; the paper watches the term fall to ~0
"""

from __future__ import annotations

from torch import Tensor, nn

from trainables.losses.input_gradient import Penalty, input_gradient_norms
from trainables.losses.penalty_forms import DEFAULT_FORM, reduce_penalty


def member_gradient_penalty(model: nn.Module, x_member: Tensor, form: str = DEFAULT_FORM) -> Penalty:
    """x_member (B, 3, S, S), normalised images -> :class:`Penalty` (scalar loss, (B,) gradient norms)."""
    norms = input_gradient_norms(model, x_member)
    return Penalty(reduce_penalty(norms, form), norms.detach())
