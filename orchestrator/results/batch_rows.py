"""Results-store row of a scheduled deletion batch (``kind=scheduled-batch``), written by ``unlearn schedule run``
once the batch is promoted (``status`` ok) or failed (``status`` failed).

Stages from the verification metrics: ``before`` = the parent version (the gate's attack AUC on this batch's ids vs
the held-out non-members, and its utility), ``after`` = the candidate. The AUC fills ``mia_auc``; the utility fills
``knn_acc`` (encoders) or ``test_acc`` (classifiers). Everything the ledger recorded (the verdict, its test
statistic and p-values, reason, run name, version) is in ``extra_json``.

The ledger is the source of truth: the row is written after the ledger's transition has committed, so a crash in
between loses the row, never a ledger state (``unlearn requests list`` / ``models list`` still tell all).

    row = batch_row(ledger, batch_id=3, version=5)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from orchestrator.ledger.db import Ledger, parse_time


def _stage(metrics: dict[str, Any], attack_key: str, utility_key: str, attack: str, utility: str | None):
    out = {}
    if isinstance(metrics.get(attack), (int, float)):
        out[attack_key] = float(metrics[attack])
    if utility and isinstance(metrics.get(utility), (int, float)):
        out[utility_key] = float(metrics[utility])
    return out


def batch_row(ledger: Ledger, batch_id: int, version: int | None) -> dict[str, Any]:
    from orchestrator.results.run_rows import num_members
    from orchestrator.results.store import make_row
    from trainables.checkpoint import read_meta

    batch = ledger.get_batch(batch_id)
    parent = ledger.get_model(batch["parent_version"])
    meta = read_meta(parent["uri"])
    config = batch.get("config") or {}
    metrics = batch.get("metrics") or {}
    utility_key = "test_acc" if meta.get("method") == "supervised" else "knn_acc"
    stages = {"before": _stage(metrics, "mia_auc", utility_key, "forget_auc_parent", "accuracy_parent"),
              "after": _stage(metrics, "mia_auc", utility_key, "forget_auc", "accuracy_candidate")}
    gaps: dict[str, float] = {}
    wall = None
    if batch.get("finished_at") and batch.get("created_at"):
        wall = parse_time(batch["finished_at"]) - parse_time(batch["created_at"])
    requests = ledger.list_requests(batch_id=batch_id)
    return make_row(
        kind="scheduled-batch", status="ok" if batch["state"] == "done" else batch["state"],
        dataset=meta.get("dataset"), model=meta.get("method"), backbone=meta.get("backbone"),
        method=(config.get("job") or {}).get("method"), num_members=num_members(Path(parent["uri"])),
        forget_size=len(batch.get("forget_ids") or []), batch_id=str(batch_id), experiment="scheduled",
        checkpoint_uri=batch.get("candidate_uri"), parent_uri=parent["uri"], wall_time_s=wall,
        hyperparameters=config, metrics={k: v for k, v in stages.items() if v},
        extra={"version": version, "parent_version": batch["parent_version"], "state": batch["state"],
               "reason": batch.get("reason"), "run_name": batch["run_name"], "requests": len(requests),
               "verification": metrics, "ledger": str(ledger.path)},
        **gaps,
    )
