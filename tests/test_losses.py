"""The gradient-penalty loss terms: exact values on a linear model, and the double backward against finite
differences (double precision)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from trainables.losses import (
    FORMS,
    gradient_penalty,
    input_gradient_norms,
    member_gradient_penalty,
    output_norm,
    reduce_penalty,
)
from trainables.losses.gradient_penalty import interpolate


class Linear(nn.Module):
    """f(x) = W x on flattened inputs, with the task-dispatching forward every model has."""

    def __init__(self, weight: torch.Tensor):
        super().__init__()
        self.weight = nn.Parameter(weight)

    def forward(self, x, labels=None, *, task="embed"):
        assert task == "embed"
        return x.flatten(1) @ self.weight.T


class TanhNet(nn.Module):
    def __init__(self, d_in=12, d_hidden=5, d_out=3):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(d_in, d_hidden), nn.Tanh(), nn.Linear(d_hidden, d_out), nn.Tanh())

    def forward(self, x, labels=None, *, task="embed"):
        return self.net(x.flatten(1))


def expected(norm: float, form: str) -> float:
    return {"wgan": (norm - 1) ** 2, "squared": norm**2, "linear": norm - 1}[form]


@pytest.mark.parametrize("form", FORMS)
def test_linear_model_closed_form(form):
    # d sum_j (W x)_j / dx = W^T 1 for every x: every per-sample norm is ||W^T 1||.
    torch.manual_seed(0)
    weight = torch.randn(4, 12, dtype=torch.float64)
    model = Linear(weight)
    x_member = torch.randn(5, 3, 2, 2, dtype=torch.float64)
    x_ref = torch.randn(5, 3, 2, 2, dtype=torch.float64)
    norm = float(weight.T.sum(1).norm())
    assert norm > 1.5  # the three forms then give clearly different values

    mem = member_gradient_penalty(model, x_member, form)
    gp = gradient_penalty(model, x_member, x_ref, form)
    torch.testing.assert_close(mem.grad_norms, torch.full((5,), norm, dtype=torch.float64))
    torch.testing.assert_close(gp.grad_norms, torch.full((5,), norm, dtype=torch.float64))
    assert float(mem.loss.detach()) == pytest.approx(expected(norm, form), rel=1e-12)
    assert float(gp.loss.detach()) == pytest.approx(expected(norm, form), rel=1e-12)


def test_penalty_forms_and_unknown_form():
    norms = torch.tensor([0.5, 2.0])
    assert float(reduce_penalty(norms, "wgan")) == pytest.approx((0.25 + 1.0) / 2)
    assert float(reduce_penalty(norms, "squared")) == pytest.approx((0.25 + 4.0) / 2)
    assert float(reduce_penalty(norms, "linear")) == pytest.approx((-0.5 + 1.0) / 2)
    with pytest.raises(ValueError, match="wgan, squared, linear"):
        reduce_penalty(norms, "cubic")


def test_interpolates_lie_between_member_and_reference_per_sample():
    gen = torch.Generator().manual_seed(3)
    x_member, x_ref = torch.zeros(6, 3, 4, 4), torch.ones(6, 3, 4, 4)
    z = interpolate(x_member, x_ref, gen)
    eps = z[:, 0, 0, 0]
    assert torch.all((eps >= 0) & (eps < 1))
    assert torch.allclose(z, eps.view(6, 1, 1, 1).expand_as(z))  # one eps per sample, shared by all pixels
    assert eps.std() > 0.05  # and different between samples
    with pytest.raises(ValueError, match="same shape"):
        interpolate(x_member, x_ref[:5])


def _finite_difference_grad(loss_fn, params, h=1e-6):
    grads = []
    for p in params:
        g = torch.zeros_like(p)
        flat = p.data.view(-1)  # .data: nudging a weight in place, outside autograd
        for i in range(flat.numel()):
            old = float(flat[i])
            flat[i] = old + h
            up = float(loss_fn().detach())
            flat[i] = old - h
            down = float(loss_fn().detach())
            flat[i] = old
            g.view(-1)[i] = (up - down) / (2 * h)
        grads.append(g)
    return grads


@pytest.mark.parametrize("which", ["memgp", "gp", "gp_wgan", "norm"])
def test_penalty_gradient_wrt_parameters_matches_finite_differences(which):
    torch.manual_seed(1)
    model = TanhNet().double()
    x_member = torch.randn(4, 3, 2, 2, dtype=torch.float64)
    x_ref = torch.randn(4, 3, 2, 2, dtype=torch.float64)

    def loss_fn():
        if which == "memgp":
            return member_gradient_penalty(model, x_member, "squared").loss
        if which == "norm":
            return output_norm(model, x_member)
        form = "wgan" if which == "gp_wgan" else "squared"
        return gradient_penalty(model, x_member, x_ref, form, generator=torch.Generator().manual_seed(7)).loss

    params = list(model.parameters())
    model.zero_grad()
    loss_fn().backward()  # double backward through autograd.grad(create_graph=True)
    analytic = [p.grad.clone() for p in params]
    numeric = _finite_difference_grad(loss_fn, params)  # the penalty needs autograd even here
    for a, n in zip(analytic, numeric, strict=True):
        assert a.abs().max() > 0
        torch.testing.assert_close(a, n, rtol=1e-5, atol=1e-7)


def test_input_gradient_norms_are_per_sample_in_eval_mode():
    # With BatchNorm in eval mode, sample i's gradient does not depend on the rest of the batch.
    torch.manual_seed(0)
    from trainables.models.backbones import small_cnn

    backbone, _ = small_cnn(width=4)
    net = nn.Module()
    net.forward = lambda x, labels=None, task="embed": backbone(x)  # noqa: E731
    backbone.eval()
    x = torch.randn(6, 3, 8, 8)
    together = input_gradient_norms(net, x)
    alone = torch.cat([input_gradient_norms(net, x[i:i + 1]) for i in range(6)])
    torch.testing.assert_close(together, alone, rtol=1e-5, atol=1e-6)


def test_the_unlearning_config_offers_exactly_the_penalty_forms():
    from typing import get_args

    from trainables.losses import DEFAULT_FORM, FORMS
    from trainables.unlearning.config import UnlearnJob

    field = UnlearnJob.model_fields["form"]
    assert field.default == DEFAULT_FORM and set(get_args(field.annotation)) == set(FORMS)
