"""The gate's evidence contract written directly, so certificates are tested without the statistical gate.

Per batch: ``<ledger dir>/evidence/batch-<id>.parquet`` (``sample_id:int64, role:string, model:string,
score:float64``), its sha256 in the batch row's ``evidence_sha256`` (the column is added here when the gate's
migration is not there yet), and ``metrics["verification"]`` in the batch row.

    write_gate_evidence(ledger_path, batch_id, forget={3: (0.99, 0.5)}, nonmember=[i / 100 for i in range(100)])
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from orchestrator.ledger.certificate.facts import evidence_path
from orchestrator.ledger.db import Ledger
from trainables.checkpoint import sha256_file

EVIDENCE_SCHEMA = pa.schema([("sample_id", pa.int64()), ("role", pa.string()), ("model", pa.string()),
                             ("score", pa.float64())])


def gate_verification(**changes) -> dict:
    """A ``verified`` verdict with a rejecting power check, as the gate stores it."""
    out = {"verdict": "verified", "test": "mann-whitney-u (one-sided)", "statistic": 0.512, "p_value": 0.41,
           "alpha": 0.05, "parent_p_value": 0.0004, "parent_rejects": True, "n_forget": 5, "n_nonmember": 100,
           "attack": "lira-offline", "reference_k": 4,
           "utility": {"parent": 0.8, "candidate": 0.79, "drop": 0.01, "ci_low": -0.005, "ci_high": 0.025},
           "reason": ""}
    out.update(changes)
    return out


def write_gate_evidence(ledger_path: str | Path, batch_id: int, *, forget: dict[int, tuple[float, float]],
                        nonmember: list[float], verification: dict | None = None) -> Path:
    """Write batch ``batch_id``'s evidence: ``forget`` maps sample id -> (parent score, candidate score); the
    non-members get the same scores under both models. Returns the Parquet path."""
    rows = [(i, "forget", model, s) for i, pair in forget.items() for model, s in zip(("parent", "candidate"), pair,
                                                                                      strict=True)]
    rows += [(10_000 + n, "nonmember", model, s) for n, s in enumerate(nonmember) for model in ("parent", "candidate")]
    path = evidence_path(ledger_path, batch_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = list(zip(*rows, strict=True))
    pq.write_table(pa.table([list(c) for c in columns], schema=EVIDENCE_SCHEMA), path)
    with Ledger(ledger_path) as led, led.transaction() as c:
        if "evidence_sha256" not in [r[1] for r in c.execute("PRAGMA table_info(batches)")]:
            c.execute("ALTER TABLE batches ADD COLUMN evidence_sha256 TEXT")
        metrics = json.loads(c.execute("SELECT metrics FROM batches WHERE batch_id = ?", (batch_id,)).fetchone()[0]
                             or "{}")
        metrics["verification"] = verification or gate_verification()
        c.execute("UPDATE batches SET evidence_sha256 = ?, metrics = ? WHERE batch_id = ?",
                  (sha256_file(path), json.dumps(metrics), batch_id))
    return path
