"""The pretraining job (``unlearn pretrain``): train a fresh model on the members (or a shadow model on the shadow
members). :func:`pretrain_task` runs it in this process; :func:`pretrain_train_task` describes it for the Ray Train
workers (``orchestrator/run/worker.py``). No Ray here.

Example:
    >>> model, history, spec, source, splits = pretrain_task(job, LoopContext())
    >>> task = pretrain_train_task(job)                      # the same job for ``--workers N``
"""

from __future__ import annotations

from trainables.data import Splits
from trainables.data.sources import ImageSource
from trainables.jobs.common import load_data, new_model
from trainables.jobs.task import Setup, StreamedSplit, TrainTask
from trainables.loops.context import LoopContext
from trainables.loops.pretrain import pretrain
from trainables.models import UnlearnableModel


def pretrain_task(job, ctx: LoopContext, *, source: ImageSource | None = None, splits: Splits | None = None,
                  model: UnlearnableModel | None = None, train_split: str = "member"):
    """Pretrain on ``train_split`` (``member`` for the target, ``shadow_member`` for a shadow model)."""
    if source is None or splits is None:
        source, splits = load_data(job.data, splits)
    train_ids = splits[train_split]
    eval_ids = splits["nonmember_eval" if train_split == "member" else "shadow_nonmember"]
    spec = None
    if model is None:
        model, spec = new_model(job, source, len(train_ids))
    model, history = pretrain(job, model, source, splits, ctx, train_ids=train_ids, eval_ids=eval_ids)
    return model, history, spec, source, splits


def _pretrain_setup(job) -> Setup:
    source, splits = load_data(job.data)
    model, spec = new_model(job, source, len(splits["member"]))
    return Setup(model, spec, source, splits)


def _pretrain_train(job, ctx: LoopContext, setup: Setup):
    model, history, *_ = pretrain_task(job, ctx, source=setup.source, splits=setup.splits, model=setup.model)
    return model, history


def _pretrain_streamed(job) -> StreamedSplit | None:
    if job.augment.backend != "batched":  # per-image transforms run inside the in-memory loader
        return None
    source, splits = load_data(job.data)
    members = splits["member"]  # what the loader of trainables/loops/pretrain.py reads, and its batch size
    return StreamedSplit(source, members, drop_last=True, batch_size=min(job.optim.batch_size, len(members)))


def pretrain_train_task(job) -> TrainTask:
    return TrainTask("pretrain", job, job.optim.epochs, _pretrain_setup, _pretrain_train, streamed=_pretrain_streamed)
