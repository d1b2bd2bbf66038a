"""Evaluate forgetting: the same attacks on the unlearned model, the original and the retrained one, plus utility.

- :func:`evaluate_models` is the full report (``unlearn evaluate``): several roles (``unlearned``, ``original``,
  ``retrained``) scored on the *same* fit / score ids with the same seeds, so their numbers are comparable.
- :func:`evaluate_forgetting` is the fast entry point for the scheduler and Tune trials: one model, a flat dict of
  metrics (seconds at ~1k samples on CPU), optionally compared with a reference (e.g. the retrained model).

Example:
    >>> m = evaluate_forgetting(model, source, splits, forget_ids, model_config=meta["config"],
    ...                         config={"bootstrap": 0}, reference=retrained_metrics)
    >>> m["mia_accuracy"], m["mia_gap_to_retrain"], m["forget_cos_mean"]
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from trainables.attacks.config import AttackConfig
from trainables.attacks.protocol import AttackSets, attack_sets
from trainables.attacks.runner import AttackResult, SignalQuery, fit_attacks, run_attacks
from trainables.attacks.signals import Signals
from trainables.audit.metrics import leakage
from trainables.data.sources import ImageSource
from trainables.data.splits import Splits
from trainables.utility.measure import classifier_accuracy, encoder_utility


@dataclass
class ModelReport:
    """Everything measured on one model (one role)."""

    role: str
    attacks: dict[str, AttackResult]
    signals: Signals  # scored samples: members (the forget set) first, then non-members
    sets: AttackSets
    utility: dict[str, float] = field(default_factory=dict)
    eval_time_s: float = 0.0

    @property
    def member_signals(self) -> Signals:
        return self.signals.take(self.sets.score_members)

    @property
    def nonmember_signals(self) -> Signals:
        return self.signals.take(self.sets.score_nonmembers)

    def signal_means(self) -> dict[str, float]:
        m, n = self.member_signals, self.nonmember_signals
        return {"forget_cos_mean": float(m.cos_mean.mean()), "nonmember_cos_mean": float(n.cos_mean.mean()),
                "forget_top1": float(m.top1.mean()), "nonmember_top1": float(n.top1.mean()),
                "forget_loss": float(m.loss.mean()), "nonmember_loss": float(n.loss.mean())}


def as_attack_config(config: AttackConfig | Mapping[str, Any] | None) -> AttackConfig:
    from pydantic import ValidationError

    from trainables.errors import UserError

    if isinstance(config, AttackConfig):
        return config
    try:
        return AttackConfig.model_validate(dict(config or {}))
    except ValidationError as exc:  # a bad attack setting is the user's input: one error line, exit 2
        raise UserError("invalid attack settings: " + "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'attack'}: {e['msg'].removeprefix('Value error, ')}"
            for e in exc.errors())) from None


def model_utility(model, source: ImageSource, splits: Splits, forget_ids, *, knn_k: int = 200,
                  knn_temperature: float = 0.1, linear_probe: bool = True, device: Any = "cpu") -> dict[str, float]:
    """Encoders: kNN / linear-probe accuracy of held-out ``nonmember_eval`` against the retained members.
    Classifiers: RA / UA / TA = accuracy on retain, forget, ``nonmember_eval`` (the held-out test set)."""
    retain = np.setdiff1d(splits["member"], np.asarray(forget_ids, dtype=np.int64))
    if getattr(model, "is_contrastive", True):
        return encoder_utility(model, source, retain, splits["nonmember_eval"], k=knn_k, temperature=knn_temperature,
                               linear_probe=linear_probe, device=device)
    return {"retain_acc": classifier_accuracy(model, source, retain, device),
            "forget_acc": classifier_accuracy(model, source, forget_ids, device),
            "test_acc": classifier_accuracy(model, source, splits["nonmember_eval"], device)}


def evaluate_models(models: Mapping[str, Any], source: ImageSource, splits: Splits, forget_ids, *,
                    config: AttackConfig, model_config: dict | None, shadow_model=None, utility: bool = True,
                    eval_cfg=None, device: Any = "cpu", log=None) -> dict[str, ModelReport]:
    """Score every model in ``models`` (role -> model) with the same protocol; the shadow attack is fitted once."""
    sets = attack_sets(splits, forget_ids, threat_model=config.threat_model, seed=config.seed,
                       max_fit=config.max_fit)
    query = SignalQuery.for_model(config, model_config, source, splits, device)
    fitted = None
    if config.threat_model == "shadow":
        if shadow_model is None:
            raise ValueError("the shadow threat model needs a shadow model")
        shadow_signals = query.signals(shadow_model, source, sets.fit_ids)
        fitted = fit_attacks(shadow_signals, sets.fit_labels, config)
    reports = {}
    for role, model in models.items():
        t0 = time.perf_counter()
        if log is not None:
            log(f"auditing the {role} model: {config.n_views} views per image, fitting {len(config.attacks)} "
                f"attacks ...")
        results, signals = run_attacks(model, source, sets, query, config, fitted=fitted)
        util = {}
        if utility:
            kw = {} if eval_cfg is None else {"knn_k": eval_cfg.knn_k, "knn_temperature": eval_cfg.knn_temperature,
                                              "linear_probe": eval_cfg.linear_probe}
            util = model_utility(model, source, splits, forget_ids, device=device, **kw)
        reports[role] = ModelReport(role, results, signals, sets, util, time.perf_counter() - t0)
        if log is not None:
            primary = results[config.attacks[0]]
            log(f"evaluated {role}: {config.attacks[0]} accuracy {primary.value('accuracy'):.3f}, "
                f"AUC {primary.value('auc'):.3f} ({reports[role].eval_time_s:.1f}s)")
    return reports


def flat_metrics(report: ModelReport, primary: str) -> dict[str, float]:
    """``{attack}_{metric}`` (+ ``_lo`` / ``_hi``), ``mia_*`` for the primary attack, signal means, utility."""
    out: dict[str, float] = {}
    for name, result in report.attacks.items():
        prefixes = [name, "mia"] if name == primary else [name]
        for prefix in prefixes:
            for metric, (value, lo, hi) in result.metrics.items():
                out[f"{prefix}_{metric}"] = value
                if np.isfinite(lo):
                    out[f"{prefix}_{metric}_lo"], out[f"{prefix}_{metric}_hi"] = lo, hi
            out[f"{prefix}_efficacy"] = result.mia_efficacy
    out.update(report.signal_means())
    out.update(report.utility)
    out["leakage_vs_chance"] = abs(out["mia_accuracy"] - 0.5)
    out["n_fit"], out["n_score"] = float(len(report.sets.fit_members)), float(len(report.sets.score_members))
    out["eval_time_s"] = report.eval_time_s
    return out


def compare_to_reference(metrics: dict[str, float], reference: Mapping[str, float]) -> dict[str, float]:
    """Gap of the primary attack (and signal means) to a reference model's metrics, e.g. the retrained one."""
    out = {}
    if "mia_accuracy" in reference:
        lk = leakage(metrics["mia_accuracy"], reference["mia_accuracy"])
        out["mia_gap_to_retrain"], out["leakage_vs_retrain"] = lk["gap_to_retrain"], lk["leakage_vs_retrain"]
    if "mia_auc" in reference:
        out["mia_auc_gap_to_retrain"] = metrics["mia_auc"] - reference["mia_auc"]
    for key in ("forget_cos_mean", "forget_top1", "knn_acc", "linear_acc", "test_acc", "forget_acc"):
        if key in metrics and key in reference:
            out[f"{key}_gap_to_retrain"] = metrics[key] - reference[key]
    return out


def evaluate_forgetting(model, source: ImageSource, splits: Splits, forget_ids, *, reference=None,
                        config: AttackConfig | Mapping[str, Any] | None = None, model_config: dict | None = None,
                        shadow_model=None, utility: bool = False, device: Any = "cpu") -> dict[str, float]:
    """Flat metrics of how well ``forget_ids`` are forgotten by ``model`` (fast path for the scheduler / Tune).

    ``reference``: a metrics dict from an earlier call (e.g. on the retrained model) or a model, which is then
    evaluated with the same protocol; adds ``mia_gap_to_retrain`` and ``leakage_vs_retrain``.
    ``config``: :class:`AttackConfig` or a dict of its fields (e.g. ``{"bootstrap": 0, "n_views": 6}``).
    ``model_config``: the pretraining job config (``meta["config"]``), for the default view strength.
    """
    cfg = as_attack_config(config)
    models = {"model": model}
    if reference is not None and not isinstance(reference, Mapping):
        models["reference"] = reference
    reports = evaluate_models(models, source, splits, forget_ids, config=cfg, model_config=model_config,
                              shadow_model=shadow_model, utility=utility, device=device)
    out = flat_metrics(reports["model"], cfg.attacks[0])
    ref = flat_metrics(reports["reference"], cfg.attacks[0]) if "reference" in reports else reference
    if ref:
        out.update(compare_to_reference(out, ref))
    return out
