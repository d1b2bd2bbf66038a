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


def _small_cnn(norm: str, train: bool) -> nn.Module:
    """The product's small CNN (width 4): BatchNorm in eval mode with non-trivial running statistics (the
    penalty methods' default), or GroupNorm in train mode (per sample, but curved in the input)."""
    from trainables.models.backbones import small_cnn

    torch.manual_seed(0)
    backbone, _ = small_cnn(width=4, norm=norm)
    for m in backbone.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    net = nn.Module()
    net.backbone = backbone
    net.forward = lambda x, labels=None, task="embed": net.backbone(x)  # noqa: E731
    return net.train(train)


def _grads(model: nn.Module) -> torch.Tensor:
    return torch.cat([(q.grad if q.grad is not None else torch.zeros_like(q)).flatten() for q in model.parameters()])


FD_MODELS = {
    "linear": lambda: Linear(torch.randn(4, 3 * 8 * 8, generator=torch.Generator().manual_seed(0))),
    "cnn_batchnorm_eval": lambda: _small_cnn("batch", train=False),
    "cnn_groupnorm_train": lambda: _small_cnn("group", train=True),
}


@pytest.mark.parametrize("equation", ["memgp", "gp"])
@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("model_name", sorted(FD_MODELS))
def test_finite_difference_gradient_matches_the_double_backward(model_name, form, equation):
    # float32, the default path (what runs use). Measured relative errors: linear 1e-4 (forward difference at the
    # default step: exact but for cancellation), BatchNorm eval 2e-7 (the bias-free pass through the held ReLU
    # gates), GroupNorm train ~1.5% (forward difference: O(h) curvature): the bounds (cosine >= 0.99, 5%)
    # leave a wide margin.
    model = FD_MODELS[model_name]()
    gen = torch.Generator().manual_seed(1)
    x_member, x_ref = torch.randn(8, 3, 8, 8, generator=gen), torch.randn(8, 3, 8, 8, generator=gen)

    def penalty(estimator):
        model.zero_grad()
        if equation == "memgp":
            p = member_gradient_penalty(model, x_member, form, estimator=estimator)
        else:
            p = gradient_penalty(model, x_member, x_ref, form, generator=torch.Generator().manual_seed(7),
                                 estimator=estimator)
        p.loss.backward()
        return float(p.loss.detach()), p.grad_norms, _grads(model)

    value, norms, exact = penalty("exact")
    fd_value, fd_norms, fd = penalty("finite_difference")
    assert fd_value == pytest.approx(value, rel=1e-5)  # the same penalty value is logged either way
    torch.testing.assert_close(fd_norms, norms)
    assert exact.norm() > 0
    assert float(torch.nn.functional.cosine_similarity(fd, exact, dim=0)) >= 0.99
    assert float((fd - exact).norm() / exact.norm()) <= 0.05


def test_the_forward_difference_is_exact_in_float64_when_relu_gates_are_held():
    # With the gates held, a ReLU network with eval-mode BatchNorm is affine along u: at any step, and by the
    # bias-free pass (no step), only rounding is left.
    from trainables.losses.finite_difference import finite_difference_penalty

    model = _small_cnn("batch", train=False).double()
    x = torch.randn(6, 3, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    model.zero_grad()
    member_gradient_penalty(model, x, "squared").loss.backward()
    exact = _grads(model)
    for step, held_linear in ((1e-2, False), (1e-6, False), (1e-2, None)):
        model.zero_grad()
        finite_difference_penalty(model, x, "squared", step=step, held_linear=held_linear).loss.backward()
        torch.testing.assert_close(_grads(model), exact, rtol=1e-7, atol=1e-10)
    assert all("forward" not in vars(m) for m in model.backbone.modules())  # every override removed


def test_held_gates_choose_the_bias_free_pass_only_for_affine_layers():
    from trainables.losses.held_gates import is_gated_linear, recorded_gates

    def linear_after_forward(model, shape=(2, 3, 8, 8)):
        with recorded_gates(model) as gates:
            model(torch.randn(shape))
        return is_gated_linear(gates), sum(len(masks) for masks in gates.values())

    assert linear_after_forward(_small_cnn("batch", train=False)) == (True, 4)  # 4 ReLU calls recorded
    assert not linear_after_forward(_small_cnn("batch", train=True))[0]  # batch statistics: curved
    assert not linear_after_forward(_small_cnn("group", train=False))[0]
    assert not linear_after_forward(TanhNet(), (2, 12))[0]


def test_penalty_slopes_are_the_forms_derivatives_and_unknown_estimators_are_refused():
    from trainables.losses.finite_difference import penalty_slopes
    from trainables.losses.penalty_estimators import input_gradient_penalty

    n = torch.tensor([0.5, 2.0, 3.0])
    torch.testing.assert_close(penalty_slopes(n, "squared"), 2 * n / 3)
    torch.testing.assert_close(penalty_slopes(n, "wgan"), 2 * (n - 1) / 3)
    torch.testing.assert_close(penalty_slopes(n, "linear"), torch.full((3,), 1 / 3))
    with pytest.raises(ValueError, match="exact, finite_difference"):
        input_gradient_penalty(Linear(torch.ones(2, 4)), torch.ones(1, 4), estimator="guess")


def test_the_unlearning_config_offers_exactly_the_estimators():
    from typing import get_args

    from trainables.losses import DEFAULT_ESTIMATOR, DEFAULT_FD_STEP, ESTIMATORS
    from trainables.unlearning.config import UnlearnJob

    field = UnlearnJob.model_fields["gp_estimator"]
    assert field.default == "auto" and set(get_args(field.annotation)) == {"auto", *ESTIMATORS}
    assert DEFAULT_ESTIMATOR in ESTIMATORS
    assert UnlearnJob(method="memgp").penalty_estimator == "finite_difference"  # eval mode
    assert UnlearnJob(method="memgp", model_mode="train").penalty_estimator == "exact"
    assert UnlearnJob.model_fields["gp_fd_step"].default == DEFAULT_FD_STEP


def test_finite_difference_through_syncbatchnorm_matches_the_exact_plain_batchnorm_gradient():
    # What sync_batchnorm=true runs (SyncBatchNorm has no double backward); in eval mode it is plain BatchNorm, and
    # the estimator's first-order passes give the double backward's gradient of the plain-BatchNorm twin.
    plain, synced = _small_cnn("batch", train=False), _small_cnn("batch", train=False)
    synced.backbone = nn.SyncBatchNorm.convert_sync_batchnorm(synced.backbone)
    synced.train(False)
    assert any(isinstance(m, nn.SyncBatchNorm) for m in synced.modules())
    x = torch.randn(4, 3, 8, 8, generator=torch.Generator().manual_seed(3))
    grads = []
    for model, estimator in ((plain, "exact"), (synced, "finite_difference")):
        member_gradient_penalty(model, x, "squared", estimator=estimator).loss.backward()
        grads.append(_grads(model))
    assert float((grads[1] - grads[0]).norm() / grads[0].norm()) <= 1e-5  # measured 1.6e-7 (float32 rounding)
