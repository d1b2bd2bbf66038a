"""Shard a DataLoader across data-parallel ranks: each rank reads a disjoint, equally sized slice of one
per-epoch permutation (``torch.utils.data.DistributedSampler`` seeded by the job's seed).

Why not ``ray.train.torch.prepare_data_loader``: it seeds every run's sampler with 0 (so ``runtime.seed`` would not
change the data order) and cannot say when a rank's share is smaller than one batch. This keeps the per-rank batch
size of the loader (Ray's convention: the global batch is ``world_size * batch_size``) and the loader's other
settings (``pin_memory``, workers, ``drop_last``); with ``drop_last`` every rank runs the same number of equal
batches, which losses that gather across ranks (lightly ``gather_distributed``) require.

The ranks' batches at step ``t`` together are the slice ``perm[t*B*W:(t+1)*B*W]`` of the epoch's permutation, so a
1-rank loader with batch ``W*B`` sees the same global batches as ``W`` ranks with batch ``B``.

Example:
    >>> loader = shard_loader(make_loader(dataset, 64, shuffle=True, drop_last=True), rank=1, world_size=2, seed=0)
    >>> loader.sampler.set_epoch(3)   # set_loader_epoch() does this each epoch
"""

from __future__ import annotations

import numpy as np
from torch.utils.data import DataLoader, DistributedSampler, SequentialSampler

from trainables.errors import UserError


def shard_loader(loader: DataLoader, *, rank: int, world_size: int, seed: int) -> DataLoader:
    """The same loader reading only this rank's shard (also for ``world_size=1``: one order for every rank count)."""
    shuffle = not isinstance(loader.sampler, SequentialSampler)
    sampler = DistributedSampler(loader.dataset, num_replicas=world_size, rank=rank, shuffle=shuffle, seed=seed,
                                 drop_last=loader.drop_last)
    batch_size = loader.batch_size
    if loader.drop_last:
        check_shard_size(len(sampler), len(loader.dataset), batch_size, world_size)
    return DataLoader(loader.dataset, batch_size=batch_size, sampler=sampler, num_workers=loader.num_workers,
                      collate_fn=loader.collate_fn, pin_memory=loader.pin_memory, drop_last=loader.drop_last,
                      timeout=loader.timeout, worker_init_fn=loader.worker_init_fn, generator=loader.generator,
                      persistent_workers=loader.persistent_workers)


def check_shard_size(per_rank: int, total: int, batch_size: int, world_size: int) -> None:
    """A rank's share must hold one full batch (with ``drop_last``), else a :class:`UserError` saying what fits."""
    if per_rank < batch_size:
        raise UserError(
            f"each of the {world_size} workers gets {per_rank} of {total} training samples, fewer "
            f"than one batch of {batch_size} (the batch size is per worker); lower the batch size to at most "
            f"{per_rank} or use fewer workers")


def shard_positions(n: int, *, rank: int, world_size: int, seed: int, epoch: int, shuffle: bool = True,
                    drop_last: bool = True) -> np.ndarray:
    """The positions (into a dataset of ``n`` samples) that :func:`shard_loader`'s sampler gives ``rank`` in
    ``epoch``, in order: what a streaming reader must deliver for the same batches as the in-memory loader."""
    sampler = DistributedSampler(range(n), num_replicas=world_size, rank=rank, shuffle=shuffle, seed=seed,
                                 drop_last=drop_last)
    sampler.set_epoch(epoch)
    return np.fromiter(sampler, dtype=np.int64, count=len(sampler))
