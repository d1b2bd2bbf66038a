"""Build a model from a method name and a :class:`~trainables.config.ModelConfig`, through its adapter
(``trainables/models/adapters``: the built-in backbones unless ``model.arch`` names an imported architecture)."""

from __future__ import annotations

from trainables.errors import UserError
from trainables.models.adapters import adapter_for
from trainables.models.adapters.base import MODEL_CLASSES
from trainables.models.base import UnlearnableModel

__all__ = ["MODEL_CLASSES", "build_model", "default_embed_output"]


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
    adapter, name = adapter_for(cfg.arch)
    return adapter.build(name, method, cfg.model_copy(update={"embed_output": embed_output}),
                         num_classes=num_classes, num_members=num_members)
