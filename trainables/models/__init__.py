"""Backbones, contrastive encoders (MoCo v2, SimCLR, BYOL) and a supervised classifier behind one interface."""

from trainables.models.base import UnlearnableModel, unwrap
from trainables.models.registry import build_model

__all__ = ["UnlearnableModel", "build_model", "unwrap"]
