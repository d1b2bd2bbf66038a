"""Build a model from a method name and a :class:`~trainables.config.ModelConfig`."""

from __future__ import annotations

from trainables.errors import UserError
from trainables.models.backbones import build_backbone
from trainables.models.base import UnlearnableModel
from trainables.models.contrastive import BYOL, MoCo, SimCLR
from trainables.models.supervised import Classifier

MODEL_CLASSES: dict[str, type[UnlearnableModel]] = {"moco": MoCo, "simclr": SimCLR, "byol": BYOL,
                                                     "supervised": Classifier}


def default_embed_output(method: str) -> str:
    return "logits" if method == "supervised" else "features"


def build_model(method: str, cfg, *, num_classes: int = 10, num_members: int | None = None) -> UnlearnableModel:
    if method not in MODEL_CLASSES:
        raise UserError(f"unknown method {method!r}; choose one of: {', '.join(MODEL_CLASSES)}")
    embed_output = cfg.embed_output or default_embed_output(method)
    if method == "supervised" and embed_output == "projection":
        raise UserError("a supervised model has no projection head; use embed_output=features or logits")
    if method != "supervised" and embed_output == "logits":
        raise UserError(f"a {method} encoder has no logits; use embed_output=features or projection")
    backbone, dim = build_backbone(cfg.backbone, cfg.width, cfg.norm)
    bank = cfg.memory_bank_size
    if num_members is not None:  # a queue longer than the data set holds stale copies of the positives
        bank = max(1, min(bank, num_members))
    return MODEL_CLASSES[method](
        backbone, dim, proj_dim=cfg.proj_dim, temperature=cfg.temperature, memory_bank_size=bank,
        momentum=cfg.momentum, num_classes=num_classes, embed_output=embed_output,
    )
