"""Sharding a loader across data-parallel ranks (no Ray needed), and merging the ranks' metrics."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from trainables.data.distributed import shard_loader
from trainables.data.loaders import ImageSubset, make_loader
from trainables.errors import UserError
from trainables.loops.context import set_loader_epoch
from trainables.loops.rank_metrics import merge_rank_metrics


def _ids_per_step(loader, epoch: int) -> list[np.ndarray]:
    set_loader_epoch(loader, 0, epoch)
    return [ids.numpy() for _, _, ids in loader]


@pytest.fixture(scope="module")
def dataset(digits_source):
    return ImageSubset(digits_source, np.arange(100))


def test_ranks_read_disjoint_equal_shards_whose_union_is_the_one_rank_global_batch(dataset):
    ranks = [shard_loader(make_loader(dataset, 16, shuffle=True, drop_last=True), rank=r, world_size=2, seed=7)
             for r in range(2)]
    single = shard_loader(make_loader(dataset, 32, shuffle=True, drop_last=True), rank=0, world_size=1, seed=7)
    for epoch in (0, 1):
        steps = [_ids_per_step(loader, epoch) for loader in ranks]
        assert len(steps[0]) == len(steps[1]) == 3  # 50 samples per rank -> 3 full batches of 16
        assert all(len(b) == 16 for rank_steps in steps for b in rank_steps)
        assert not set(np.concatenate(steps[0])) & set(np.concatenate(steps[1]))
        for t, global_batch in enumerate(_ids_per_step(single, epoch)):
            assert sorted(np.concatenate([steps[0][t], steps[1][t]])) == sorted(global_batch)
    assert not np.array_equal(_ids_per_step(ranks[0], 0)[0], _ids_per_step(ranks[0], 1)[0])  # reshuffled per epoch


@pytest.mark.filterwarnings("ignore:.pin_memory. argument is set as true")
def test_the_seed_sets_the_order_and_loader_settings_survive(dataset):
    base = make_loader(dataset, 10, shuffle=True, drop_last=True, pin_memory=True)
    a = shard_loader(base, rank=0, world_size=2, seed=0)
    b = shard_loader(base, rank=0, world_size=2, seed=1)
    assert not np.array_equal(_ids_per_step(a, 0)[0], _ids_per_step(b, 0)[0])
    assert a.pin_memory and a.drop_last and a.batch_size == 10
    unshuffled = shard_loader(make_loader(dataset, 10, shuffle=False), rank=1, world_size=2, seed=0)
    assert _ids_per_step(unshuffled, 0)[0].tolist() == list(range(1, 20, 2))


def test_a_shard_smaller_than_one_batch_is_a_user_error(dataset):
    with pytest.raises(UserError, match="each of the 4 workers gets 25 of 100 training samples.*batch of 32"):
        shard_loader(make_loader(dataset, 32, shuffle=True, drop_last=True), rank=0, world_size=4, seed=0)


def test_merge_rank_metrics_averages_losses_adds_throughput_keeps_rank0_only_keys():
    merged = merge_rank_metrics([
        {"epoch": 3, "loss": 1.0, "gp": 0.5, "images_per_s": 50.0, "epoch_time_s": 2.0, "knn_acc": 0.4},
        {"epoch": 3, "loss": 3.0, "gp": 1.5, "images_per_s": 40.0, "epoch_time_s": 2.5},
    ])
    assert merged == {"epoch": 3, "loss": 2.0, "gp": 1.0, "images_per_s": 90.0, "epoch_time_s": 2.5, "knn_acc": 0.4}
    assert merge_rank_metrics([{"epoch": 1, "loss": torch.tensor(1.0).item()}]) == {"epoch": 1, "loss": 1.0}
