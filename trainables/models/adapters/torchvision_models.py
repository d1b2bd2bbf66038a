"""``torchvision:NAME``: any torchvision classification model (``resnet18``, ``resnet50``, ``vit_b_16``, ...) with
its own stem, built with ``weights=None`` (nothing is downloaded: the weights come from the user's file).

As a classifier the network keeps its layout: its last linear layer is the head (logits), the rest the backbone.
As the backbone of a lightly encoder (``lightly:simclr --backbone torchvision:resnet18``) the last linear layer is
removed, as lightly's examples do, and the features are its input (512 for ResNet-18).
"""

from __future__ import annotations

import difflib

from torch import nn

from trainables.errors import UserError
from trainables.models.adapters.base import ModelAdapter
from trainables.models.adapters.classifier_head import detach_module, last_linear, split_classifier
from trainables.models.base import UnlearnableModel


def torchvision_names() -> list[str]:
    import torchvision.models as tvm

    return tvm.list_models(module=tvm)  # classification builders only (no detection / segmentation / video)


def build_torchvision_name_error(name: str) -> None:
    """Raise the UserError for a name that is no torchvision classification builder (with close matches)."""
    names = torchvision_names()
    close = difflib.get_close_matches(name, names, n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else f"; choose one of torchvision's {len(names)} " \
                                                               f"classification models, e.g. resnet18, vit_b_16"
    raise UserError(f"unknown architecture torchvision:{name}{hint}")


def build_torchvision(name: str, **kwargs) -> nn.Module:
    """``torchvision.models.NAME(weights=None, **kwargs)``; UserError for a name that is no classifier builder."""
    import torchvision.models as tvm

    if name not in torchvision_names():
        build_torchvision_name_error(name)
    try:
        return tvm.get_model(name, weights=None, **kwargs)
    except (TypeError, ValueError) as exc:
        raise UserError(f"cannot build torchvision:{name}: {exc}") from None


def torchvision_backbone(spec: str) -> tuple[nn.Module, int]:
    """The backbone named by ``torchvision:NAME`` without its classifier; returns it and its feature size."""
    family, _, name = spec.partition(":")
    if family != "torchvision" or not name:
        raise UserError(f"unknown backbone {spec!r}; a lightly architecture takes --backbone torchvision:NAME")
    net = build_torchvision(name)
    head = last_linear(net)
    if head is None:
        raise UserError(f"torchvision:{name} has no final linear layer to remove; it cannot serve as a backbone")
    return net, detach_module(net, head).in_features


class TorchvisionAdapter(ModelAdapter):
    family = "torchvision"
    methods = ("supervised",)

    def build(self, name: str, method: str, cfg, *, num_classes: int, num_members: int | None) -> UnlearnableModel:
        self.check_method(name, method)
        return split_classifier(build_torchvision(name, num_classes=num_classes), num_classes, cfg.embed_output)
