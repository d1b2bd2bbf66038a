"""Plain-text views of ledger rows for the ``requests``, ``models`` and ``schedule`` commands (and ``--json``).

    print(format_table(rows, ["request_id", "status"]))
    print(request_table(ledger.list_requests()))
"""

from __future__ import annotations

import json
from typing import Any

from orchestrator.ledger.safe_text import printable


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return printable(value)  # ids and reasons are untrusted text: no newline or ANSI escape reaches the terminal


def format_table(rows: list[dict[str, Any]], columns: list[str], headers: list[str] | None = None) -> str:
    """Left-aligned columns, one header line; ``(none)`` for no rows."""
    if not rows:
        return "(none)"
    headers = headers or columns
    cells = [[_cell(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(h), *(len(row[i]) for row in cells)) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    return "\n".join(lines)


def short_ids(ids: list[int], limit: int = 6) -> str:
    return ",".join(map(str, ids[:limit])) + (f",...({len(ids)})" if len(ids) > limit else "")


def short_keys(keys: list[str] | None, limit: int = 2, width: int = 40) -> str | None:
    if not keys:
        return None
    text = ",".join(keys[:limit]) + (f",...({len(keys)})" if len(keys) > limit else "")
    return text if len(text) <= width else text[:width - 3] + "..."


def request_table(rows: list[dict[str, Any]]) -> str:
    view = [{**r, "ids": short_ids(r["sample_ids"]), "keys": short_keys(r.get("sample_keys")),
             "reason": (r["reason"] or "")[:60] or None} for r in rows]
    return format_table(view, ["request_id", "subject_id", "keys", "ids", "status", "retry_count", "batch_id",
                               "received_at", "reason"],
                        ["REQUEST", "SUBJECT", "KEYS", "SAMPLE_IDS", "STATUS", "RETRIES", "BATCH", "RECEIVED_AT",
                         "REASON"])


EVIDENCE_LABELS = {"verified": "verified", "no-signal": "not detectable before or after",
                   "unverified": "PROMOTED UNVERIFIED"}


def evidence_label(row: dict[str, Any]) -> str:
    """What stands behind a version: the gate's verdict, no signal, a forced promotion (with its reason), or
    nothing to verify (a base model registered as it is; older ledgers: promoted by the pre-gate rule)."""
    evidence = row.get("evidence")
    if evidence == "unverified":
        return f"PROMOTED UNVERIFIED: {row.get('evidence_note') or 'no reason given'}"
    if evidence in EVIDENCE_LABELS:
        return EVIDENCE_LABELS[evidence]
    return "base model" if row.get("batch_id") is None else "promoted before the statistical gate"


def model_table(rows: list[dict[str, Any]]) -> str:
    view = []
    for r in rows:
        m = r["metrics"] or {}
        shown = {k: m[k] for k in ("forget_auc", "p_value", "accuracy_candidate", "knn_acc") if k in m}
        view.append({**r, "current": "*" if r["is_current"] else "", "forgotten": len(r["forgotten_ids"]),
                     "metrics": ", ".join(f"{k}={v:.3g}" for k, v in shown.items()) or None,
                     "evidence": evidence_label(r)[:60],
                     "state": "retired" if r["retired_at"] else ("current" if r["is_current"] else "")})
    return format_table(view, ["current", "version", "parent", "batch_id", "forgotten", "promoted_at", "state",
                               "evidence", "metrics", "reference_k", "uri"],
                        ["", "VERSION", "PARENT", "BATCH", "FORGOTTEN", "PROMOTED_AT", "STATE", "EVIDENCE", "METRICS",
                         "REFS_K",
                         "URI"])


def batch_table(rows: list[dict[str, Any]]) -> str:
    view = [{**r, "ids": len(r["forget_ids"]), "reason": (r["reason"] or "")[:70] or None} for r in rows]
    return format_table(view, ["batch_id", "state", "verdict", "p_value", "parent_p_value", "parent_version", "ids",
                               "run_name", "created_at", "reason"],
                        ["BATCH", "STATE", "VERDICT", "P", "PARENT_P", "PARENT", "NEW_IDS", "RUN", "CREATED_AT",
                         "REASON"])


def as_json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, default=str)
