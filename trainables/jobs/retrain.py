"""The retraining job (``unlearn retrain``, the gold standard): a fresh model seeded like the parent, pretrained on
the retain set with the parent's own recipe. In process it is :func:`trainables.unlearning.unlearn` with
``method="retrain"``; this file is its Ray Train description (a fresh model in ``setup``, or the restored one on
resume), built by :func:`trainables.jobs.unlearn.forget_train_task`. No Ray here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from trainables.jobs.common import new_model
from trainables.jobs.task import Setup
from trainables.loops.context import LoopContext
from trainables.loops.pretrain import pretrain
from trainables.unlearning.config import UnlearnJob
from trainables.unlearning.retrain import retrain_job

if TYPE_CHECKING:
    from trainables.jobs.unlearn import UnlearnRun


def retrain_epochs(run: UnlearnRun) -> int:
    return retrain_job(run.pretrain_job, run.job).optim.epochs


def retrain_setup(job: UnlearnJob, *, base: Callable[[UnlearnJob], Setup]) -> Setup:
    """The parent's setup with the model replaced by a fresh one sized for the retain set."""
    setup = base(job)
    run: UnlearnRun = setup.state
    setup.model, setup.spec = new_model(retrain_job(run.pretrain_job, job), run.source, len(run.plan.retain_ids))
    return setup


def retrain_train(job: UnlearnJob, ctx: LoopContext, setup: Setup):
    """``trainables.unlearning.retrain.retrain`` on the model from ``setup`` (fresh, or restored on resume)."""
    run: UnlearnRun = setup.state
    rjob = retrain_job(run.pretrain_job, job)
    return pretrain(rjob, setup.model, run.source, run.checkpoint.splits, ctx, train_ids=run.plan.retain_ids,
                    eval_ids=run.checkpoint.splits["nonmember_eval"])
