"""The classifier variants of the paper's penalty: the penalised output (``penalty_output``), L_Norm on the logits
(``c``, also for memgp) and L_train on the retain set, on tiny models."""

from __future__ import annotations

import copy
import typing

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tests.conftest import tiny_job
from tests.test_unlearning import spy_on
from trainables.jobs.pretrain import pretrain_task
from trainables.loops.context import LoopContext
from trainables.losses import PENALTY_OUTPUTS, member_gradient_penalty, penalised_output
from trainables.models.base import embed_all
from trainables.models.supervised import Classifier
from trainables.unlearning import UnlearnJob, unlearn

QUIET = {"progress": False}


def smooth_classifier(seed: int = 0) -> Classifier:
    """A float64 classifier without ReLU kinks, so that a finite difference over its weights is accurate."""
    torch.manual_seed(seed)
    backbone = nn.Sequential(nn.Flatten(), nn.Linear(12, 8), nn.Tanh())
    return Classifier(backbone, feature_dim=8, num_classes=3).double().eval()


def test_penalty_output_values_mirror_the_loss_module():
    assert typing.get_args(UnlearnJob.model_fields["penalty_output"].annotation) == PENALTY_OUTPUTS
    with pytest.raises(ValueError, match="unknown penalty output"):
        penalised_output(smooth_classifier(), "max_logit", torch.zeros(2))


def test_label_logprob_penalty_is_the_input_gradient_of_log_p_y():
    model = smooth_classifier()
    x, y = torch.randn(5, 1, 3, 4, dtype=torch.float64), torch.tensor([0, 1, 2, 1, 0])
    penalty = member_gradient_penalty(model, x, "squared", output=penalised_output(model, "label_logprob", y))
    leaf = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(F.log_softmax(model(leaf, task="head"), 1)[torch.arange(5), y].sum(), leaf)
    assert torch.allclose(penalty.grad_norms, grad.reshape(5, -1).norm(dim=1), rtol=1e-12)
    assert float(penalty.loss.detach()) == pytest.approx(float((grad.reshape(5, -1).norm(dim=1) ** 2).mean()), rel=1e-12)


def _flat_grad(model, loss) -> torch.Tensor:
    grads = torch.autograd.grad(loss, list(model.parameters()))
    return torch.cat([g.reshape(-1) for g in grads])


def test_label_logprob_penalty_gradient_matches_a_finite_difference():
    model = smooth_classifier()
    x, y = torch.randn(6, 1, 3, 4, dtype=torch.float64), torch.tensor([0, 1, 2, 1, 0, 2])
    output = penalised_output(model, "label_logprob", y)

    def value() -> torch.Tensor:
        return member_gradient_penalty(model, x, "wgan", output=output).loss

    exact = _flat_grad(model, value())
    direction = torch.randn_like(exact)
    direction /= direction.norm()
    params = list(model.parameters())

    def shifted(eps: float) -> float:
        with torch.no_grad():
            offset = 0
            for p in params:
                p += eps * direction[offset:offset + p.numel()].view_as(p)
                offset += p.numel()
        v = float(value().detach())
        with torch.no_grad():
            offset = 0
            for p in params:
                p -= eps * direction[offset:offset + p.numel()].view_as(p)
                offset += p.numel()
        return v

    eps = 1e-5  # central difference in float64: O(eps^2) ~ 1e-10 truncation, ~1e-11 rounding
    numeric = (shifted(eps) - shifted(-eps)) / (2 * eps)
    assert numeric == pytest.approx(float(exact @ direction), rel=1e-6, abs=1e-9)
    # the finite-difference estimator (a step along the input gradient instead of the double backward): log-softmax
    # is curved, so it takes the plain difference, whose O(h) error at h = 2e-4 * ||x|| is far below 1%
    fd = _flat_grad(model, member_gradient_penalty(model, x, "wgan", output=output, estimator="finite_difference").loss)
    assert float(F.cosine_similarity(fd, exact, dim=0)) > 0.9999
    assert float((fd - exact).norm() / exact.norm()) < 1e-2


def test_sample_loss_is_the_same_penalty_as_label_logprob():
    model = smooth_classifier()
    x, y = torch.randn(4, 1, 3, 4, dtype=torch.float64), torch.tensor([2, 0, 1, 1])
    for form in ("squared", "wgan", "linear"):
        a = member_gradient_penalty(model, x, form, output=penalised_output(model, "label_logprob", y))
        b = member_gradient_penalty(model, x, form, output=penalised_output(model, "sample_loss", y))
        assert float(a.loss.detach()) == pytest.approx(float(b.loss.detach()), rel=1e-12)
        assert torch.allclose(_flat_grad(model, a.loss), _flat_grad(model, b.loss), rtol=1e-10, atol=1e-14)


@pytest.fixture(scope="module")
def classifier():
    """A tiny classifier trained long enough to be confident on its members (after 4 epochs its forget-set top-1
    was 0.12, near chance: nothing for L_Norm to lower)."""
    pjob = tiny_job("supervised", optim={"epochs": 12, "lr": 1e-2})
    model, _, _, source, splits = pretrain_task(pjob, LoopContext(progress=False))
    return pjob, model, source, splits


def mean_top1(model, source, ids) -> float:
    probs = embed_all(model, source.images[torch.from_numpy(ids)], task="head").softmax(1)
    return float(probs.max(1).values.mean())


def test_lnorm_on_logits_lowers_the_forget_sets_confidence(classifier):
    pjob, model, source, splits = classifier
    forget = splits["forget"]
    before = mean_top1(model, source, forget)
    job = UnlearnJob(method="memgp", a=0, b=0, c=1, epochs=3, lr=3e-3, monitor=False, runtime=QUIET)
    model, history = unlearn(copy.deepcopy(model), source, splits, forget, job, pretrain_job=pjob)
    after = mean_top1(model, source, forget)
    assert history[-1]["norm"] < history[0]["norm"]  # the logits' norm falls ...
    # ... and so does the top-1 probability: it tends to 1/10 as the logits tend to 0; before it is well above that
    assert before > 0.2 and after < before - 0.05, (before, after)


@pytest.mark.parametrize("output", ["embed", "label_logprob"])
def test_classifier_memgp_variants_train_on_retain_and_log_their_terms(classifier, output):
    pjob, model, source, splits = classifier
    spied, spy = spy_on(source)
    job = UnlearnJob(method="memgp", c=0.5, train_term_source="retain", penalty_output=output, epochs=1,
                     monitor=False, runtime=QUIET)
    model, history = unlearn(copy.deepcopy(model), spied, splits, splits["forget"], job, pretrain_job=pjob)
    touched = np.array(sorted(spy.touched))
    assert len(np.intersect1d(touched, splits["retain"])) > 0  # L_train's batches come from retain
    assert np.setdiff1d(touched, np.union1d(splits["forget"], splits["retain"])).size == 0
    assert {"train", "memgp", "grad_norm", "norm"} <= set(history[0])
    assert all(torch.isfinite(torch.tensor(history[0][k])) for k in ("train", "memgp", "norm"))
