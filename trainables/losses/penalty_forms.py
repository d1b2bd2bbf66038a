"""How per-sample input-gradient norms become one penalty value. The paper uses three formulas:

- ``wgan``:    mean((||g|| - 1)^2)   Eq. 1, the WGAN-GP penalty (Gulrajani et al., 2017): pulls norms towards 1.
- ``squared``: mean(||g||^2)         Algorithm 1 line 15: pulls norms towards 0.
- ``linear``:  mean(||g|| - 1)       Algorithm 2 line 13 (``norm - 1^2``): pulls norms towards 0, constant slope.

Default ``squared``: on a real-CIFAR prototype (docs/unlearning.md) Eq. 3 with a=0, b=1 and the squared form
brought the forget set's attack accuracy to chance, and it is smooth at 0, unlike ``linear``.

Example:
    >>> reduce_penalty(torch.tensor([0.5, 2.0]), "squared")   # tensor(2.1250)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # config code reads FORMS without importing torch
    from torch import Tensor

FORMS: tuple[str, ...] = ("wgan", "squared", "linear")
DEFAULT_FORM = "squared"


def reduce_penalty(grad_norms: Tensor, form: str = DEFAULT_FORM) -> Tensor:
    """grad_norms (B,) -> scalar penalty of the given ``form``."""
    if form == "wgan":
        return ((grad_norms - 1.0) ** 2).mean()
    if form == "squared":
        return (grad_norms**2).mean()
    if form == "linear":
        return (grad_norms - 1.0).mean()
    raise ValueError(f"unknown penalty form {form!r}; choose one of: {', '.join(FORMS)}")
