"""Algorithm 2 of the paper: the gradient penalty taken on the samples to forget themselves (L_MEMGP, Eq. 3).

Needs no non-member data. The paper found that penalising the members' input gradients brings their output
confidence to that of non-members, so Eq. 3 drops L_Norm and the interpolation.

Example:
    >>> penalty = member_gradient_penalty(model, x_forget, "squared")
    >>> (a * train_loss + b * penalty.loss).backward()
    >>> penalty.grad_norms.mean()          # what the loop logs; the paper watches the term fall to ~0
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor, nn

from trainables.losses.finite_difference import DEFAULT_FD_STEP
from trainables.losses.input_gradient import Penalty
from trainables.losses.penalty_estimators import DEFAULT_ESTIMATOR, input_gradient_penalty
from trainables.losses.penalty_forms import DEFAULT_FORM


def member_gradient_penalty(model: nn.Module, x_member: Tensor, form: str = DEFAULT_FORM, *,
                            estimator: str = DEFAULT_ESTIMATOR, fd_step: float = DEFAULT_FD_STEP,
                            output: Callable[[Tensor], Tensor] | None = None) -> Penalty:
    """x_member (B, 3, S, S), normalised images -> :class:`Penalty` (scalar loss, (B,) gradient norms);
    ``estimator``: ``exact`` double backward or ``finite_difference`` (see ``penalty_estimators.py``); ``output``:
    the penalised output, default ``model(x)`` (``penalty_outputs.py``)."""
    return input_gradient_penalty(model, x_member, form, estimator=estimator, fd_step=fd_step, output=output)
