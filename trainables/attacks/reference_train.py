"""Train one reference model (Ray-free; the orchestrator runs K of these as parallel Ray tasks).

The parent's own recipe (its pretraining job config) with another seed, on one IN-set of the parent's data pool
(:func:`trainables.attacks.reference_set.design_in_sets`); written as a checkpoint whose ``meta.json`` lists the
IN-set (``in_ids``).

Example:
    >>> train_reference(ReferenceTask(recipe, "runs/p/splits.parquet", in_ids, "refs/ref-00", seed=1001))
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class ReferenceTask:
    recipe: dict[str, Any]  # PretrainJob fields (the parent's meta["config"])
    splits_path: str  # the parent's split manifest
    in_ids: tuple[int, ...]
    out_dir: str
    seed: int
    threads: int = 1


def reference_job(recipe: dict[str, Any], seed: int):
    """The parent's recipe with ``seed``, no progress bars, no per-epoch monitor (only the final one)."""
    from trainables.config import PretrainJob

    job = PretrainJob.model_validate(recipe)
    return job.model_copy(update={
        "runtime": job.runtime.model_copy(update={"seed": seed, "progress": False}),
        "eval": job.eval.model_copy(update={"knn_every": 0, "linear_probe": False}),
    })


def train_reference(task: ReferenceTask, log=None) -> dict[str, Any]:
    """Train and save one reference model; returns ``{"out_dir", "seed", "n_in", "train_time_s"}``."""
    import torch

    from trainables.checkpoint import save_checkpoint
    from trainables.data.splits import Splits
    from trainables.jobs.common import checkpoint_meta, load_data, new_model
    from trainables.loops.context import LoopContext, resolve_device
    from trainables.loops.pretrain import pretrain

    torch.set_num_threads(max(1, task.threads))
    job = reference_job(task.recipe, task.seed)
    source, splits = load_data(job.data, Splits.load(task.splits_path))
    in_ids = np.sort(np.asarray(task.in_ids, dtype=np.int64))
    # the kNN monitor queries samples this model never saw (any OUT sample of the pool)
    out_ids = np.setdiff1d(np.concatenate([splits["member"], splits["nonmember"]]), in_ids)[:500]
    t0 = time.perf_counter()
    ctx = LoopContext(device=resolve_device(job.runtime.device), progress=False,
                      log=log or (lambda msg: None))
    model, spec = new_model(job, source, len(in_ids))
    model, history = pretrain(job, model, source, splits, ctx, train_ids=in_ids, eval_ids=out_ids)
    elapsed = time.perf_counter() - t0
    meta = checkpoint_meta(job, "reference", history, train_split="reference_in", in_ids=in_ids.tolist(),
                           wall_time_s=elapsed)
    save_checkpoint(Path(task.out_dir), model, spec=spec, meta=meta, splits=splits)
    return {"out_dir": task.out_dir, "seed": task.seed, "n_in": len(in_ids), "train_time_s": round(elapsed, 2)}
