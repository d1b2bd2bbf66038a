"""Unlearning (``unlearn forget``) and retraining (``unlearn retrain``) as :class:`TrainTask` s for Ray Train: the
same functions the in-process path uses (``trainables/unlearning/task.py``), set up so that a resumed worker
continues from the weights of the latest checkpoint.

- forget (any step method: memgp, gp, baselines): the model to change is the parent checkpoint's, loaded in
  ``setup``; on resume the worker overwrites its weights with the latest checkpoint's, and the loop continues.
- retrain: a fresh model (seeded like the parent's) trained on the retain set with the parent's recipe.

The run name covers the parent's weights hash and the forget ids besides the job config and ``--out``.

Example:
    >>> task, run = forget_train_task(UnlearnJob(method="memgp"), "runs/base")
    >>> out, metrics = run_distributed(task, "runs/forgot", RayOptions(workers=2))
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

from orchestrator.train_tasks import Setup, TrainTask
from trainables.checkpoint import WEIGHTS
from trainables.loops.context import LoopContext
from trainables.loops.pretrain import pretrain
from trainables.tasks import new_model
from trainables.unlearning.config import UnlearnJob
from trainables.unlearning.retrain import retrain_job
from trainables.unlearning.task import UnlearnRun, prepare_unlearning, unlearn_task, unlearned_meta


def forget_train_task(job: UnlearnJob, checkpoint_dir: str | Path, forget_ids=None) -> tuple[TrainTask, UnlearnRun]:
    """The task (for the workers) and the driver's own validated :class:`UnlearnRun` (for summaries)."""
    run = prepare_unlearning(job, checkpoint_dir, forget_ids)  # every input checked on the driver, before Ray
    retraining = job.method == "retrain"
    epochs = retrain_job(run.pretrain_job, job).optim.epochs if retraining else job.epochs
    ids = [int(i) for i in run.plan.forget_ids]
    identity = {"parent_sha256": run.checkpoint.meta["sha256"][WEIGHTS], "forget_ids": ids}
    setup = partial(_setup, checkpoint_dir=str(Path(checkpoint_dir).resolve()), forget_ids=ids)
    task = TrainTask("retrain" if retraining else "forget", job, epochs, setup,
                     _retrain if retraining else _forget, meta=_meta, identity=identity)
    return task, run


def _setup(job: UnlearnJob, *, checkpoint_dir: str, forget_ids: list[int]) -> Setup:
    run = prepare_unlearning(job, checkpoint_dir, forget_ids)
    splits = run.plan.output_splits(run.checkpoint.splits)
    if job.method == "retrain":
        model, spec = new_model(retrain_job(run.pretrain_job, job), run.source, len(run.plan.retain_ids))
    else:
        model, spec = run.checkpoint.model, run.checkpoint.meta["model_spec"]
    return Setup(model, spec, run.source, splits, state=run)


def _forget(job: UnlearnJob, ctx: LoopContext, setup: Setup):
    model, history, _ = unlearn_task(setup.state, ctx)  # trains setup.model (= the run's checkpoint model)
    return model, history


def _retrain(job: UnlearnJob, ctx: LoopContext, setup: Setup):
    """``trainables.unlearning.retrain.retrain`` on the model from ``setup`` (fresh, or restored on resume)."""
    run: UnlearnRun = setup.state
    rjob = retrain_job(run.pretrain_job, job)
    return pretrain(rjob, setup.model, run.source, run.checkpoint.splits, ctx, train_ids=run.plan.retain_ids,
                    eval_ids=run.checkpoint.splits["nonmember_eval"])


def _meta(job: UnlearnJob, setup: Setup, history: list[dict[str, Any]]) -> dict[str, Any]:
    return unlearned_meta(setup.state, history, wall_time_s=0.0)  # the driver sets the run's wall time on export
