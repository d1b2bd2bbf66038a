"""Map-style datasets over a subset of an :class:`ImageSource` (by sample id) and their DataLoaders."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from trainables.data.sources import ImageSource


class ImageSubset(Dataset):
    """Items are ``(image, label, sample_id)``; ``image`` is uint8 (3, S, S) or, with a transform, its output."""

    def __init__(self, source: ImageSource, sample_ids: np.ndarray, transform: Callable | None = None):
        self.source = source
        self.sample_ids = np.asarray(sample_ids, dtype=np.int64)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.sample_ids)

    def __getitem__(self, index: int):
        sid = int(self.sample_ids[index])
        image = self.source.images[sid]
        if self.transform is not None:
            image = self.transform(image)
        return image, int(self.source.labels[sid]), sid

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The whole subset at once (uint8 images, labels, ids): evaluation works on these directly."""
        ids = torch.from_numpy(self.sample_ids)
        return self.source.images[ids], torch.from_numpy(self.source.labels[self.sample_ids]), ids


def make_loader(dataset: Dataset, batch_size: int, *, shuffle: bool, drop_last: bool = False, seed: int = 0,
                num_workers: int = 0, pin_memory: bool = False) -> DataLoader:
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(dataset, batch_size=min(batch_size, len(dataset)), shuffle=shuffle, drop_last=drop_last,
                      generator=generator, num_workers=num_workers, pin_memory=pin_memory,
                      persistent_workers=num_workers > 0)
