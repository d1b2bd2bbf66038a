"""How the parameter gradient of an input-gradient penalty is computed: one entry point for both estimators.

- ``exact``: ``autograd.grad(create_graph=True)`` on the inputs, then the ordinary backward differentiates the
  input gradient itself (double backward; :mod:`trainables.losses.input_gradient`).
- ``finite_difference``: a forward difference of the model along the detached input-gradient direction replaces
  the double backward (:mod:`trainables.losses.finite_difference`, derivation there).

Both return a :class:`Penalty` with the same value and (up to the estimator's error) the same gradient.

Example:
    >>> penalty = input_gradient_penalty(model, x, "squared", estimator="finite_difference")
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor, nn

from trainables.losses.finite_difference import DEFAULT_FD_STEP, finite_difference_penalty
from trainables.losses.input_gradient import Penalty, input_gradient_norms
from trainables.losses.penalty_forms import DEFAULT_FORM, reduce_penalty

ESTIMATORS: tuple[str, ...] = ("exact", "finite_difference")
DEFAULT_ESTIMATOR = "exact"


def input_gradient_penalty(model: nn.Module, x: Tensor, form: str = DEFAULT_FORM, *,
                           estimator: str = DEFAULT_ESTIMATOR, fd_step: float = DEFAULT_FD_STEP,
                           output: Callable[[Tensor], Tensor] | None = None) -> Penalty:
    """The penalty of the per-sample input-gradient norms at x (B, ...), by ``estimator``, of ``model(x)`` or of
    ``output(x)`` (``penalty_outputs.py``)."""
    if estimator == "exact":
        norms = input_gradient_norms(model, x, output=output)
        return Penalty(reduce_penalty(norms, form), norms.detach())
    if estimator == "finite_difference":
        return finite_difference_penalty(model, x, form, step=fd_step, output=output)
    raise ValueError(f"unknown gradient-penalty estimator {estimator!r}; choose one of: {', '.join(ESTIMATORS)}")
