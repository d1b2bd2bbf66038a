"""``retrain``: the gold standard every unlearning method is compared with. A fresh model (seeded like the parent)
is pretrained on the retain set only, with the parent's own recipe (``meta["config"]`` of its checkpoint), by the
same loop that pretrained the parent (``trainables/loops/pretrain.py``). It never reads a forget sample.

Example:
    >>> model, history, spec = retrain(pretrain_job, source, splits, retain_ids, ctx)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from trainables.jobs.common import new_model
from trainables.loops.context import LoopContext
from trainables.loops.pretrain import pretrain


def retrain_job(pretrain_job, job):
    """The parent's pretraining job with this run's runtime and, if given, ``retrain_epochs``."""
    optim = pretrain_job.optim.model_copy(update={"epochs": job.retrain_epochs or pretrain_job.optim.epochs})
    return pretrain_job.model_copy(update={"runtime": job.runtime, "optim": optim})


def retrain(pretrain_job, source, splits, retain_ids: np.ndarray, ctx: LoopContext | None = None,
            ) -> tuple[Any, list[dict[str, Any]], dict[str, Any]]:
    """Pretrain from scratch on ``retain_ids``; returns the model, its history and its architecture spec."""
    model, spec = new_model(pretrain_job, source, len(retain_ids))
    model, history = pretrain(pretrain_job, model, source, splits, ctx, train_ids=np.asarray(retain_ids),
                              eval_ids=splits["nonmember_eval"])
    return model, history, spec
