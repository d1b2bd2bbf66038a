"""The per-batch evidence file: every per-sample membership score the gate's verdict rests on.

``<ledger dir>/evidence/batch-<batch_id>.parquet``, one row per (model, role, sample):

    sample_id:int64  role:string ('forget' | 'nonmember' | 'earlier')  model:string ('parent' | 'candidate')
    score:float64    (the primary attack's membership score, higher = more member-like)

Written atomically (temporary file, then rename) before the verdict is committed; its sha256 is stored in the
batch row (``batches.evidence_sha256``), so a later edit of the file is detectable (:func:`read_evidence`).

    path, sha = write_evidence(ledger.path, batch_id, result.evidence)
    table = read_evidence(ledger.path, batch_id, sha256=batch["evidence_sha256"])
"""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from trainables.errors import UserError

SCHEMA = pa.schema([("sample_id", pa.int64()), ("role", pa.string()), ("model", pa.string()),
                    ("score", pa.float64())])


def evidence_path(ledger_path: str | os.PathLike, batch_id: int) -> Path:
    return Path(ledger_path).parent / "evidence" / f"batch-{int(batch_id)}.parquet"


def _sha256(path: Path) -> str:
    from trainables.checkpoint import sha256_file

    return sha256_file(path)


def write_evidence(ledger_path: str | os.PathLike, batch_id: int,
                   rows: list[tuple[int, str, str, float]]) -> tuple[Path, str]:
    """Write the rows (sample_id, role, model, score); returns (path, sha256 of the file)."""
    path = evidence_path(ledger_path, batch_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = list(zip(*rows, strict=True)) if rows else [[], [], [], []]
    table = pa.Table.from_arrays([pa.array(col, type=f.type) for col, f in zip(columns, SCHEMA, strict=True)],
                                 schema=SCHEMA)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    pq.write_table(table, tmp)
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    tmp.replace(path)
    return path, _sha256(path)


def read_evidence(ledger_path: str | os.PathLike, batch_id: int, *, sha256: str | None = None) -> pa.Table:
    """The evidence table of a batch; with ``sha256`` (the batch row's), refuse a file that changed since."""
    path = evidence_path(ledger_path, batch_id)
    if not path.is_file():
        raise UserError(f"no evidence file for batch {batch_id}: {path}")
    if sha256 is not None and _sha256(path) != sha256:
        raise UserError(f"{path} was modified after the verdict (sha256 differs from the ledger's); refusing it")
    return pq.read_table(path, schema=SCHEMA)
