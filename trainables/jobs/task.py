"""What the Ray Train workers run, described without Ray: a :class:`TrainTask` says how to set a job up from
scratch, how to train it through a :class:`LoopContext`, and what metadata its checkpoints carry. The generic
worker (``orchestrator/run/worker.py``) adds DDP, sharding, per-epoch reports, checkpoints and resume around it.

Each job (``pretrain.py``, ``unlearn.py``, ``retrain.py`` beside this file) is one ``setup`` and one ``train``
function and a factory that returns its task, e.g. :func:`trainables.jobs.pretrain.pretrain_train_task`.

Example:
    >>> task = pretrain_train_task(job)
    >>> setup = task.setup(task.job)                          # data, fresh model, spec, splits
    >>> model, history = task.train(task.job, LoopContext(), setup)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from torch import nn

from trainables.data import Splits
from trainables.data.sources import ImageSource
from trainables.jobs.common import checkpoint_meta
from trainables.loops.context import LoopContext


@dataclass
class Setup:
    """A job ready to train: the model to start from, how to rebuild it, and its data."""

    model: nn.Module
    spec: dict[str, Any]          # checkpoint.model_spec(...): rebuilds the architecture
    source: ImageSource
    splits: Splits
    state: Any = None             # whatever else the task's train/meta functions need (e.g. an UnlearnRun)


@dataclass(frozen=True)
class StreamedSplit:
    """The records a job's training loader reads, for a reader that streams them instead (Ray Data on
    ``--workers N``): the loader's sample ids in its dataset's order and its sampler's ``drop_last``."""

    source: ImageSource           # file-backed (``source.paths`` set) for streaming to apply
    ids: np.ndarray               # (n,) int64
    drop_last: bool
    batch_size: int               # the loader's per-worker batch size


@dataclass(frozen=True)
class TrainTask:
    kind: str                     # "pretrain" | "forget" | "retrain": meta["kind"] and the default run-name prefix
    job: Any                      # the validated job config (pydantic); must have ``runtime`` (seed, threads)
    epochs: int                   # the loop's epoch count: the last epoch always checkpoints
    setup: Callable[[Any], Setup]
    train: Callable[[Any, LoopContext, Setup], tuple[nn.Module, list[dict[str, Any]]]]
    ddp_kwargs: dict[str, Any] = field(default_factory=dict)  # DistributedDataParallel options
    # Inputs that define the result but are not in ``job`` (parent checkpoint hash, forget ids): part of the run name
    identity: dict[str, Any] = field(default_factory=dict)
    # meta(job, setup, history) -> the checkpoint's meta.json facts; default trainables.jobs.common.checkpoint_meta
    meta: Callable[[Any, Setup, list[dict[str, Any]]], dict[str, Any]] | None = None
    # streamed(job) -> the training loader's records (None: its batches are not plain uint8 images); None: the
    # job never streams
    streamed: Callable[[Any], StreamedSplit | None] | None = None

    def checkpoint_meta(self, setup: Setup, history: list[dict[str, Any]]) -> dict[str, Any]:
        if self.meta is not None:
            return self.meta(self.job, setup, history)
        return checkpoint_meta(self.job, self.kind, history)
