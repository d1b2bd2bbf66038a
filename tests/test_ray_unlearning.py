"""Unlearning and retraining on the Ray Train path: the tasks the workers run equal the in-process jobs, and
2-worker memgp (one TorchTrainer run) matches 1-worker memgp with the same global batch."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from orchestrator.run.jobs import run_forget, run_pretrain, run_retrain
from orchestrator.run.options import RayOptions
from tests.conftest import tiny_job
from tests.weight_checks import assert_same_training
from trainables.checkpoint import load_checkpoint
from trainables.jobs.unlearn import forget_train_task, prepare_unlearning
from trainables.loops.context import LoopContext
from trainables.unlearning import UnlearnJob

FORGET = 40  # tiny_job: 200 members, forget_fraction 0.2


@pytest.fixture(scope="module")
def parent(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("parent") / "base"
    run_pretrain(tiny_job("simclr", optim={"epochs": 1}), out)
    return out


def _weights(path) -> dict[str, torch.Tensor]:
    return load_checkpoint(path).model.state_dict()


def _memgp(batch_size: int) -> UnlearnJob:
    """Penalty only (a=0) on clean images in eval mode: no random augmentation, per-sample penalties, so 2 ranks
    with half the batch compute the same step as 1 rank (one step per epoch: the whole forget set). Plain SGD:
    Adam would turn float noise in near-zero gradients into full-size steps."""
    return UnlearnJob(method="memgp", a=0.0, b=1.0, epochs=3, optimizer="sgd", momentum=0.0, lr=2.0,
                      batch_size=batch_size, monitor=False, runtime={"progress": False})


@pytest.mark.parametrize("method", ["memgp", "retrain"])
def test_the_worker_tasks_equal_the_in_process_jobs(parent, tmp_path, method):
    """What a Ray worker runs (TrainTask setup + train, here with a plain LoopContext) gives the same weights as
    `unlearn forget|retrain --workers 0`."""
    job = _memgp(FORGET) if method == "memgp" else UnlearnJob(method="retrain", retrain_epochs=1,
                                                              runtime={"progress": False})
    run = prepare_unlearning(job, parent)
    task = forget_train_task(run)
    assert task.kind == ("forget" if method == "memgp" else "retrain")
    assert task.epochs == (3 if method == "memgp" else 1) and len(task.identity["forget_ids"]) == FORGET
    setup = task.setup(job)
    model, history = task.train(job, LoopContext(progress=False), setup)
    meta = task.checkpoint_meta(setup, history)
    assert meta["kind"] == ("unlearn" if method == "memgp" else "retrain") and len(meta["forgotten_ids"]) == FORGET

    out = tmp_path / "in_process"
    if method == "memgp":
        run_forget(job, parent, out)
    else:
        run_retrain(parent, out, job=job)
    reference = _weights(out)
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, reference[key], rtol=0, atol=0, msg=key)


@pytest.mark.ray
@pytest.mark.slow
def test_two_worker_memgp_on_ray_matches_one_worker_with_the_same_global_batch(ray_session, parent, tmp_path):
    one = tmp_path / "one"
    run_forget(_memgp(FORGET), parent, one)  # 1 worker, batch 40
    two = tmp_path / "two"
    out, summary = run_forget(_memgp(FORGET // 2), parent, two, workers=2,  # 2 workers x 20
                              ray_options=RayOptions(workers=2, storage=str(tmp_path / "runs")))
    assert summary["forget"] == FORGET and summary["final"]["epoch"] == 3 and "memgp" in summary["final"]
    child = load_checkpoint(out)
    assert child.meta["kind"] == "unlearn" and child.meta["distributed"]["workers"] == 2
    assert child.meta["parent"]["sha256"] == load_checkpoint(parent).meta["sha256"]["model.pt"]
    assert_same_training(_weights(two), _weights(one), _weights(parent), what="memgp on Ray")
