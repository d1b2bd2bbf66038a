"""Model factories for `unlearn import --arch factory:tests.import_helpers:NAME` in the tests."""

from __future__ import annotations

import torch.nn.functional as F
from torch import nn


def tiny_classifier(num_classes: int = 2) -> nn.Module:
    """conv -> pool -> linear head: (B, 3, S, S) -> (B, num_classes) logits."""
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(4, num_classes))


def cosine_loss(z_a, z_b):
    """1 - cos(z_a, z_b), averaged: an encoder's training loss on two views."""
    return 1 - F.cosine_similarity(z_a, z_b, dim=1).mean()


def tiny_encoder():
    """An encoder (B, 3, S, S) -> (B, 8) and its own loss."""
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                        nn.Linear(4, 8))
    return net, cosine_loss


def not_a_module():
    return 42
