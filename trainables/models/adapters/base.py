"""The adapter interface: how one family of architectures becomes an :class:`UnlearnableModel`.

Every model the tools touch is an ``UnlearnableModel`` (``trainables/models/base.py``), so the unlearning loop,
the attacks and the utility code never ask where a model came from. It offers:

- the penalised / audited output: ``model(x)`` (``task="embed"``), (B, D): backbone features of an encoder, logits
  of a classifier (``embed_output`` chooses); ``task="features"`` / ``task="head"`` for probes and attacks;
- the training loss: ``model(views, labels, task="loss")``, a scalar (two views for encoders, one and labels for
  classifiers): L_train of the paper's Eq. 3 (arXiv 2405.07317);
- its kind: ``model.kind`` is ``"encoder"`` or ``"classifier"`` (``method`` ``supervised`` is the classifier).

An adapter builds that model for a spec such as ``torchvision:resnet18`` and says how the user's own state_dict
keys map onto the model's (``user_key_prefixes``), so ``unlearn import`` can load the user's file and the tools keep
the usual layout (``backbone.*`` is what a features-only penalty may change).
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from torch import nn

from trainables.errors import UserError
from trainables.models.base import UnlearnableModel
from trainables.models.contrastive import BYOL, MoCo, SimCLR
from trainables.models.supervised import Classifier

MODEL_CLASSES: dict[str, type[UnlearnableModel]] = {"moco": MoCo, "simclr": SimCLR, "byol": BYOL,
                                                     "supervised": Classifier}


class ModelAdapter(ABC):
    """One family of architectures: ``family:NAME`` specs (the built-in models have the family ``""``)."""

    family: str = ""
    methods: tuple[str, ...] = tuple(MODEL_CLASSES)  # the methods (hence kinds) this family can build

    @abstractmethod
    def build(self, name: str, method: str, cfg, *, num_classes: int, num_members: int | None) -> UnlearnableModel:
        """A freshly initialised model (no weights read) of architecture ``name`` for ``method``."""

    def check_method(self, name: str, method: str) -> None:
        if method not in self.methods:
            raise UserError(f"{self.family}:{name} builds a {' or '.join(self.methods)} model, not {method}")

    def native_state(self, model: UnlearnableModel, state: dict) -> dict:
        """The user's state_dict with its keys renamed to ``model``'s (see ``user_key_prefixes``)."""
        return rename_keys(state, model.user_key_prefixes)


def assemble(method: str, backbone: nn.Module, feature_dim: int, cfg, *, num_classes: int,
             num_members: int | None) -> UnlearnableModel:
    """An encoder (SimCLR / MoCo / BYOL heads from lightly) or a linear classifier on ``backbone`` (B, feature_dim)."""
    bank = cfg.memory_bank_size
    if num_members is not None:  # a queue longer than the data set holds stale copies of the positives
        bank = max(1, min(bank, num_members))
    return MODEL_CLASSES[method](
        backbone, feature_dim, proj_dim=cfg.proj_dim, temperature=cfg.temperature, memory_bank_size=bank,
        momentum=cfg.momentum, num_classes=num_classes, embed_output=cfg.embed_output, hidden_dim=cfg.hidden_dim,
    )


def rename_keys(state: dict, prefixes: dict[str, str]) -> dict:
    """Rename each key by its longest matching prefix in ``prefixes`` (user prefix -> model prefix)."""
    ordered = sorted(prefixes.items(), key=lambda kv: -len(kv[0]))
    out = {}
    for key, value in state.items():
        src, dst = next(((s, d) for s, d in ordered if key.startswith(s)), ("", ""))
        out[dst + key[len(src):]] = value
    return out


def user_state(model: UnlearnableModel) -> dict:
    """``model``'s weights under the user's own key names (the inverse of :meth:`ModelAdapter.native_state`)."""
    return rename_keys(model.state_dict(), {d: s for s, d in model.user_key_prefixes.items()})
