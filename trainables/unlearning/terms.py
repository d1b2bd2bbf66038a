"""Loss terms shared by the unlearning methods, all through ``model(..., task=...)`` so that DDP sees every call.

- :func:`train_objective`: L_train, the model's own training objective (contrastive loss on two augmented views
  for MoCo/SimCLR/BYOL, cross-entropy on one view for a classifier).
- :func:`view_agreement`: mean cosine similarity of the encoder outputs of two augmented views (what EncoderMI
  and the paper's COSSIM measure; alignment calibration lowers it on the forget set).
- :func:`l1_norm`: sum of |w| over the trainable weights (l1-sparse unlearning).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from trainables.models.base import unwrap
from trainables.unlearning.step_data import StepData


def train_objective(model: nn.Module, data: StepData, images: Tensor, labels: Tensor) -> Tensor:
    """L_train on a uint8 batch (B, 3, S, S): contrastive on 2 views, or cross-entropy with ``labels``."""
    if unwrap(model).is_contrastive:
        return model(data.augmented(images, 2), task="loss")
    return model(data.augmented(images, 1), labels.to(data.device), task="loss")


def view_agreement(model: nn.Module, data: StepData, images: Tensor) -> Tensor:
    """mean_i cos(model(v1_i), model(v2_i)) over two augmented views of a uint8 batch."""
    v1, v2 = data.augmented(images, 2)
    return F.cosine_similarity(model(v1, task="embed"), model(v2, task="embed"), dim=1).mean()


def l1_norm(model: nn.Module) -> Tensor:
    params = [p for p in model.parameters() if p.requires_grad]
    return torch.stack([p.abs().sum() for p in params]).sum()


def random_other_labels(labels: Tensor, sample_ids: Tensor, num_classes: int, seed: int = 0) -> Tensor:
    """A fixed pseudo-random label per sample id, never its true label (B,): the same id gets the same wrong
    label in every epoch and on every rank."""
    mixed = (sample_ids.long() * 2_654_435_761 + seed * 40_503 + 12_345) % 2_147_483_647
    shift = 1 + mixed % (num_classes - 1)
    return (labels.long() + shift) % num_classes
