"""The facts of a per-request deletion certificate, gathered from the ledger, and their content hash.

A certificate says, for one verified deletion request: which records, which batch unlearned them, from which model
version into which promoted version (sha256 and lineage), with which method and config, and the evidence the gate
stored: the verdict, the test, its statistic and p-value at level alpha, the power check (the same test on the
parent must reject), the reference models K, the request's own samples' membership scores before (parent) and after
(candidate) against the non-member score distribution, and utility before and after.

The gate's evidence contract (per batch):

- ``<ledger dir>/evidence/batch-<batch_id>.parquet`` with columns ``sample_id:int64, role:string
  ('forget'|'nonmember'|'earlier'), model:string ('parent'|'candidate'), score:float64``; its sha256 in the batch
  row's ``evidence_sha256`` (no column or NULL: no per-sample evidence);
- the batch row's metrics JSON ``verification`` = {verdict, test, statistic, p_value, alpha, parent_p_value,
  parent_rejects, n_forget, n_nonmember, attack, reference_k, utility: {parent, candidate, drop, ci_low, ci_high},
  reason}. Batches verified before the gate existed have flat metrics only (``forget_attack``, ...): their
  certificate says the evidence is the legacy point estimate.

The content hash is the sha256 of :func:`canonical_json` of the facts; it is stored in the ledger's
``certificates`` table and printed in every format (see :mod:`orchestrator.ledger.certificate.files`).

    facts = certificate_facts(ledger, "req-000003")
    content_sha256(facts)   # 64 hex digits
"""

from __future__ import annotations

import hashlib
import json
import math
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from orchestrator.ledger.db import Ledger, utc_now
from trainables.errors import UserError

CERTIFICATE_FORMAT = "unlearn-certificate/1"
EVIDENCE_COLUMNS = {"sample_id": "int64", "role": "string", "model": "string", "score": "double"}
HISTOGRAM_BINS = 20
_PACKAGES = ("torch", "torchvision", "ray", "lightly", "numpy", "scipy", "scikit-learn", "pyarrow", "pandas")


def evidence_path(ledger_path: str | Path, batch_id: int) -> Path:
    """Where the gate writes a batch's per-sample scores."""
    return Path(ledger_path).parent / "evidence" / f"batch-{batch_id}.parquet"


def canonical_json(facts: dict[str, Any]) -> str:
    """One byte string per set of facts: sorted keys, no whitespace, ASCII, no NaN."""
    return json.dumps(facts, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def content_sha256(facts: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_json(facts).encode()).hexdigest()


def plain(value: Any) -> Any:
    """JSON-ready: numpy scalars to Python, non-finite floats to None (canonical JSON has no NaN)."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [plain(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def certificate_facts(ledger: Ledger, request_id: str, *, issued_at: str | None = None) -> dict[str, Any]:
    """Everything a certificate states about ``request_id`` (UserError if unknown or not verified)."""
    request = ledger.get_request(request_id)
    if request is None:
        raise UserError(f"no request {request_id!r} in {ledger.path}; see `unlearn requests list`")
    if request["status"] != "verified":
        why = f" ({request['reason']})" if request.get("reason") else ""
        raise UserError(f"request {request_id} is {request['status']}, not verified{why}: a certificate is issued "
                        f"only after its batch passed verification and was promoted")
    batch = ledger.get_batch(request["batch_id"])
    parent = ledger.get_model(batch["parent_version"])
    promoted = _promoted_version(ledger, batch)
    unlearned = promoted is not None
    if not unlearned:  # every id was already forgotten by the parent: nothing new was unlearned
        promoted = parent
    _check_checkpoint(promoted)
    ids = [int(i) for i in request["sample_ids"]]
    evidence = load_evidence(ledger, batch)
    current = ledger.current_model()
    return plain({
        "certificate": {"format": CERTIFICATE_FORMAT, "issued_at": issued_at or utc_now(),
                        "ledger_id": ledger.ledger_id},
        "request": {"request_id": request_id, "subject_id": request["subject_id"], "sample_ids": ids,
                    "record_keys": request.get("sample_keys") or record_keys(parent, ids),
                    "received_at": request["received_at"],
                    "batched_at": batch["created_at"], "verified_at": batch["verified_at"],
                    "promoted_at": promoted["promoted_at"] if unlearned else batch["finished_at"],
                    "attempts": len(ledger.request_batches(request_id))},
        "batch": {"batch_id": batch["batch_id"], "run_name": batch["run_name"],
                  "new_sample_ids": len(batch["forget_ids"]),
                  "method": ((batch["config"] or {}).get("job") or {}).get("method"),
                  "config": batch["config"]},
        "models": {"parent": _model_facts(ledger, parent), "promoted": _model_facts(ledger, promoted),
                   "unlearned_in_this_batch": unlearned,
                   "current_at_issue": None if current is None else {
                       "version": current["version"],
                       "forgets_request": set(ids) <= set(current["forgotten_ids"])}},
        "verification": verification_facts(batch, unlearned),
        "scores": sample_scores(evidence, ids, batch),
        "software": software_versions(promoted),
    })


def _promoted_version(ledger: Ledger, batch: dict[str, Any]) -> dict[str, Any] | None:
    row = ledger.conn.execute("SELECT version FROM model_versions WHERE batch_id = ?", (batch["batch_id"],)).fetchone()
    return None if row is None else ledger.get_model(row[0])


def _check_checkpoint(row: dict[str, Any]) -> None:
    """A checkpoint changed since registration is refused; one deleted since (an old version) is only noted."""
    from orchestrator.ledger.versions import verify_model

    if Path(row["uri"]).exists():
        verify_model(row)


def _model_facts(ledger: Ledger, row: dict[str, Any]) -> dict[str, Any]:
    return {"version": row["version"], "sha256": row["sha256"], "uri": row["uri"],
            "batch_id": row["batch_id"], "forgotten_ids": len(row["forgotten_ids"]),
            "promoted_at": row["promoted_at"], "retired_at": row["retired_at"],
            "checkpoint_on_disk": Path(row["uri"]).exists(),
            "lineage": [{"version": r["version"], "sha256": r["sha256"], "batch_id": r["batch_id"]}
                        for r in ledger.lineage(row["version"])]}


def record_keys(parent: dict[str, Any], ids: list[int]) -> list[str] | None:
    """The records' external keys, if the parent's split manifest has a ``key`` column (None otherwise)."""
    import pyarrow.parquet as pq

    from trainables.checkpoint import MANIFEST

    path = Path(parent["uri"]) / MANIFEST
    if not path.is_file() or "key" not in pq.read_schema(path).names:
        return None
    table = pq.read_table(path, columns=["sample_id", "key"]).to_pydict()
    keys = dict(zip(table["sample_id"], table["key"], strict=True))
    return [None if keys.get(i) is None else str(keys[i]) for i in ids]


def load_evidence(ledger: Ledger, batch: dict[str, Any]):
    """The batch's per-sample scores (a DataFrame) after checking their sha256, or None when the batch has none."""
    import pyarrow.parquet as pq

    from trainables.checkpoint import sha256_file

    expected = batch.get("evidence_sha256")
    if not expected:
        return None
    path = evidence_path(ledger.path, batch["batch_id"])
    if not path.is_file():
        raise UserError(f"batch {batch['batch_id']}'s evidence file {path} is missing; the ledger records sha256 "
                        f"{expected[:12]}...; refusing to certify without it")
    if (actual := sha256_file(path)) != expected:
        raise UserError(f"batch {batch['batch_id']}'s evidence file {path} was modified (sha256 {actual[:12]}..., "
                        f"ledger {expected[:12]}...); refusing to certify")
    table = pq.read_table(path)
    missing = sorted(set(EVIDENCE_COLUMNS) - set(table.column_names))
    if missing:
        raise UserError(f"{path} lacks column(s) {', '.join(missing)}: not a batch evidence file")
    return table.select(list(EVIDENCE_COLUMNS)).to_pandas()


def verification_facts(batch: dict[str, Any], unlearned: bool) -> dict[str, Any]:
    """The gate's verdict and statistics; for a pre-gate batch, the legacy point estimate it passed."""
    metrics = batch["metrics"] or {}
    gate = metrics.get("verification")
    if not unlearned:
        return {"evidence": "already forgotten", "verdict": "verified",
                "note": "every sample id of this request was already forgotten by the parent version when the "
                        "request was batched; see the certificate of the request that first asked for them"}
    if isinstance(gate, dict):
        keys = ("verdict", "test", "statistic", "p_value", "alpha", "n_forget", "n_nonmember", "attack",
                "reference_k", "reason")
        out = {"evidence": "statistical test", **{k: gate.get(k) for k in keys}}
        out["power_check"] = {"parent_p_value": gate.get("parent_p_value"),
                              "parent_rejects": gate.get("parent_rejects")}
        out["utility"] = {k: (gate.get("utility") or {}).get(k)
                          for k in ("parent", "candidate", "drop", "ci_low", "ci_high")}
        return out
    verify = (batch["config"] or {}).get("verify") or {}
    parent_u, cand_u = metrics.get("accuracy_parent"), metrics.get("accuracy_candidate")
    return {"evidence": "legacy point estimate", "verdict": "verified",
            "test": f"|attack {verify.get('attack_metric', 'accuracy')} - target| <= tolerance "
                    f"(target: {'retrained reference' if verify.get('reference') else 'chance 0.5'})",
            "attack": f"primary attack ({verify.get('attack_metric', 'accuracy')})",
            "statistic": metrics.get("forget_attack"), "tolerance": verify.get("attack_tolerance"),
            "p_value": None, "alpha": None, "reference_k": None,
            "n_forget": metrics.get("batch_size", len(batch["forget_ids"])),
            "power_check": {"parent_attack": metrics.get("forget_attack_parent"), "parent_p_value": None,
                            "parent_rejects": None},
            "reference_attack": metrics.get("reference_attack"), "earlier_attack": metrics.get("earlier_attack"),
            "utility": {"parent": parent_u, "candidate": cand_u,
                        "drop": None if parent_u is None or cand_u is None else parent_u - cand_u,
                        "ci_low": None, "ci_high": None},
            "note": "verified by the pre-gate rule: one attack score within a fixed tolerance, no p-value and no "
                    "check that the parent leaked; weaker evidence than a statistical test"}


def sample_scores(evidence, ids: list[int], batch: dict[str, Any]) -> dict[str, Any]:
    """Each of the request's samples: its score and percentile among the non-members, parent and candidate.

    Percentile = share of non-member scores below the sample's (ties count half), on the same model: near 50
    means "looks like data the model never saw"; near 100 means "stands out as a member" (higher score = more
    member-like, the gate's convention).
    """
    from scipy.stats import percentileofscore

    if evidence is None:
        return {"available": False, "evidence_sha256": batch.get("evidence_sha256"), "samples": [],
                "nonmember": {}}
    out: dict[str, Any] = {"available": True, "evidence_sha256": batch["evidence_sha256"], "nonmember": {}}
    nonmember = {m: evidence.loc[(evidence["role"] == "nonmember") & (evidence["model"] == m), "score"].to_numpy()
                 for m in ("parent", "candidate")}
    for model, scores in nonmember.items():
        scores = scores[np.isfinite(scores)]
        if len(scores):
            counts, edges = np.histogram(scores, bins=HISTOGRAM_BINS)
            out["nonmember"][model] = {"n": len(scores), "median": float(np.median(scores)),
                                       "counts": counts.tolist(), "bin_edges": [round(float(e), 6) for e in edges]}
    forget = evidence[evidence["role"] == "forget"]
    samples = []
    for i in ids:
        row: dict[str, Any] = {"sample_id": i}
        for model in ("parent", "candidate"):
            hit = forget.loc[(forget["sample_id"] == i) & (forget["model"] == model), "score"].to_numpy()
            score = float(hit[0]) if len(hit) and np.isfinite(hit[0]) else None
            row[f"{model}_score"] = None if score is None else round(score, 6)
            ref = nonmember[model]
            row[f"{model}_percentile"] = (None if score is None or not len(ref)
                                          else round(float(percentileofscore(ref, score, kind="mean")), 2))
        samples.append(row)
    out["samples"] = samples
    return out


def software_versions(promoted: dict[str, Any]) -> dict[str, Any]:
    """The code that issues the certificate, and the packages recorded in the promoted checkpoint."""
    import orchestrator

    issued = {"unlearn-orchestrator": orchestrator.__version__, "python": platform.python_version(),
              "git_commit": _git_commit()}
    for name in _PACKAGES:
        try:
            issued[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            issued[name] = None
    trained = None
    meta_file = Path(promoted["uri"]) / "meta.json"
    if meta_file.is_file():
        trained = json.loads(meta_file.read_text()).get("packages")
    return {"issued_with": issued, "model_trained_with": trained}


def _git_commit() -> str | None:
    import subprocess

    root = Path(__file__).resolve().parent.parent
    if not (root / ".git").exists():
        return None
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None
