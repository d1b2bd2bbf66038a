"""Results-store rows for an evaluation: one ``kind=evaluate`` row per attack, stages before / after / retrain.

Stage mapping: ``before`` = the original model, ``after`` = the evaluated (unlearned) checkpoint, ``retrain`` = the
retrained model. A pretrained checkpoint evaluated alone fills ``before`` only (an audit of its members).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from orchestrator.results.store import make_row
from trainables.audit.metrics import verdict

STAGE_OF_ROLE = {"original": "before", "unlearned": "after", "retrained": "retrain"}


def stage_metrics(report, attack: str) -> dict[str, float]:
    """One attack's metrics as ``mia_*`` (+ ``_lo``/``_hi``), plus the model's signal means and utility."""
    res = report.attacks[attack]
    out: dict[str, float] = {}
    for metric, (value, lo, hi) in res.metrics.items():
        out[f"mia_{metric}"] = value
        if np.isfinite(lo):
            out[f"mia_{metric}_lo"], out[f"mia_{metric}_hi"] = lo, hi
    out["mia_efficacy"] = res.mia_efficacy
    out.update(report.signal_means())
    out.update(report.utility)
    return out


def unlearning_method(meta: dict[str, Any]) -> str:
    """Best effort: the unlearning method recorded by the unlearn / retrain job, else the checkpoint kind."""
    for section in ("unlearning", "unlearn"):  # the unlearning job, as the forget / retrain commands record it
        if isinstance(meta.get(section), dict) and meta[section].get("method"):
            return str(meta[section]["method"])
    return {"retrain": "retrain", "pretrain": "none"}.get(meta.get("kind", ""), str(meta.get("kind", "unknown")))


def run_hyperparameters(meta: dict[str, Any], attack: dict[str, Any] | None = None) -> dict[str, Any]:
    """Unlearning job first (its lr / epochs fill hp_lr / hp_epochs), then the pretraining config, then the attack;
    id lists are left out (they are the forget set, not hyperparameters)."""
    unlearning = {k: v for k, v in (meta.get("unlearning") or {}).items() if not k.endswith("_ids")}
    out: dict[str, Any] = {"unlearning": unlearning} if unlearning else {}
    out.update(meta.get("config") or {})
    if attack is not None:
        out["attack"] = attack
    return out


def evaluation_rows(ev, out: Path, *, experiment: str | None = None, plots: list[Path] | None = None,
                    extra: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """One row per attack. ``experiment`` (default: none, as for every job: a main result) tags the rows for the report;
    ``plots`` (the written PNGs) are recorded in ``extra_json.plots`` so the report can show them."""
    main = ev.checkpoints[ev.main_role]
    meta = main.meta
    uri = lambda role: str(Path(ev.checkpoints[role].path).resolve()) if role in ev.checkpoints else None  # noqa: E731
    rows = []
    for attack in ev.job.attack.attacks:
        metrics = {STAGE_OF_ROLE[r]: stage_metrics(rep, attack) for r, rep in ev.reports.items()}
        focus = metrics.get("after") or metrics.get("before") or {}
        gaps: dict[str, Any] = {"leakage_vs_chance": abs(focus["mia_accuracy"] - 0.5)}
        if "retrain" in metrics and "after" in metrics:
            gaps["gap_mia_accuracy"] = metrics["after"]["mia_accuracy"] - metrics["retrain"]["mia_accuracy"]
            gaps["gap_mia_auc"] = metrics["after"]["mia_auc"] - metrics["retrain"]["mia_auc"]
            gaps["leakage_vs_retrain"] = abs(gaps["gap_mia_accuracy"])
        acc = ev.reports[ev.main_role].attacks[attack].metrics["accuracy"]
        sets = ev.reports[ev.main_role].sets
        rows.append(make_row(
            kind="evaluate", dataset=meta.get("dataset"), model=meta.get("method"), backbone=meta.get("backbone"),
            method=unlearning_method(meta), attack=attack, threat_model=ev.job.attack.threat_model,
            num_members=int(len(ev.splits["member"])), forget_size=int(len(ev.forget_ids)),
            n_score=int(len(sets.score_members)), checkpoint_uri=uri(ev.main_role),
            parent_uri=(meta.get("parent") or {}).get("path"), original_uri=uri("original"),
            retrained_uri=uri("retrained"), eval_time_s=ev.wall_time_s,
            wall_time_s=float(meta["wall_time_s"]) if isinstance(meta.get("wall_time_s"), (int, float)) else None,
            batch_id=meta.get("batch_id"), experiment=experiment,
            hyperparameters=run_hyperparameters(meta, ev.job.attack.model_dump(mode="json")),
            metrics=metrics, extra={"verdict": verdict(*acc), "primary": attack == ev.primary,
                                    "role": ev.main_role, "pretrain_config": ev.pretrain_config,
                   "plots": [str(Path(p).resolve()) for p in plots or []], **(extra or {})},
            **gaps,
        ))
    return rows
