"""Run a training job on Ray Train (``TorchTrainer``, Train V2 API) and export its final checkpoint.

The driver side of ``--workers N``: names the run (``orchestrator/run/names.py``), joins a cluster
(``--address`` / ``RAY_ADDRESS``) or starts a local one, builds the trainer from the job and :class:`RayOptions`,
and copies the last reported checkpoint (local or remote storage) into ``--out`` in this project's checkpoint
format (atomic, never overwriting). The per-worker side is ``orchestrator/run/worker.py``. Docs: docs/distributed.md.

Example:
    >>> out, metrics = run_pretrain_distributed(job, "ckpt/simclr", workers=2)
    >>> out, summary = run_forget_distributed(prepare_unlearning(unlearn_job, "ckpt/simclr"), "ckpt/forgot", workers=2)
    >>> out, metrics = run_distributed(pretrain_train_task(job), "ckpt/simclr", RayOptions(workers=4, use_gpu=True))
"""

from __future__ import annotations

import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from orchestrator.fenced.ray_internals import workers_use_this_interpreter
from orchestrator.outputs import check_out_dir
from orchestrator.run.names import USER_ERROR, RunPlan, claim_run, mark_finished, plan_run
from orchestrator.run.options import RayOptions
from orchestrator.run.storage import open_storage
from orchestrator.run.streaming import build_datasets, data_config, plan_stream
from trainables.checkpoint import load_checkpoint, save_checkpoint
from trainables.errors import UserError
from trainables.jobs.pretrain import pretrain_train_task
from trainables.jobs.task import TrainTask

_SET_BY_SAVE = ("format_version", "created_at", "model_spec", "packages", "sha256")


def log(message: str) -> None:
    from trainables import console

    console.note(message)  # which run, resumed or new, how to resume: worth a line in a job's log


def run_pretrain_distributed(job, out: str | Path, workers: int = 1, use_gpu: bool = False,
                             options: RayOptions | None = None) -> tuple[Path, dict[str, Any]]:
    """``unlearn pretrain --workers N``: pretrain on Ray Train; returns the checkpoint path and final metrics."""
    options = replace(options or RayOptions(), workers=workers, use_gpu=use_gpu)
    return run_distributed(pretrain_train_task(job), out, options)


def run_forget_distributed(run, out: str | Path, workers: int = 1, use_gpu: bool = False,
                           options: RayOptions | None = None) -> tuple[Path, dict[str, Any]]:
    """``unlearn forget|retrain --workers N``: unlearn (or retrain without) the forget ids of a prepared
    :class:`~trainables.jobs.unlearn.UnlearnRun` on Ray Train; returns the checkpoint path and the same summary as
    the in-process path (counts, final components, wall time)."""
    from trainables.checkpoint import read_meta
    from trainables.jobs.unlearn import forget_summary, forget_train_task

    options = replace(options or RayOptions(), workers=workers, use_gpu=use_gpu)
    out, _ = run_distributed(forget_train_task(run), out, options)
    meta = read_meta(out)
    summary = forget_summary(run)
    summary.update(wall_time_s=meta["wall_time_s"], final=(meta.get("history") or [{}])[-1])
    return out, summary


def run_distributed(task: TrainTask, out: str | Path, options: RayOptions) -> tuple[Path, dict[str, Any]]:
    """Train ``task`` on ``options.workers`` Ray Train workers (resuming its run if one exists); export to ``out``."""
    t0 = time.perf_counter()
    out = check_out_dir(out)
    if options.workers < 1:
        raise UserError("the Ray Train path needs --workers 1 or more (0 runs in this process)")
    _check_device(task.job, options)
    plan = plan_run(open_storage(options.storage), task.kind, task.job, options.run_key or out, options.run_name,
                    task.identity)
    if plan.finished:  # trained before, but the export was deleted or failed: export again, no workers needed
        log(f"run {plan.display()} already finished; exporting its final checkpoint")
        return _export(_finished_checkpoint(plan), out, plan, options, t0)
    stream = plan_stream(task, options.workers)  # before anything is written: a bad runtime.stream is an error
    address = options.address or os.environ.get("RAY_ADDRESS") or None
    started = connect_ray(address)
    try:
        if stream and task.job.runtime.stream == "auto" and not _reader_fits(options, joined=address is not None):
            log("note: not streaming the data (runtime.stream=auto): the local cluster has no CPU left for Ray "
                "Data's reader beside the workers; lower --cpus-per-worker to stream")
            stream = None
        _check_resources(options, joined=address is not None, streaming=stream is not None)
        claim_run(plan, task.job, out, {"workers": options.workers, "use_gpu": options.use_gpu,
                                        **({"identity": task.identity} if task.identity else {})})
        log(f"Ray Train run {plan.display()} ({'resuming' if plan.resuming else 'new'}, {options.workers} "
            f"worker(s){', GPU' if options.use_gpu else ''}{', data streamed by Ray Data' if stream else ''}); "
            f"relaunch the same command to resume it")
        result = _fit(build_trainer(task, plan, options, stream), plan)
        if result.checkpoint is None:
            raise UserError(f"run {plan.display()} ended without a checkpoint")
        return _export(result.checkpoint, out, plan, options, t0)
    finally:
        if started:
            import ray

            ray.shutdown()


def connect_ray(address: str | None) -> bool:
    """Join the cluster at ``address``, else start a local instance (unless this process is already connected);
    True if this call started one (the caller shuts it down)."""
    import ray

    if ray.is_initialized():
        return False
    workers_use_this_interpreter()
    address = address or os.environ.get("RAY_ADDRESS") or None
    # ERROR: keep Ray's own INFO/WARNING chatter (per-report lines, state-API warnings without a dashboard) out of
    # the console; the workers' per-epoch lines are plain prints and still reach it.
    from trainables import console

    kwargs: dict[str, Any] = {"log_to_driver": True, "logging_config": ray.LoggingConfig(
        log_level="WARNING" if console.is_verbose() else "ERROR")}
    console.status(f"joining the Ray cluster at {address} ..." if address else "starting a local Ray instance ...")
    try:
        if address:
            ray.init(address=address, **kwargs)
        else:  # a private instance whose address every worker and actor is given (no "multiple instances")
            from orchestrator.run.ray_local import start_local_ray

            start_local_ray(include_dashboard=False, **kwargs)
    except ConnectionError as exc:
        raise UserError(f"cannot reach a Ray cluster at {address!r} ({exc}); start one with `ray start --head` "
                        f"or drop --address / RAY_ADDRESS to start a local one") from None
    return address is None


def console_settings() -> dict[str, str]:
    from trainables import console

    return console.snapshot()


def build_trainer(task: TrainTask, plan: RunPlan, options: RayOptions, stream=None):
    """The trainer; ``stream`` (from :func:`plan_stream`) makes Ray Data the reader of the training data."""
    from ray.train import CheckpointConfig, FailureConfig, LoggingConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from orchestrator.run.worker import WorkerRun
    from orchestrator.run.worker_entry import pack, train_fn

    resources = {"CPU": options.cpus_per_worker, **({"GPU": 1} if options.use_gpu else {})}
    run = WorkerRun(plan.storage, plan.name, options.checkpoint_every, os.getcwd(),
                    threads=max(1, int(options.cpus_per_worker)), inject_fault=options.inject_fault,
                    console=console_settings(), stream=stream[0] if stream else None)
    data = {"datasets": build_datasets(*stream), "dataset_config": data_config()} if stream else {}
    return TorchTrainer(
        train_fn,  # a light entry: Ray's controller need not import torch / the task (orchestrator/run/worker_entry.py)
        train_loop_config=pack({"task": task, "run": run}),
        scaling_config=ScalingConfig(num_workers=options.workers, use_gpu=options.use_gpu,
                                     resources_per_worker=resources),
        run_config=RunConfig(name=plan.name, **plan.storage.ray_storage_kwargs(),
                             failure_config=FailureConfig(max_failures=options.max_failures),
                             checkpoint_config=CheckpointConfig(num_to_keep=options.keep_checkpoints),
                             logging_config=LoggingConfig(log_level="WARNING")),  # no per-report INFO lines
        **data,
    )


def _fit(trainer, plan: RunPlan):
    from ray.train import TrainingFailedError

    try:
        return trainer.fit()
    except TrainingFailedError:
        message = plan.storage.read_text(plan.path(USER_ERROR))
        if message:  # a bad input or a diverged loss, recorded by the worker that hit it
            raise UserError(message) from None
        raise


def _check_device(job, options: RayOptions) -> None:
    device = job.runtime.device
    if device == "cuda" and not options.use_gpu:
        raise UserError("runtime.device=cuda on Ray Train needs --gpu (one GPU per worker)")
    if device == "cpu" and options.use_gpu:
        raise UserError("--gpu contradicts runtime.device=cpu; drop one of them")


def _reader_fits(options: RayOptions, *, joined: bool) -> bool:
    """One CPU beside the workers for Ray Data's decode tasks (a joined cluster may still grow: assume yes)."""
    import ray

    return joined or ray.cluster_resources().get("CPU", 0) >= options.workers * options.cpus_per_worker + 1


def _check_resources(options: RayOptions, *, joined: bool, streaming: bool = False) -> None:
    import ray

    total = ray.cluster_resources()
    # a streaming run's Ray Data decode tasks take one CPU each, outside the workers' reservation
    need = {"CPU": options.workers * options.cpus_per_worker + (1 if streaming else 0),
            "GPU": options.workers if options.use_gpu else 0}
    short = [f"{need[k]:g} {k}s (the cluster has {total.get(k, 0):g})" for k in need if need[k] > total.get(k, 0)]
    if not short:
        return
    message = f"{options.workers} worker(s){' and a Ray Data reader' if streaming else ''} need {' and '.join(short)}"
    if joined:  # a remote, possibly autoscaling cluster may still add nodes
        log(f"warning: {message}; waiting for the cluster to grow")
        return
    raise UserError(f"{message}; use fewer --workers or a smaller --cpus-per-worker"
                    + ("" if not options.use_gpu else ", or drop --gpu"))


def _finished_checkpoint(plan: RunPlan):
    import logging

    from ray.train import Result

    logging.getLogger("ray.train").setLevel(logging.WARNING)  # not the "snapshot found" notice
    result = Result.from_path(plan.path(), storage_filesystem=plan.storage.fs)
    if result.checkpoint is None:
        raise UserError(f"run {plan.display()} is marked finished but holds no checkpoint; delete it to retrain")
    return result.checkpoint


def _export(checkpoint, out: Path, plan: RunPlan, options: RayOptions, t0: float) -> tuple[Path, dict[str, Any]]:
    """Copy a reported checkpoint (any storage) into ``out``: verified, re-written atomically without the resume
    state, with the run's facts added to ``meta.json``."""
    with checkpoint.as_directory() as path:  # downloads from remote storage into a temporary directory
        restored = load_checkpoint(path)
    meta = {k: v for k, v in restored.meta.items() if k not in _SET_BY_SAVE}
    meta["wall_time_s"] = time.perf_counter() - t0
    meta["distributed"] = {"workers": options.workers, "use_gpu": options.use_gpu, "run_name": plan.name,
                           "storage": plan.storage.uri, "resumed": plan.resuming, "source_checkpoint": checkpoint.path}
    try:
        save_checkpoint(out, restored.model, spec=restored.meta["model_spec"], meta=meta, splits=restored.splits)
    except UserError as exc:
        raise UserError(f"{exc}; the trained checkpoint stays at {checkpoint.path}") from None
    mark_finished(plan, out)
    return out, meta.get("metrics", {})
