"""The paper's methods, one optimiser step each.

- ``gp`` (Eq. 2):    L = a * L_train + b * L_GP + c * L_Norm. L_GP interpolates each forget sample with a random
  ``nonmember_ref`` sample (Algorithm 1); L_Norm is the mean output norm on the forget batch.
- ``memgp`` (Eq. 3): L = a * L_train + b * L_MEMGP, the penalty on the forget samples themselves (Algorithm 2).

L_train is taken on the forget batch (the paper) or on a retain batch (``train_term_source=retain``). The penalty
sees clean images unless ``penalty_on_augmented``. Terms with weight 0 are not computed. Each step returns every
component (unweighted) for the per-epoch log, plus ``loss``, the weighted total, and ``grad_norm``, the mean
per-sample input-gradient norm behind the penalty.
"""

from __future__ import annotations

from torch import Tensor, nn

from trainables.losses import gradient_penalty, member_gradient_penalty, output_norm
from trainables.unlearning.step_data import StepData
from trainables.unlearning.terms import train_objective


def _penalty_input(data: StepData, images: Tensor, job) -> Tensor:
    return data.augmented(images, 1)[0] if job.penalty_on_augmented else data.clean(images)


def _train_term(model: nn.Module, data: StepData, job) -> Tensor:
    if job.train_term_source == "retain":
        images, labels = data.draw("retain", job.retain_batch_size or max(len(data.images), 2))
        return train_objective(model, data, images, labels)
    return train_objective(model, data, data.images, data.labels)


def gp_step(model: nn.Module, data: StepData, job) -> dict[str, Tensor]:
    """Eq. 2 on one forget batch."""
    terms: dict[str, Tensor] = {}
    total = 0.0
    x = _penalty_input(data, data.images, job)
    if job.a > 0:
        terms["train"] = _train_term(model, data, job)
        total = total + job.a * terms["train"]
    if job.b > 0:
        ref_images, _ = data.draw("nonmember_ref", len(data.images))
        penalty = gradient_penalty(model, x, _penalty_input(data, ref_images, job), job.form)
        terms["gp"], terms["grad_norm"] = penalty.loss, penalty.grad_norms.mean()
        total = total + job.b * penalty.loss
    if job.c > 0:
        terms["norm"] = output_norm(model, x)
        total = total + job.c * terms["norm"]
    return {"loss": total, **terms}


def memgp_step(model: nn.Module, data: StepData, job) -> dict[str, Tensor]:
    """Eq. 3 on one forget batch."""
    terms: dict[str, Tensor] = {}
    total = 0.0
    if job.a > 0:
        terms["train"] = _train_term(model, data, job)
        total = total + job.a * terms["train"]
    if job.b > 0:
        penalty = member_gradient_penalty(model, _penalty_input(data, data.images, job), job.form)
        terms["memgp"], terms["grad_norm"] = penalty.loss, penalty.grad_norms.mean()
        total = total + job.b * penalty.loss
    return {"loss": total, **terms}
