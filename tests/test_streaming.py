"""Ray Data as the reader of file-backed training data (orchestrator/run/streaming.py), without a TorchTrainer:
the per-(epoch, rank) datasets are iterated directly on the session Ray instance, as a worker would."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from orchestrator.run.streaming import StreamedLoader, StreamPlan, build_datasets, dataset_name, plan_stream
from tests.conftest import tiny_job
from trainables.data import load_source
from trainables.data.decode import decode_image
from trainables.data.distributed import shard_loader
from trainables.data.loaders import ImageSubset, make_loader
from trainables.errors import UserError
from trainables.jobs.pretrain import pretrain_train_task

SIZE = 16


def write_image_folder(root, count: int, size: int = SIZE) -> None:
    """``count`` digits images as PNGs in one folder per class (an ``imagefolder:`` data set)."""
    from PIL import Image

    digits = load_source("digits", image_size=size)
    for i in range(count):
        label = int(digits.labels[i])
        (root / str(label)).mkdir(parents=True, exist_ok=True)
        Image.fromarray(digits.images[i].permute(1, 2, 0).numpy()).save(root / str(label) / f"{i:05d}.png")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("folder")
    write_image_folder(root, 90)
    return root


def test_decode_gives_the_pixels_the_in_memory_imagefolder_loader_holds(folder):
    source = load_source(f"imagefolder:{folder}", image_size=SIZE)
    assert source.paths is not None and len(source.paths) == len(source) == 90
    for i in (0, 41, 89):
        assert np.array_equal(decode_image(source.paths[i], SIZE), source.images[i].permute(1, 2, 0).numpy())


def test_an_undecodable_file_is_a_user_error_naming_the_record(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(UserError, match=r"^cannot decode the image of record 'cats/7'"):
        decode_image(str(bad), SIZE, key="cats/7")
    with pytest.raises(UserError, match=r"^cannot read the image of record '.*missing.png'"):
        decode_image(str(tmp_path / "missing.png"), SIZE)


def _loaders(source, plan: StreamPlan, rank: int, datasets):
    """The in-memory sharded loader of one rank and the streamed one over the same sampler."""
    from ray.data import ExecutionOptions

    def shard_for(name):  # what Ray Train's DataConfig(preserve_order=True) hands the worker
        ds = datasets[name]
        ds.context.execution_options = ExecutionOptions(preserve_order=True)
        return ds.iterator()

    loader = make_loader(ImageSubset(source, plan.ids), 8, shuffle=True, drop_last=plan.drop_last, seed=plan.seed)
    sharded = shard_loader(loader, rank=rank, world_size=plan.world_size, seed=plan.seed)
    assert plan.serves(loader)
    return sharded, StreamedLoader(sharded, plan, rank, shard_for=shard_for)


def test_streamed_batches_equal_the_in_memory_sharded_batches_every_epoch_and_rank(ray_session, folder):
    source = load_source(f"imagefolder:{folder}", image_size=SIZE)
    ids = np.arange(3, 78, dtype=np.int64)  # a subset, not starting at 0: positions and ids differ
    plan = StreamPlan(ids, drop_last=True, epochs=2, world_size=2, seed=5, image_size=SIZE)
    datasets = build_datasets(plan, source)
    assert sorted(datasets) == [dataset_name(e, r) for e in range(2) for r in range(2)]
    seen = []
    for epoch in range(2):
        for rank in range(2):
            sharded, streamed = _loaders(source, plan, rank, datasets)
            sharded.sampler.set_epoch(epoch)  # set_loader_epoch; the streamed loader shares the sampler
            reference, got = list(sharded), list(streamed)
            assert len(got) == len(reference) == len(streamed) == 37 // 8
            for (ri, rl, rs), (gi, gl, gs) in zip(reference, got, strict=True):
                assert torch.equal(gs, rs) and torch.equal(gl, rl) and torch.equal(gi, ri)
                assert gi.dtype == torch.uint8 and gi.shape == (8, 3, SIZE, SIZE)
            seen.append(torch.cat([b[2] for b in got]))
    assert not torch.equal(seen[0], seen[2])  # epochs differ in order
    assert not set(seen[0].tolist()) & set(seen[1].tolist())  # ranks read disjoint records


def test_an_undecodable_image_mid_epoch_fails_with_the_records_key(ray_session, tmp_path):
    root = tmp_path / "folder"
    write_image_folder(root, 40)
    source = load_source(f"imagefolder:{root}", image_size=SIZE)
    plan = StreamPlan(np.arange(40, dtype=np.int64), drop_last=True, epochs=1, world_size=1, seed=0,
                      image_size=SIZE)
    sharded, streamed = _loaders(source, plan, 0, build_datasets(plan, source))
    order = list(sharded.sampler)
    victim = order[20]  # in the third batch of 8: the first two arrive before the error
    with open(source.paths[victim], "wb") as f:  # broken after the data set was listed
        f.write(b"\x89PNG truncated")
    batches = iter(streamed)
    next(batches), next(batches)
    with pytest.raises(UserError, match=rf"^epoch 1: cannot decode the image of record '{re.escape(str(source.keys[victim]))}'"):
        next(batches)


def test_stream_setting_auto_streams_only_file_backed_data_and_true_refuses_in_memory_data(folder):
    on_disk = {"dataset": f"imagefolder:{folder}", "num_members": 40, "num_nonmembers": 40}
    auto = pretrain_train_task(tiny_job(data=on_disk, optim={"batch_size": 8}))
    plan, source = plan_stream(auto, workers=2)
    assert plan.world_size == 2 and len(plan.ids) == 40 and source.paths is not None
    assert plan_stream(auto, workers=0) is None
    off = pretrain_train_task(tiny_job(data=on_disk, runtime={"stream": False}))
    assert plan_stream(off, workers=2) is None
    per_image = pretrain_train_task(tiny_job(data=on_disk, augment={"backend": "per_image"}))
    assert plan_stream(per_image, workers=2) is None
    assert plan_stream(pretrain_train_task(tiny_job()), workers=2) is None  # digits: in memory
    with pytest.raises(UserError, match="runtime.stream=true needs file-backed training data"):
        plan_stream(pretrain_train_task(tiny_job(runtime={"stream": True})), workers=2)
    assert tiny_job(runtime={"stream": "TRUE"}).runtime.stream is True
    with pytest.raises(ValueError, match="must be auto, true or false"):
        tiny_job(runtime={"stream": "maybe"})


def test_a_shard_smaller_than_one_batch_is_refused_before_the_run_starts(folder):
    job = tiny_job(data={"dataset": f"imagefolder:{folder}", "num_members": 40, "num_nonmembers": 40},
                   optim={"batch_size": 32})
    with pytest.raises(UserError, match="each of the 2 workers gets 20 of 40 training samples, fewer than one "
                                        "batch of 32 .* at most 20"):
        plan_stream(pretrain_train_task(job), workers=2)
    assert plan_stream(pretrain_train_task(job), workers=1) is not None
