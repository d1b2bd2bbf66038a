"""The paper's methods, one optimiser step each.

- ``gp`` (Eq. 2):    L = a * L_train + b * L_GP + c * L_Norm. L_GP interpolates each forget sample with a random
  ``nonmember_ref`` sample (Algorithm 1); L_Norm is the mean output norm on the forget batch.
- ``memgp`` (Eq. 3): L = a * L_train + b * L_MEMGP, the penalty on the forget samples themselves (Algorithm 2);
  ``c > 0`` adds Eq. 2's L_Norm (not in the paper's Eq. 3; on a classifier it shrinks the forget set's logits).

L_train is taken on the forget batch (the paper) or on a retain batch (``train_term_source=retain``). The penalty
sees clean images unless ``penalty_on_augmented``; it differentiates the model output (``penalty_output=embed``,
the paper) or a classifier's log p(y|x) of each sample's label (``label_logprob`` / ``sample_loss``,
``trainables/losses/penalty_outputs.py``). L_Norm is the norm of the embed output (a classifier's logits by
default). Terms with weight 0 are not computed.

The penalty's parameter gradient comes from ``gp_estimator`` (``exact`` double backward or ``finite_difference``,
``trainables/losses/finite_difference.py``; ``auto``, the default: finite_difference in eval mode). ``gp_every=k`` makes it lazy (StyleGAN2's lazy R1 regularisation,
Karras et al. 2020, "Analyzing and Improving the Image Quality of StyleGAN"): the penalty is taken on every k-th
step only, with weight ``k * b``, so its average pull is unchanged while k-1 of k steps skip its cost. Each step returns every
component (unweighted) for the per-epoch log, plus ``loss``, the weighted total, and ``grad_norm``, the mean
per-sample input-gradient norm behind the penalty.
"""

from __future__ import annotations

from torch import Tensor, nn

from trainables.losses import gradient_penalty, member_gradient_penalty, output_norm, penalised_output
from trainables.unlearning.step_data import StepData
from trainables.unlearning.terms import train_objective


def _penalty_input(data: StepData, images: Tensor, job) -> Tensor:
    return data.augmented(images, 1)[0] if job.penalty_on_augmented else data.clean(images)


def _penalty_weight(data: StepData, job) -> float:
    """``b``; under ``gp_every=k``: ``k * b`` on every k-th step of the run, 0 on the others."""
    if job.gp_every == 1:
        return job.b
    return job.b * job.gp_every if data.step % job.gp_every == 0 else 0.0


def _penalty_options(model: nn.Module, data: StepData, job) -> dict:
    """How the penalty is computed (estimator, step) and what it differentiates (the forget samples' labels)."""
    labels = data.labels.to(data.device) if job.penalty_output != "embed" else None
    return {"estimator": job.penalty_estimator, "fd_step": job.gp_fd_step,
            "output": penalised_output(model, job.penalty_output, labels)}


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
    if (b := _penalty_weight(data, job)) > 0:
        ref_images, _ = data.draw("nonmember_ref", len(data.images))
        penalty = gradient_penalty(model, x, _penalty_input(data, ref_images, job), job.form,
                                   **_penalty_options(model, data, job))
        terms["gp"], terms["grad_norm"] = penalty.loss, penalty.grad_norms.mean()
        total = total + b * penalty.loss
    return _with_norm(model, x, job, terms, total)


def _with_norm(model: nn.Module, x: Tensor, job, terms: dict[str, Tensor], total) -> dict[str, Tensor]:
    """Adds ``c * L_Norm`` on the (clean or augmented) forget batch ``x``, when ``c > 0``."""
    if job.c > 0:
        terms["norm"] = output_norm(model, x)
        total = total + job.c * terms["norm"]
    return {"loss": total, **terms}


def memgp_step(model: nn.Module, data: StepData, job) -> dict[str, Tensor]:
    """Eq. 3 on one forget batch (plus L_Norm when ``c > 0``)."""
    terms: dict[str, Tensor] = {}
    total = 0.0
    x = _penalty_input(data, data.images, job)
    if job.a > 0:
        terms["train"] = _train_term(model, data, job)
        total = total + job.a * terms["train"]
    if (b := _penalty_weight(data, job)) > 0:
        penalty = member_gradient_penalty(model, x, job.form, **_penalty_options(model, data, job))
        terms["memgp"], terms["grad_norm"] = penalty.loss, penalty.grad_norms.mean()
        total = total + b * penalty.loss
    return _with_norm(model, x, job, terms, total)
