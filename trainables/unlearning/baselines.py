"""Baseline unlearning methods the paper's method must beat, one optimiser step each (retraining is in
``retrain.py``). Every step returns its unweighted components plus ``loss``, the weighted total.

- ``finetune``: L_train on retain only (catastrophic forgetting of the forget set; Golatkar et al., 2020).
- ``neggrad_plus``: descent on retain, ascent on forget: L_train(retain) - ascent_weight * L_train(forget)
  (Kurmanji et al., 2023, "Towards unbounded machine unlearning").
- ``random_labels``: cross-entropy on forget samples relabelled at random (a fixed wrong class per sample) plus on
  retain (Golatkar et al., 2020; Jia et al., 2023). Classifiers only.
- ``l1_sparse``: fine-tune on retain with an l1 penalty whose weight decays linearly from ``l1_weight`` to 0
  (Jia et al., 2023, "Model sparsity can simplify machine unlearning").
- ``alignment_calibration``: L_train(retain) + alignment_weight * agreement of two augmented views of each forget
  sample, which the step lowers (simplified from Wang et al., 2024, "Towards machine unlearning for contrastive
  learning under auditing"; the only published SSL-unlearning method).
"""

from __future__ import annotations

from torch import Tensor, nn

from trainables.models.base import unwrap
from trainables.unlearning.step_data import StepData
from trainables.unlearning.terms import l1_norm, random_other_labels, train_objective, view_agreement


def _retain_batch(data: StepData, job):
    return data.draw("retain", job.retain_batch_size or max(len(data.images), 2))


def finetune_step(model: nn.Module, data: StepData, job) -> dict[str, Tensor]:
    """Primary split: retain."""
    retain = train_objective(model, data, data.images, data.labels)
    return {"loss": retain, "retain": retain}


def neggrad_plus_step(model: nn.Module, data: StepData, job) -> dict[str, Tensor]:
    """Primary split: retain; a forget batch of the same size is drawn per step."""
    retain = train_objective(model, data, data.images, data.labels)
    forget_images, forget_labels = data.draw("forget", len(data.images))
    forget = train_objective(model, data, forget_images, forget_labels)
    return {"loss": retain - job.ascent_weight * forget, "retain": retain, "forget": forget}


def random_labels_step(model: nn.Module, data: StepData, job, retain_weight: float = 1.0) -> dict[str, Tensor]:
    """Primary split: forget (relabelled at random); a retain batch is drawn per step. SalUn reuses it with its
    retain weight (salun.py)."""
    wrong = random_other_labels(data.labels, data.sample_ids, unwrap(model).num_classes, data.seed)
    forget = train_objective(model, data, data.images, wrong)
    retain_images, retain_labels = _retain_batch(data, job)
    retain = train_objective(model, data, retain_images, retain_labels)
    return {"loss": forget + retain_weight * retain, "forget_random": forget, "retain": retain}


def l1_sparse_step(model: nn.Module, data: StepData, job) -> dict[str, Tensor]:
    """Primary split: retain."""
    retain = train_objective(model, data, data.images, data.labels)
    weight = job.l1_weight * (1.0 - data.progress)
    l1 = l1_norm(model)
    return {"loss": retain + weight * l1, "retain": retain, "l1": l1}


def alignment_calibration_step(model: nn.Module, data: StepData, job) -> dict[str, Tensor]:
    """Primary split: forget (views' agreement lowered); a retain batch is drawn per step."""
    agreement = view_agreement(model, data, data.images)
    retain_images, retain_labels = _retain_batch(data, job)
    retain = train_objective(model, data, retain_images, retain_labels)
    return {"loss": retain + job.alignment_weight * agreement, "retain": retain, "forget_agreement": agreement}
