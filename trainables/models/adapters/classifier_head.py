"""Split a classifier network into backbone and final linear layer, so that ``task="features"`` (probes, kNN) sees
the input of the head and ``task="head"`` / ``"embed"`` the logits, as for the built-in classifier."""

from __future__ import annotations

from torch import nn

from trainables.models.supervised import Classifier


def last_linear(net: nn.Module, out_features: int | None = None) -> str | None:
    """Dotted path of the last ``nn.Linear`` registered in ``net`` (with ``out_features`` outputs when given)."""
    found = None
    for path, module in net.named_modules():
        if isinstance(module, nn.Linear) and (out_features is None or module.out_features == out_features):
            found = path
    return found or None


def detach_module(net: nn.Module, path: str) -> nn.Module:
    """Replace the submodule at ``path`` by ``nn.Identity`` and return it."""
    parent_path, _, leaf = path.rpartition(".")
    parent = net.get_submodule(parent_path) if parent_path else net
    module = getattr(parent, leaf)
    setattr(parent, leaf, nn.Identity())
    return module


def split_classifier(net: nn.Module, num_classes: int, embed_output: str = "logits", *,
                     cls: type[Classifier] = Classifier) -> Classifier:
    """A :class:`Classifier` whose backbone is ``net`` without its last linear layer (the user's own ``Linear``
    becomes ``classifier``). Without such a layer the whole network is the backbone and features are the logits."""
    head_path = last_linear(net, num_classes)
    if head_path is None:
        model = cls(net, num_classes, num_classes, embed_output=embed_output)
        model.classifier = nn.Identity()
        model.user_key_prefixes = {"": "backbone."}
    else:
        head = detach_module(net, head_path)
        model = cls(net, head.in_features, num_classes, embed_output=embed_output)
        model.classifier = head
        model.user_key_prefixes = {"": "backbone.", head_path + ".": "classifier."}
    return model
