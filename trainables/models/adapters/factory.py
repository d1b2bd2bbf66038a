"""``factory:package.module:function``: any ``nn.Module``, built by the user's own function.

The function is called with no arguments, or with ``num_classes=N`` when it takes that parameter and the model is a
classifier, and returns the model or ``(model, loss_fn)``:

- a classifier (``--kind classifier``): ``model(x)`` gives logits (B, C); ``loss_fn(logits, labels)``, default
  cross-entropy. Its last linear layer with C outputs is the head; the rest is the backbone (features).
- an encoder (``--kind encoder``): ``model(x)`` gives the embedding (B, D) that penalties and attacks see;
  ``loss_fn(z_a, z_b)`` on two augmented views, default NT-Xent (SimCLR's; recorded as method ``simclr``).

The loss must hold no weights (it is not part of the state_dict). A checkpoint of a factory model imports the module
whenever it is loaded: load only checkpoints you trust. Standard-library modules are refused, so a crafted
``meta.json`` cannot name ``os:system`` or the like.
"""

from __future__ import annotations

import importlib
import inspect
import re
import sys
from collections.abc import Callable
from typing import Any

from torch import Tensor, nn

from trainables.errors import UserError
from trainables.models.adapters.base import ModelAdapter
from trainables.models.adapters.classifier_head import split_classifier
from trainables.models.base import UnlearnableModel
from trainables.models.supervised import Classifier

_DOTTED = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


def load_factory(target: str) -> Callable[..., Any]:
    """The function named by ``package.module:function``; UserError when it does not import."""
    module_name, _, func_name = target.partition(":")
    if not _DOTTED.match(module_name) or not _DOTTED.match(func_name or "-"):
        raise UserError(f"factory:{target}: expected factory:package.module:function")
    if module_name.split(".")[0] in sys.stdlib_module_names:
        raise UserError(f"factory:{target}: {module_name} is a standard-library module, not a model factory")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # noqa: BLE001  any failure while importing the user's module is a bad spec
        raise UserError(f"factory:{target}: cannot import {module_name}: {type(exc).__name__}: {exc} (is it on "
                        f"PYTHONPATH?)") from None
    func = module
    for part in func_name.split("."):
        func = getattr(func, part, None)
        if func is None:
            raise UserError(f"factory:{target}: {module_name} has no attribute {func_name}")
    if not callable(func):
        raise UserError(f"factory:{target}: {func_name} is not callable")
    return func


def call_factory(target: str, num_classes: int | None) -> tuple[nn.Module, Callable | None]:
    func = load_factory(target)
    try:
        takes_classes = "num_classes" in inspect.signature(func).parameters
    except (TypeError, ValueError):
        takes_classes = False
    try:
        made = func(num_classes=num_classes) if takes_classes and num_classes is not None else func()
    except Exception as exc:  # noqa: BLE001
        raise UserError(f"factory:{target} failed: {type(exc).__name__}: {exc}") from None
    model, loss = (made if isinstance(made, tuple) and len(made) == 2 else (made, None))
    if not isinstance(model, nn.Module):
        raise UserError(f"factory:{target} returned a {type(model).__name__}, not an nn.Module (or a "
                        f"(model, loss_fn) pair)")
    if loss is not None and not callable(loss):
        raise UserError(f"factory:{target}: its loss is a {type(loss).__name__}, not callable")
    if isinstance(loss, nn.Module) and any(True for _ in loss.parameters()):
        raise UserError(f"factory:{target}: its loss has weights; a loss must be stateless")
    return model, loss


class FactoryEncoder(UnlearnableModel):
    """The user's network as the backbone; its output is both the features and the "head" (no projection)."""

    method = "simclr"

    def __init__(self, net: nn.Module, feature_dim: int, loss_fn: Callable | None, temperature: float,
                 embed_output: str = "features"):
        super().__init__(net, feature_dim, "features" if embed_output == "projection" else embed_output)
        self.user_key_prefixes = {"": "backbone."}
        if loss_fn is None:
            from lightly.loss import NTXentLoss

            loss_fn = NTXentLoss(temperature=temperature, gather_distributed=True)
        object.__setattr__(self, "loss_fn", loss_fn)  # not a submodule: no weights, not in the state_dict

    def head_output(self, features: Tensor) -> Tensor:
        return features

    def training_loss(self, views, labels=None) -> Tensor:
        x_a, x_b = views
        return self.loss_fn(self.backbone(x_a), self.backbone(x_b))


class FactoryClassifier(Classifier):
    """A classifier whose training loss is the factory's ``loss_fn(logits, labels)`` (else cross-entropy)."""

    loss_fn: Callable | None = None

    def training_loss(self, inputs, labels=None) -> Tensor:
        if self.loss_fn is None:
            return super().training_loss(inputs, labels)
        x = inputs[0] if isinstance(inputs, (list, tuple)) else inputs
        return self.loss_fn(self.head_output(self.backbone(x)), labels)


class FactoryAdapter(ModelAdapter):
    family = "factory"
    methods = ("supervised", "simclr")  # classifier, or an encoder with its own loss (else NT-Xent)

    def build(self, name: str, method: str, cfg, *, num_classes: int, num_members: int | None) -> UnlearnableModel:
        self.check_method(name, method)
        if method == "supervised":
            net, loss = call_factory(name, num_classes)
            model = split_classifier(net, num_classes, cfg.embed_output, cls=FactoryClassifier)
            object.__setattr__(model, "loss_fn", loss)
            return model
        net, loss = call_factory(name, None)
        return FactoryEncoder(net, 0, loss, cfg.temperature, cfg.embed_output)
