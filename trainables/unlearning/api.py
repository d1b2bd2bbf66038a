"""One interface for every unlearning method.

Example:
    >>> job = UnlearnJob(method="memgp", a=0, b=1, form="squared")
    >>> model, history = unlearn(model, source, splits, forget_ids, job, LoopContext(), pretrain_job=pjob)
    >>> history[-1]["memgp"]       # per-epoch means of every loss component

``model`` is changed in place (``retrain`` returns a new model). ``pretrain_job`` is the parent's pretraining config
(``meta["config"]``): the augmentation recipe of L_train, the kNN monitor settings, and, for ``retrain``, the whole
recipe. ``retain_ids`` defaults to members - forget (pass it when earlier runs already forgot other ids).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from torch import nn

from trainables.config import PretrainJob
from trainables.data.splits import Splits
from trainables.errors import UserError
from trainables.loops.context import LoopContext
from trainables.models.base import unwrap
from trainables.unlearning.config import UnlearnJob
from trainables.unlearning.loop import step_loop
from trainables.unlearning.registry import METHODS, STEP_METHODS
from trainables.unlearning.retrain import retrain, retrain_job


def check_compatible(job: UnlearnJob, model: nn.Module, ids: dict[str, np.ndarray]) -> None:
    """Refuse a method that cannot run on this model or these splits, before any work."""
    base = unwrap(model)
    method = METHODS[job.method]
    kind = "encoder" if base.is_contrastive else "classifier"
    if not method.supports(kind):
        fits = ", ".join(name for name, m in METHODS.items() if m.supports(kind) and name != "retrain")
        needs = "a supervised classifier" if method.supervised_only else f"a {' or '.join(method.kinds)}"
        raise UserError(f"{job.method} needs {needs}; this checkpoint holds a {base.method} {kind}. Use {fits}")
    if job.embed_output == "logits" and base.is_contrastive:
        raise UserError(f"embed_output=logits: a {base.method} encoder has no logits; use features or projection")
    if job.embed_output == "projection" and not base.is_contrastive:
        raise UserError("embed_output=projection: a supervised classifier has no projection; use features or logits")
    if job.penalty_output != "embed" and base.is_contrastive and method.penalty:
        raise UserError(f"penalty_output={job.penalty_output}: a {base.method} encoder has no labels to take the "
                        f"log-probability of; use penalty_output=embed")
    if job.method == "gp" and job.b > 0 and len(ids.get("nonmember_ref", ())) == 0:
        raise UserError("gp (Eq. 2) interpolates with reference non-members, but the nonmember_ref split is empty; "
                        "name the method memgp (--method memgp), which needs no non-member data")
    if len(ids["forget"]) == 0:
        raise UserError("the forget set is empty: name at least one member sample id")
    needs_retain = method.primary == "retain" or "retain" in method.streams(job)
    if needs_retain and len(ids["retain"]) == 0:
        raise UserError(f"{job.method} trains on the retain set, which is empty")


def unlearn(model: nn.Module, source, splits: Splits, forget_ids, job: UnlearnJob, ctx: LoopContext | None = None,
            *, pretrain_job: PretrainJob | None = None, retain_ids=None) -> tuple[nn.Module, list[dict[str, Any]]]:
    """Make ``model`` forget ``forget_ids`` with ``job.method``; returns the model and per-epoch metrics."""
    forget = np.unique(np.asarray(list(forget_ids), dtype=np.int64))
    retain = np.setdiff1d(splits["member"], forget) if retain_ids is None else np.asarray(retain_ids, np.int64)
    ids = {"forget": forget, "retain": retain, "nonmember_ref": splits["nonmember_ref"],
           "nonmember_eval": splits["nonmember_eval"]}
    check_compatible(job, model, ids)
    return run_method(model, source, splits, ids, job, ctx, pretrain_job=pretrain_job)


def run_method(model: nn.Module, source, splits: Splits, ids: dict[str, np.ndarray], job: UnlearnJob,
               ctx: LoopContext | None = None, *, pretrain_job: PretrainJob | None = None,
               ) -> tuple[nn.Module, list[dict[str, Any]]]:
    """:func:`unlearn` on ids already planned and checked (``forget``, ``retain``, ``nonmember_ref``,
    ``nonmember_eval``: e.g. by :func:`trainables.jobs.unlearn.prepare_unlearning`); validates nothing again."""
    ctx = ctx or LoopContext()
    if pretrain_job is None:
        if job.method == "retrain":
            raise UserError("retrain needs the parent's pretraining recipe (pretrain_job)")
        pretrain_job = PretrainJob(method=unwrap(model).method)
    if job.method == "retrain":
        model, history, _ = retrain(retrain_job(pretrain_job, job), source, splits, ids["retain"], ctx)
        return model, history
    return step_loop(job, model, source, STEP_METHODS[job.method], ids, ctx, augment=pretrain_job.augment,
                     eval_cfg=pretrain_job.eval)
