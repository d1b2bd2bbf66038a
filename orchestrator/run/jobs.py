"""Run a job in-process (``--workers 0``) or on Ray Train (``--workers N``), then write its checkpoint."""

from __future__ import annotations

import time
from pathlib import Path

import torch

from orchestrator.outputs import check_out_dir
from trainables.checkpoint import save_checkpoint
from trainables.errors import UserError
from trainables.jobs.common import checkpoint_meta, load_data, new_model
from trainables.jobs.pretrain import pretrain_task
from trainables.loops.context import LoopContext, resolve_device


def local_context(job) -> LoopContext:
    if job.runtime.num_threads:
        torch.set_num_threads(job.runtime.num_threads)
    return LoopContext(device=resolve_device(job.runtime.device), progress=job.runtime.progress)


def run_pretrain(job, out: str | Path, *, workers: int = 0, use_gpu: bool = False,
                 ray_options=None, epoch_hook=None) -> tuple[Path, dict]:
    """Pretrain and save a checkpoint at ``out``; returns the path and the final metrics. ``ray_options``
    (:class:`orchestrator.run.options.RayOptions`): storage, run name, failures... of the Ray Train path.
    ``epoch_hook(epoch, metrics, model)`` (in-process only) runs after every epoch, e.g. to probe the attack while
    the model trains (it must leave the weights alone; the loop returns the model to train mode each epoch)."""
    out = check_out_dir(out)
    source, splits = load_data(job.data)  # validates the data set and splits before anything runs
    t0 = time.perf_counter()
    if workers > 0:
        if epoch_hook is not None:
            raise UserError("an epoch hook runs in-process only (workers=0)")
        from orchestrator.run.driver import run_pretrain_distributed  # Ray only on this path

        return run_pretrain_distributed(job, out, workers=workers, use_gpu=use_gpu, options=ray_options)
    ctx = local_context(job)
    model, spec = new_model(job, source, len(splits["member"]))
    if epoch_hook is not None:
        ctx.on_epoch_end = lambda epoch, metrics, _state: epoch_hook(epoch, metrics, model)
    model, history, _, _, _ = pretrain_task(job, ctx, source=source, splits=splits, model=model)
    meta = checkpoint_meta(job, "pretrain", history, wall_time_s=time.perf_counter() - t0)
    save_checkpoint(out, model, spec=spec, meta=meta, splits=splits)
    return out, meta["metrics"]


def run_forget(job, checkpoint_dir: str | Path, out: str | Path, forget_ids=None, *, workers: int = 0,
               use_gpu: bool = False, ray_options=None) -> tuple[Path, dict]:
    """Unlearn ``forget_ids`` (default: the checkpoint's forget split) from a checkpoint with ``job.method``
    (an :class:`~trainables.unlearning.UnlearnJob`) and save the result at ``out``; returns the path and a summary
    (counts, final loss components, utility before/after). The input checkpoint is only read."""
    from trainables.jobs.unlearn import forget_summary, prepare_unlearning, save_unlearned, unlearn_task
    from trainables.unlearning.loop import final_metrics

    out = check_out_dir(out)
    run = prepare_unlearning(job, checkpoint_dir, forget_ids)  # every input checked before any work
    if workers > 0:
        from orchestrator.run.driver import run_forget_distributed  # Ray only on this path

        return run_forget_distributed(run, out, workers=workers, use_gpu=use_gpu, options=ray_options)
    ctx = local_context(job)
    summary = forget_summary(run)
    if job.monitor:
        ids = run.plan.split_ids(run.checkpoint.splits)
        summary["before"] = final_metrics(run.checkpoint.model.to(ctx.device), run.source, ids,
                                          run.pretrain_job.eval, ctx.device)
    t0 = time.perf_counter()
    model, history, spec = unlearn_task(run, ctx)
    wall = time.perf_counter() - t0
    save_unlearned(run, model, history, spec, out, wall_time_s=wall)
    summary.update(wall_time_s=wall, final=history[-1] if history else {})
    return out, summary


def run_retrain(checkpoint_dir: str | Path, out: str | Path, forget_ids=None, *, job=None, workers: int = 0,
                use_gpu: bool = False, ray_options=None) -> tuple[Path, dict]:
    """Retrain from scratch on members - forget - already forgotten with the parent's pretraining recipe (the gold
    standard); ``job`` (an UnlearnJob) only contributes ``runtime`` and ``retrain_epochs``."""
    from trainables.unlearning.config import UnlearnJob

    data = (job.model_dump() if job is not None else {}) | {"method": "retrain"}
    return run_forget(UnlearnJob.model_validate(data), checkpoint_dir, out, forget_ids, workers=workers,
                      use_gpu=use_gpu, ray_options=ray_options)
