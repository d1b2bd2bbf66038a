"""The unlearning job (``unlearn forget``; ``unlearn retrain`` is its ``method="retrain"``, see ``retrain.py``) on
checkpoints, shared by the in-process CLI path and the Ray Train workers (no Ray here).

    run = prepare_unlearning(job, "runs/base", forget_ids=None)   # load + validate everything, once, before any work
    model, history, spec = unlearn_task(run, ctx)                # every rank
    save_unlearned(run, model, history, spec, "runs/forgot", wall_time_s=...)   # rank 0 / the driver, atomic
    task = forget_train_task(run)                                # the same job for ``--workers N``

On the Ray path the driver prepares once and hands the validated plan (the forget ids) to the task; each worker
process loads the checkpoint and data itself (``setup``) without planning again.

The output checkpoint (see docs/unlearning.md): ``splits.parquet`` = the parent's with ``forget`` = the cumulative
forgotten ids; ``meta["forgotten_ids"]`` the same list; ``meta["kind"]`` = ``unlearn`` or ``retrain``;
``meta["parent"]`` = {path, sha256 of its weights}; ``meta["unlearning"]`` = the UnlearnJob plus this run's forget
ids; ``meta["config"]`` = the parent's pretraining config; ``meta["history"]`` per-epoch components.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from trainables.checkpoint import WEIGHTS, Checkpoint, load_checkpoint, model_spec, save_checkpoint
from trainables.config import PretrainJob
from trainables.data.sources import ImageSource
from trainables.errors import UserError
from trainables.jobs.common import checkpoint_meta, load_data
from trainables.jobs.task import Setup, StreamedSplit, TrainTask
from trainables.loops.context import LoopContext
from trainables.unlearning.api import check_compatible, run_method
from trainables.unlearning.config import UnlearnJob, with_default_method
from trainables.unlearning.plan import ForgetPlan, plan_forget
from trainables.unlearning.registry import default_key


@dataclass
class UnlearnRun:
    """Everything an unlearning run needs, loaded and validated."""

    job: UnlearnJob
    checkpoint: Checkpoint
    pretrain_job: PretrainJob
    source: ImageSource
    plan: ForgetPlan


def parent_pretrain_job(checkpoint: Checkpoint) -> PretrainJob:
    config = checkpoint.meta.get("config")
    if not config:
        raise UserError(f"checkpoint {checkpoint.path} has no pretraining config in meta.json; cannot unlearn it")
    if not isinstance(config, dict):
        raise UserError(f"checkpoint {checkpoint.path}: its pretraining config in meta.json is not a mapping")
    try:
        job = PretrainJob.model_validate(config)
    except ValidationError as exc:
        raise UserError(f"checkpoint {checkpoint.path}: its pretraining config is invalid: {exc}") from None
    from trainables.data.locations import operator_data

    return job.model_copy(update={"data": operator_data(job.data)})  # data locations: the operator's, not its


def prepare_unlearning(job: UnlearnJob, checkpoint_dir: str | Path, forget_ids=None, *,
                       source: ImageSource | None = None) -> UnlearnRun:
    """Load and verify the checkpoint and its data, plan the forget set and check the method fits the model."""
    checkpoint = load_checkpoint(checkpoint_dir)
    if checkpoint.splits is None:
        raise UserError(f"checkpoint {checkpoint_dir} has no split manifest (splits.parquet); cannot tell members "
                        f"from non-members")
    pretrain_job = parent_pretrain_job(checkpoint)
    plan = plan_forget(checkpoint.splits, checkpoint.meta, forget_ids)
    job = with_default_method(job, default_key(checkpoint.meta))  # no method named: its family/kind default
    check_compatible(job, checkpoint.model, plan.split_ids(checkpoint.splits))
    if source is None:
        source, _ = load_data(pretrain_job.data, checkpoint.splits)
    return UnlearnRun(job, checkpoint, pretrain_job, source, plan)


def unlearn_task(run: UnlearnRun, ctx: LoopContext) -> tuple[Any, list[dict[str, Any]], dict[str, Any]]:
    """Run the method (on this rank); returns the model, its history and the architecture spec to save."""
    ids = run.plan.split_ids(run.checkpoint.splits)  # planned and checked once, in prepare_unlearning
    model, history = run_method(run.checkpoint.model, run.source, run.checkpoint.splits, ids, run.job, ctx,
                                pretrain_job=run.pretrain_job)
    spec = run.checkpoint.meta["model_spec"]
    if run.job.method == "retrain":  # a fresh model sized for the retain set (MoCo's queue is capped by it)
        spec = model_spec(spec["method"], run.pretrain_job.model, spec["num_classes"], len(run.plan.retain_ids))
    return model, history, spec


def unlearned_meta(run: UnlearnRun, history: list[dict[str, Any]], wall_time_s: float) -> dict[str, Any]:
    kind = "retrain" if run.job.method == "retrain" else "unlearn"
    parent = {"path": str(run.checkpoint.path.resolve()), "sha256": run.checkpoint.meta["sha256"][WEIGHTS],
              "kind": run.checkpoint.meta.get("kind")}
    unlearning = {**run.job.model_dump(mode="json"), "forget_count": int(len(run.plan.forget_ids)),
                  "retain_count": int(len(run.plan.retain_ids)),
                  "forget_ids": [int(i) for i in run.plan.forget_ids]}
    meta = checkpoint_meta(run.pretrain_job, kind, history, parent=parent, unlearning=unlearning,
                           forgotten_ids=[int(i) for i in run.plan.cumulative], wall_time_s=wall_time_s)
    return meta


def save_unlearned(run: UnlearnRun, model, history: list[dict[str, Any]], spec: dict[str, Any], out: str | Path,
                   *, wall_time_s: float) -> Path:
    """Write the output checkpoint atomically (never over an existing one)."""
    if Path(out).resolve() == run.checkpoint.path.resolve():
        raise UserError("--out is the input checkpoint; the input is never overwritten")
    meta = unlearned_meta(run, history, wall_time_s)
    return save_checkpoint(out, model, spec=spec, meta=meta, splits=run.plan.output_splits(run.checkpoint.splits))


def forget_summary(run: UnlearnRun) -> dict[str, Any]:
    return {"method": run.job.method, "model": run.checkpoint.meta.get("method"),
            "forget": int(len(run.plan.forget_ids)), "retain": int(len(run.plan.retain_ids)),
            "already_forgotten": int(len(run.plan.forgotten_before)),
            "nonmember_ref": int(len(run.checkpoint.splits["nonmember_ref"]))}


def forget_train_task(run: UnlearnRun) -> TrainTask:
    """The Ray Train description of a prepared run (forget with any step method, or retrain). The workers rebuild
    the run from the checkpoint path and the already-planned forget ids; the run name covers the parent's weights
    hash and those ids besides the job config and ``--out``."""
    from trainables.jobs.retrain import retrain_epochs, retrain_setup, retrain_train

    ids = [int(i) for i in run.plan.forget_ids]
    identity = {"parent_sha256": run.checkpoint.meta["sha256"][WEIGHTS], "forget_ids": ids}
    setup = partial(_worker_setup, checkpoint_dir=str(run.checkpoint.path.resolve()), forget_ids=ids)
    if run.job.method == "retrain":
        return TrainTask("retrain", run.job, retrain_epochs(run), partial(retrain_setup, base=setup), retrain_train,
                         meta=unlearned_task_meta, identity=identity)
    return TrainTask("forget", run.job, run.job.epochs, setup, forget_train, meta=unlearned_task_meta,
                     identity=identity, streamed=partial(_forget_streamed, run))


def _forget_streamed(run: UnlearnRun, job: UnlearnJob) -> StreamedSplit | None:
    """The records of the step loop's one loader (``trainables/unlearning/loop.py``: the method's primary split,
    no ``drop_last``); the other splits a method draws from are read per draw on the worker."""
    from trainables.unlearning.registry import STEP_METHODS

    if run.pretrain_job.augment.backend != "batched":
        return None
    ids = run.plan.split_ids(run.checkpoint.splits)[STEP_METHODS[job.method].primary]
    return StreamedSplit(run.source, ids, drop_last=False, batch_size=job.batch_size)


def _worker_setup(job: UnlearnJob, *, checkpoint_dir: str, forget_ids: list[int]) -> Setup:
    """On a worker: load the parent and its data; the model to change is the parent's (a resumed worker then
    overwrites its weights with the latest checkpoint's)."""
    run = prepare_unlearning(job, checkpoint_dir, forget_ids)
    splits = run.plan.output_splits(run.checkpoint.splits)
    return Setup(run.checkpoint.model, run.checkpoint.meta["model_spec"], run.source, splits, state=run)


def forget_train(job: UnlearnJob, ctx: LoopContext, setup: Setup):
    """The workers' train function: :func:`unlearn_task` on ``setup.model`` (= the run's checkpoint model)."""
    model, history, _ = unlearn_task(setup.state, ctx)
    return model, history


def unlearned_task_meta(job: UnlearnJob, setup: Setup, history: list[dict[str, Any]]) -> dict[str, Any]:
    return unlearned_meta(setup.state, history, wall_time_s=0.0)  # the driver sets the run's wall time on export
