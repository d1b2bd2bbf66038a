"""The built-in models (``model.arch`` unset): a small CNN or the CIFAR-stem ResNet-18 with SSL heads or a linear
classifier (``trainables/models/backbones.py``, ``contrastive.py``, ``supervised.py``)."""

from __future__ import annotations

from trainables.models.adapters.base import ModelAdapter, assemble
from trainables.models.backbones import build_backbone
from trainables.models.base import UnlearnableModel


class ProjectAdapter(ModelAdapter):
    family = ""

    def build(self, name: str, method: str, cfg, *, num_classes: int, num_members: int | None) -> UnlearnableModel:
        backbone, dim = build_backbone(cfg.backbone, cfg.width, cfg.norm)
        return assemble(method, backbone, dim, cfg, num_classes=num_classes, num_members=num_members)
