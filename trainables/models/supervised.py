"""A supervised classifier: backbone + linear head, cross-entropy. Its ``embed`` output defaults to logits."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from trainables.models.base import UnlearnableModel


class Classifier(UnlearnableModel):
    method = "supervised"
    is_contrastive = False

    def __init__(self, backbone: nn.Module, feature_dim: int, num_classes: int, embed_output: str = "logits", **_):
        super().__init__(backbone, feature_dim, embed_output)
        self.num_classes = num_classes
        self.classifier = nn.Linear(feature_dim, num_classes)

    def head_output(self, features: Tensor) -> Tensor:
        return self.classifier(features)

    def training_loss(self, inputs, labels=None) -> Tensor:
        x = inputs[0] if isinstance(inputs, (list, tuple)) else inputs
        if labels is None:
            raise ValueError("a supervised model's training loss needs labels")
        return F.cross_entropy(self.head_output(self.backbone(x)), labels)
