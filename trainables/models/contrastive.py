"""Contrastive encoders built from lightly's heads, losses and momentum utilities.

- SimCLR (Chen et al., 2020): projection head + NT-Xent over in-batch negatives.
- MoCo v2 (Chen et al., 2020; He et al., 2020): momentum key encoder + NT-Xent against a memory bank of keys.
- BYOL (Grill et al., 2020): predictor on the online branch, momentum target, negative cosine similarity.

All take ``views = [x_a, x_b]`` (two augmentations of the same images, each (B, 3, S, S)) for ``task="loss"``.
"""

from __future__ import annotations

import copy

import torch
from lightly.loss import NegativeCosineSimilarity, NTXentLoss
from lightly.models.modules import (
    BYOLPredictionHead,
    BYOLProjectionHead,
    MoCoProjectionHead,
    SimCLRProjectionHead,
)
from lightly.models.utils import deactivate_requires_grad, update_momentum
from lightly.utils.scheduler import cosine_schedule
from torch import Tensor, nn

from trainables.models.base import UnlearnableModel


class SimCLR(UnlearnableModel):
    method = "simclr"

    def __init__(self, backbone: nn.Module, feature_dim: int, proj_dim: int = 128, temperature: float = 0.1,
                 embed_output: str = "features", hidden_dim: int | None = None, **_):
        super().__init__(backbone, feature_dim, embed_output)
        self.projection_head = SimCLRProjectionHead(feature_dim, hidden_dim or feature_dim, proj_dim)
        self.criterion = NTXentLoss(temperature=temperature, gather_distributed=True)

    def head_output(self, features: Tensor) -> Tensor:
        return self.projection_head(features)

    def training_loss(self, views, labels=None) -> Tensor:
        x_a, x_b = views
        return self.criterion(self.head_output(self.backbone(x_a)), self.head_output(self.backbone(x_b)))


class _Momentum(UnlearnableModel):
    """Shared momentum-target machinery (MoCo, BYOL): the target follows the online weights by EMA."""

    def _make_targets(self, momentum: float) -> None:
        self.backbone_momentum = copy.deepcopy(self.backbone)
        self.projection_head_momentum = copy.deepcopy(self.projection_head)
        deactivate_requires_grad(self.backbone_momentum)
        deactivate_requires_grad(self.projection_head_momentum)
        self.base_momentum = momentum

    def head_output(self, features: Tensor) -> Tensor:
        return self.projection_head(features)

    @torch.no_grad()
    def target(self, x: Tensor) -> Tensor:
        return self.projection_head_momentum(self.backbone_momentum(x)).detach()

    @torch.no_grad()
    def momentum_step(self, step: int, max_steps: int) -> None:
        m = cosine_schedule(step, max(max_steps, 1), self.base_momentum, 1.0)
        update_momentum(self.backbone, self.backbone_momentum, m=m)
        update_momentum(self.projection_head, self.projection_head_momentum, m=m)


class MoCo(_Momentum):
    method = "moco"

    def __init__(self, backbone: nn.Module, feature_dim: int, proj_dim: int = 128, temperature: float = 0.1,
                 memory_bank_size: int = 4096, momentum: float = 0.99, embed_output: str = "features",
                 hidden_dim: int | None = None, **_):
        super().__init__(backbone, feature_dim, embed_output)
        self.projection_head = MoCoProjectionHead(feature_dim, hidden_dim or feature_dim, proj_dim)
        self._make_targets(momentum)
        # gather_distributed: every rank enqueues the keys of all ranks, so the banks stay identical under DDP.
        self.criterion = NTXentLoss(temperature=temperature, memory_bank_size=(memory_bank_size, proj_dim),
                                    gather_distributed=True)

    def extra_state_tensors(self) -> dict[str, Tensor]:
        bank = self.criterion.memory_bank  # lightly keeps the queue in non-persistent buffers
        return {"memory_bank": bank.bank.detach().cpu().clone(), "memory_bank_ptr": bank.bank_ptr.detach().cpu().clone()}

    def load_extra_state_tensors(self, state: dict[str, Tensor]) -> None:
        if "memory_bank" in state:
            bank = self.criterion.memory_bank
            bank.bank.copy_(state["memory_bank"])
            bank.bank_ptr.copy_(state["memory_bank_ptr"])

    def training_loss(self, views, labels=None) -> Tensor:
        x_q, x_k = views
        query = self.head_output(self.backbone(x_q))
        return self.criterion(query, self.target(x_k))


class BYOL(_Momentum):
    method = "byol"

    def __init__(self, backbone: nn.Module, feature_dim: int, proj_dim: int = 128, momentum: float = 0.99,
                 embed_output: str = "features", hidden_dim: int | None = None, **_):
        super().__init__(backbone, feature_dim, embed_output)
        hidden = hidden_dim or 2 * feature_dim
        self.projection_head = BYOLProjectionHead(feature_dim, hidden, proj_dim)
        self.prediction_head = BYOLPredictionHead(proj_dim, hidden, proj_dim)
        self._make_targets(momentum)
        self.criterion = NegativeCosineSimilarity()

    def training_loss(self, views, labels=None) -> Tensor:
        x_a, x_b = views
        p_a = self.prediction_head(self.head_output(self.backbone(x_a)))
        p_b = self.prediction_head(self.head_output(self.backbone(x_b)))
        return 0.5 * (self.criterion(p_a, self.target(x_b)) + self.criterion(p_b, self.target(x_a)))
