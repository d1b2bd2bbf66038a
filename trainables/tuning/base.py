"""Everything the trials of one search share, loaded and validated once on the driver (then put in Ray's object
store and read by every trial from memory, never from disk).

:class:`SearchBase` holds the pretrained checkpoint as its state dict (each trial builds a fresh model from it), the
data, the forget plan, the validation view (``trainables/tuning/validation.py``), the attack settings, the scoring,
and the metrics of the original model (and of the retrained model, for ``gap_to_retrain``) under the same protocol.

Example:
    >>> base = prepare_search_base("runs/base", UnlearnJob(method="memgp"), scoring=Scoring(), attack={"bootstrap": 0})
    >>> run = base.unlearn_run(job)                   # an UnlearnRun on a fresh copy of the pretrained model
    >>> metrics = base.evaluate(model, device="cpu")  # validation-protocol metrics (attack + utility)
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from trainables.attacks.config import AttackConfig
from trainables.audit.forgetting import as_attack_config, evaluate_forgetting, model_utility
from trainables.checkpoint import WEIGHTS, Checkpoint, build_from_spec, load_checkpoint
from trainables.config import PretrainJob
from trainables.data.sources import ImageSource
from trainables.data.splits import Splits
from trainables.errors import UserError
from trainables.jobs.unlearn import UnlearnRun, prepare_unlearning
from trainables.tuning.objective import Scoring, require_retrained
from trainables.tuning.validation import validation_splits
from trainables.unlearning.config import UnlearnJob
from trainables.unlearning.plan import ForgetPlan


@dataclass
class SearchBase:
    spec: dict[str, Any]
    state: dict[str, torch.Tensor]       # the pretrained weights (CPU)
    meta: dict[str, Any]
    splits: Splits                       # the checkpoint's own manifest (unlearning reads it)
    checkpoint_path: str
    source: ImageSource
    pretrain_job: PretrainJob
    plan: ForgetPlan
    validation: Splits                   # what trials are scored on (no nonmember_eval)
    attack: AttackConfig
    scoring: Scoring
    original: dict[str, float]           # the pretrained model's validation metrics
    reference: dict[str, float] | None = None  # the retrained model's, if given
    retrained_path: str | None = None
    setup_time_s: float = 0.0

    @property
    def is_contrastive(self) -> bool:
        return self.pretrain_job.method != "supervised"

    @property
    def parent_sha256(self) -> str:
        return self.meta["sha256"][WEIGHTS]

    def model(self):
        """A fresh model holding the pretrained weights."""
        model = build_from_spec(self.spec)
        model.load_state_dict(self.state)
        return model

    def unlearn_run(self, job: UnlearnJob) -> UnlearnRun:
        checkpoint = Checkpoint(self.model(), self.meta, self.splits, Path(self.checkpoint_path))
        return UnlearnRun(job, checkpoint, self.pretrain_job, self.source, self.plan)

    def evaluate(self, model, device: Any = "cpu") -> dict[str, float]:
        """Validation-protocol metrics of ``model``: attacks (``mia_*`` of the primary one, per attack, signal
        means, gaps to the reference), utility (``knn_acc`` / ``linear_acc`` or ``test_acc`` ...)."""
        return validation_metrics(model, self.source, self.validation, self.plan.forget_ids, attack=self.attack,
                                  model_config=self.meta.get("config"), eval_cfg=self.pretrain_job.eval,
                                  linear_probe=self.scoring.accuracy == "linear_acc", reference=self.reference,
                                  device=device)


def validation_metrics(model, source: ImageSource, view: Splits, forget_ids, *, attack: AttackConfig,
                       model_config: dict | None, eval_cfg, linear_probe: bool,
                       reference: Mapping[str, float] | None = None, device: Any = "cpu") -> dict[str, float]:
    t0 = time.perf_counter()
    metrics = evaluate_forgetting(model, source, view, forget_ids, reference=reference, config=attack,
                                  model_config=model_config, device=device)
    metrics.update(model_utility(model, source, view, forget_ids, knn_k=eval_cfg.knn_k,
                                 knn_temperature=eval_cfg.knn_temperature, linear_probe=linear_probe, device=device))
    metrics["eval_time_s"] = time.perf_counter() - t0
    return metrics


def prepare_search_base(checkpoint_dir: str | Path, probe_job: UnlearnJob, *, scoring: Scoring,
                        attack: AttackConfig | Mapping[str, Any] | None = None, forget_ids=None,
                        retrained: str | Path | None = None, device: Any = "cpu", source: ImageSource | None = None,
                        log=None) -> SearchBase:
    """Load and check the checkpoint (``probe_job``: a job of the searched method, so an incompatible method fails
    here), build the validation view, and measure the original (and retrained) model under it. ``source``: the
    data, if already loaded (else read from the checkpoint's data config)."""
    t0 = time.perf_counter()
    run = prepare_unlearning(probe_job, checkpoint_dir, forget_ids, source=source)
    require_retrained(scoring.objective, retrained)
    view = validation_splits(run.checkpoint.splits, forget_ids=run.plan.forget_ids, retain_ids=run.plan.retain_ids)
    is_classifier = run.pretrain_job.method == "supervised"
    if scoring.accuracy not in (("test_acc", "retain_acc") if is_classifier else ("knn_acc", "linear_acc")):
        raise UserError(f"accuracy metric {scoring.accuracy} does not apply to a {run.pretrain_job.method} model")
    state = {k: v.detach().cpu().clone() for k, v in run.checkpoint.model.state_dict().items()}
    base = SearchBase(run.checkpoint.meta["model_spec"], state, run.checkpoint.meta, run.checkpoint.splits,
                      str(Path(checkpoint_dir).resolve()), run.source, run.pretrain_job, run.plan, view,
                      as_attack_config(attack).for_model(run.pretrain_job.method), scoring, original={})
    base.original = base.evaluate(run.checkpoint.model, device)
    _log_model(log, "original", base.original, scoring.accuracy)
    if retrained is not None:
        base.reference = base.evaluate(_retrained_model(base, retrained), device)
        base.retrained_path = str(Path(retrained).resolve())
        _log_model(log, "retrained", base.reference, scoring.accuracy)
    base.setup_time_s = time.perf_counter() - t0
    return base


def _log_model(log, role: str, metrics: dict[str, float], accuracy: str) -> None:
    if log is not None:
        log(f"{role} model (validation protocol): attack accuracy {metrics['mia_accuracy']:.3f}, "
            f"{accuracy} {metrics[accuracy]:.3f}")


def _retrained_model(base: SearchBase, retrained: str | Path):
    """The retrained checkpoint's model, after the checks ``unlearn evaluate --retrained`` makes (same data and
    splits, never trained on the forget set)."""
    from trainables.audit.evaluate import _cross_check

    checkpoint = load_checkpoint(retrained)
    original = Checkpoint(None, base.meta, base.splits, Path(base.checkpoint_path))
    _cross_check({"original": original, "retrained": checkpoint}, "original", base.plan.forget_ids)
    return checkpoint.model
