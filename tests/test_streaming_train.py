"""Streaming on Ray Train end to end (2 gloo workers, the shared Ray instance; two TorchTrainer starts): the same
image folder trained in memory and streamed through Ray Data, the streamed run losing a worker before epoch 3
and resuming from the epoch-2 checkpoint, gives the in-memory run's weights."""

from __future__ import annotations

import pytest

from orchestrator.run.jobs import run_pretrain
from orchestrator.run.options import FaultInjection, RayOptions
from tests.conftest import tiny_job
from tests.test_ray_train import _reports, _run_dir
from tests.test_streaming import write_image_folder
from tests.weight_checks import assert_same_training
from trainables.checkpoint import load_checkpoint
from trainables.jobs.pretrain import pretrain_train_task

pytestmark = [pytest.mark.ray, pytest.mark.slow]
EPOCHS = 3


def _job(folder, stream: bool):
    return tiny_job("simclr", data={"dataset": f"imagefolder:{folder}", "num_members": 96, "num_nonmembers": 96},
                    optim={"epochs": EPOCHS, "batch_size": 16},
                    eval={"knn_every": 0, "linear_probe": False, "knn_k": 10},
                    runtime={"stream": stream, "progress": False})


def _options(tmp_path, **kw) -> RayOptions:
    # half a CPU per worker: the 2-CPU session cluster keeps one CPU for Ray Data's decode tasks
    return RayOptions(workers=2, cpus_per_worker=0.5, storage=str(tmp_path / "runs"), keep_checkpoints=EPOCHS, **kw)


def test_a_streamed_run_resumed_after_a_lost_worker_trains_the_in_memory_runs_weights(ray_session, tmp_path):
    folder = tmp_path / "folder"
    write_image_folder(folder, 200)
    in_memory, streamed = _job(folder, False), _job(folder, True)
    reference, _ = run_pretrain(in_memory, tmp_path / "memory", workers=2, ray_options=_options(tmp_path))
    out, _ = run_pretrain(streamed, tmp_path / "streamed", workers=2,
                          ray_options=_options(tmp_path, max_failures=1, inject_fault=FaultInjection(3, "exit")))
    run_dir = _run_dir(tmp_path, streamed, tmp_path / "streamed")
    assert (run_dir / "fault_injected_before_epoch_3").is_file()
    assert [(r["epoch"], r["resumed_from_epoch"]) for r in _reports(run_dir)] == [(1, 0), (2, 0), (3, 2)]
    start = pretrain_train_task(streamed).setup(streamed).model.state_dict()  # the seeded initial weights
    assert_same_training(load_checkpoint(out).model.state_dict(), load_checkpoint(reference).model.state_dict(),
                         start, what="streamed vs in memory")
