"""What one optimiser step of an unlearning method sees: its primary batch and draws from the other streams.

The loop walks the *primary* split (forget or retain) with a DataLoader (DistributedSampler under DDP) and gives
each step a :class:`StepData`. Other splits (retain, forget, nonmember_ref) are drawn at random per step from a
:class:`StreamDrawer` seeded per epoch and rank, so a resumed run replays the same draws.

Example:
    >>> x = data.clean(data.images)                        # (B, 3, S, S) normalised, on the device
    >>> ref_images, _ = data.draw("nonmember_ref", len(x)) # uint8, same batch size
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from trainables.data.augment import ViewMaker, normalize
from trainables.data.sources import ImageSource


class StreamDrawer:
    """Random batches (uint8 images, labels) from a fixed set of sample ids. An in-memory source is gathered once,
    at creation; a file-backed one (:class:`~trainables.data.lazy.LazyImages`) is read per draw, so memory stays
    bounded by its cache however large the stream (e.g. retain) is. Both give the same pixels for the same draws."""

    def __init__(self, source: ImageSource, ids: np.ndarray):
        self.ids = np.asarray(ids, dtype=np.int64)
        index = torch.from_numpy(self.ids)
        self.images = source.images[index] if torch.is_tensor(source.images) else None
        self.source_images = source.images
        self.index = index
        self.labels = torch.from_numpy(source.labels[self.ids])
        self.generator = torch.Generator()

    def reseed(self, seed: int) -> None:
        self.generator.manual_seed(seed)

    def draw(self, n: int) -> tuple[Tensor, Tensor]:
        """n samples, without replacement when the stream holds enough of them."""
        if len(self.ids) >= n:
            idx = torch.randperm(len(self.ids), generator=self.generator)[:n]
        else:
            idx = torch.randint(len(self.ids), (n,), generator=self.generator)
        images = self.images[idx] if self.images is not None else self.source_images[self.index[idx]]
        return images, self.labels[idx]


@dataclass
class StepData:
    """The primary batch of a step (uint8 images (B, 3, S, S), labels and sample ids (B,)) and the other streams."""

    images: Tensor
    labels: Tensor
    sample_ids: Tensor
    device: torch.device
    views: ViewMaker
    drawers: dict[str, StreamDrawer]
    channels_last: bool = False
    progress: float = 0.0  # fraction of the run done before this step, in [0, 1)
    seed: int = 0
    step: int = 0  # optimiser steps taken before this one in the run (the same on every rank; kept on resume)
    split: str = ""  # the split this batch comes from (methods whose epochs walk several splits: SCRUB)
    state: Any = None  # the method's per-run state from its prepare hook (prepared.py), or None

    def draw(self, split: str, n: int) -> tuple[Tensor, Tensor]:
        return self.drawers[split].draw(n)

    def clean(self, images: Tensor) -> Tensor:
        """Normalised, un-augmented images on the device."""
        return self._layout(normalize(images.to(self.device, non_blocking=True)))

    def augmented(self, images: Tensor, n_views: int) -> list[Tensor]:
        """``n_views`` augmented views (the pretraining recipe) on the device."""
        return [self._layout(v) for v in self.views(images, self.device, n_views, non_blocking=True)]

    def _layout(self, x: Tensor) -> Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x
