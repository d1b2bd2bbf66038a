"""The interface every model offers to loops, losses and attacks.

One ``forward`` serves every use, selected by ``task``, so that everything goes through the DDP wrapper when the
model is distributed (DDP's gradient hooks rely on its forward being called):

- ``model(x)`` / ``task="embed"``: the encoder output that penalties and attacks look at, (B, D). Which output
  (backbone ``features``, SSL ``projection``, classifier ``logits``) is ``embed_output``.
- ``model(views, task="loss")``: the model's own training objective on a batch, a scalar. ``views`` is a list of
  two augmented views (B, 3, S, S) for contrastive models; supervised models take ``(x, labels)``.
- ``model(x, task="features")``: backbone features for kNN / linear probes; ``task="head"``: projection or logits.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn


class UnlearnableModel(nn.Module):
    method: str = ""
    is_contrastive: bool = True
    # user state_dict key prefix -> this model's (``trainables/models/adapters``); identity for the built-in models
    user_key_prefixes: dict[str, str] = {"": ""}  # noqa: RUF012  (read-only; instances set their own)

    def __init__(self, backbone: nn.Module, feature_dim: int, embed_output: str):
        super().__init__()
        self.backbone = backbone
        self.feature_dim = feature_dim
        self.embed_output = embed_output

    @property
    def kind(self) -> str:
        """``"encoder"`` (contrastive: features / projection) or ``"classifier"`` (logits)."""
        return "encoder" if self.is_contrastive else "classifier"

    def forward(self, inputs: Any, labels: Tensor | None = None, *, task: str = "embed") -> Tensor:
        if task == "embed":
            return self.embed(inputs)
        if task == "features":
            return self.backbone(inputs)
        if task == "head":  # projection (encoders) or logits (classifiers)
            return self.head_output(self.backbone(inputs))
        if task == "loss":
            return self.training_loss(inputs, labels)
        raise ValueError(f"unknown task {task!r}")

    def embed(self, x: Tensor) -> Tensor:
        if self.embed_output == "features":
            return self.backbone(x)
        return self.head_output(self.backbone(x))

    def head_output(self, features: Tensor) -> Tensor:  # projection or logits
        raise NotImplementedError

    def training_loss(self, inputs: Any, labels: Tensor | None) -> Tensor:
        raise NotImplementedError

    def momentum_step(self, step: int, max_steps: int) -> None:
        """Update momentum targets after an optimiser step (MoCo, BYOL); a no-op elsewhere."""

    def extra_state_tensors(self) -> dict[str, Tensor]:
        """State outside ``state_dict`` that a resumed run needs (e.g. MoCo's memory bank)."""
        return {}

    def load_extra_state_tensors(self, state: dict[str, Tensor]) -> None:
        pass


def unwrap(model: nn.Module) -> UnlearnableModel:
    """The model inside a DDP wrapper (call helper methods such as ``momentum_step`` on this)."""
    return model.module if hasattr(model, "module") else model  # type: ignore[return-value]


@torch.no_grad()
def embed_all(model: nn.Module, images: Tensor, batch_size: int = 512, task: str = "embed",
              device: torch.device | str = "cpu") -> Tensor:
    """Evaluate ``model(x, task=...)`` over normalised images in batches, eval mode, restoring the mode after."""
    from trainables.data.augment import normalize

    was = model.training
    model.eval()
    out = []
    for i in range(0, len(images), batch_size):
        x = images[i:i + batch_size].to(device)
        x = normalize(x) if x.dtype == torch.uint8 else x
        out.append(model(x, task=task).float().cpu())
    model.train(was)
    return torch.cat(out) if out else torch.zeros(0)
