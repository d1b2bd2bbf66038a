"""``lightly:simclr|moco|byol`` with ``--backbone torchvision:NAME``: the layout of lightly's own examples.

    backbone.*                    the torchvision network without its last linear layer (``fc = Identity``), or
                                  ``nn.Sequential(*children[:-1])`` (keys ``backbone.0.*``): both are read
    projection_head.*             SimCLRProjectionHead / MoCoProjectionHead / BYOLProjectionHead
    prediction_head.*             BYOL only (BYOLPredictionHead)
    backbone_momentum.*, projection_head_momentum.*    MoCo / BYOL momentum targets; copied from the online
                                  weights when the file has none (lightly initialises them that way)

The heads' widths are read from the file by ``unlearn import`` (``model.hidden_dim``, ``model.proj_dim``).
"""

from __future__ import annotations

import re

import torch

from trainables.errors import UserError
from trainables.models.adapters.base import ModelAdapter, assemble
from trainables.models.adapters.torchvision_models import torchvision_backbone
from trainables.models.base import UnlearnableModel

MOMENTUM_PARTS = {"backbone_momentum.": "backbone.", "projection_head_momentum.": "projection_head."}


class LightlyAdapter(ModelAdapter):
    family = "lightly"
    methods = ("simclr", "moco", "byol")

    def build(self, name: str, method: str, cfg, *, num_classes: int, num_members: int | None) -> UnlearnableModel:
        if name not in self.methods:
            raise UserError(f"unknown architecture lightly:{name}; choose lightly:simclr, lightly:moco or lightly:byol")
        if name != method:
            raise UserError(f"lightly:{name} is a {name} model, but its method is {method}")
        if not cfg.arch_backbone:
            raise UserError(f"lightly:{name} needs its backbone: --backbone torchvision:NAME (e.g. resnet18)")
        backbone, dim = torchvision_backbone(cfg.arch_backbone)
        return assemble(method, backbone, dim, cfg, num_classes=num_classes, num_members=num_members)

    def native_state(self, model: UnlearnableModel, state: dict) -> dict:
        state = dict(state)
        for part in ("backbone.", "backbone_momentum."):  # nn.Sequential(*children[:-1]): position -> child name
            names = [n for n, _ in getattr(model, part[:-1]).named_children()] if hasattr(model, part[:-1]) else []
            state = {_child_name(k, part, names): v for k, v in state.items()}
        own = model.state_dict()
        if any(k.startswith(tuple(MOMENTUM_PARTS)) for k in own) and \
                not any(k.startswith(tuple(MOMENTUM_PARTS)) for k in state):
            for key in own:
                for target, online in MOMENTUM_PARTS.items():
                    if key.startswith(target) and online + key[len(target):] in state:
                        state[key] = state[online + key[len(target):]].clone()
        return state


def _child_name(key: str, part: str, names: list[str]) -> str:
    m = re.match(re.escape(part) + r"(\d+)\.(.*)", key)
    if m is None or int(m.group(1)) >= len(names) or names[int(m.group(1))].isdigit():
        return key
    return f"{part}{names[int(m.group(1))]}.{m.group(2)}"


def head_widths(state: dict[str, torch.Tensor]) -> dict[str, int]:
    """``hidden_dim`` and ``proj_dim`` of lightly heads, read from the 2-D weights of ``projection_head.*``."""
    def layer_index(key: str) -> tuple[int, ...]:
        return tuple(int(t) for t in re.findall(r"\.(\d+)\.", key))

    weights = sorted((k for k, v in state.items() if k.startswith("projection_head.") and k.endswith(".weight")
                      and getattr(v, "ndim", 0) == 2), key=layer_index)
    if not weights:
        return {}
    return {"hidden_dim": int(state[weights[0]].shape[0]), "proj_dim": int(state[weights[-1]].shape[0])}
