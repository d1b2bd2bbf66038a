"""Each model version's member set (the sample ids it was trained on), kept in the ledger itself.

Deletion requests carry legal deadlines, so recording one must not depend on the served model's files: the member
ids are copied into the ledger when a version is registered (``model_members``: version, the ids as JSON, and the
sha256 of that JSON), and ``unlearn requests add`` checks ids against that copy. Unlearning never changes a
model's members (forget + retain = the same members), so a version without its own row (a candidate promoted by
the scheduler) has its nearest ancestor's.

Ledgers created before this table are back-filled by the migration (:func:`add_member_sets`) from each version's
checkpoint when it is readable and still matches the ledger's digest; a version that cannot be back-filled falls
back to reading its checkpoint at intake, as before.

    record_members(c, version, members)                # inside the registration transaction
    members = recorded_members(ledger.conn, version)    # np.ndarray of int64, or None when never recorded
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

import numpy as np

from trainables.errors import UserError

TABLE = """CREATE TABLE IF NOT EXISTS model_members (
    version INTEGER PRIMARY KEY REFERENCES model_versions(version),
    member_ids TEXT NOT NULL,
    sha256 TEXT NOT NULL
)"""
MEMBER_SPLITS = ("retain", "forget")  # members = retain + forget (trainables.data.splits)


def _encode(members) -> tuple[str, str]:
    text = json.dumps(sorted({int(i) for i in members}))
    return text, hashlib.sha256(text.encode()).hexdigest()


def record_members(c: sqlite3.Connection, version: int, members) -> None:
    """Store a version's member ids (call inside the transaction that inserts the version)."""
    text, digest = _encode(members)
    c.execute("INSERT OR REPLACE INTO model_members (version, member_ids, sha256) VALUES (?, ?, ?)",
              (version, text, digest))


def recorded_members(c: sqlite3.Connection, version: int) -> np.ndarray | None:
    """The member ids recorded for ``version`` or its nearest ancestor; None when none was recorded."""
    v = version
    while v is not None:
        row = c.execute("SELECT member_ids, sha256 FROM model_members WHERE version = ?", (v,)).fetchone()
        if row is not None:
            if hashlib.sha256(row[0].encode()).hexdigest() != row[1]:
                raise UserError(f"the ledger's member set of model version {v} does not match its sha256; the "
                                f"ledger was edited by hand: restore it from a backup")
            return np.asarray(json.loads(row[0]), dtype=np.int64)
        parent = c.execute("SELECT parent FROM model_versions WHERE version = ?", (v,)).fetchone()
        v = parent[0] if parent else None
    return None


def verified_manifest(uri: str, meta_sha256: str) -> Path | None:
    """The checkpoint directory, only if its meta.json and split manifest match their digests (else None)."""
    root = Path(uri)
    try:
        meta_bytes = (root / "meta.json").read_bytes()
        if hashlib.sha256(meta_bytes).hexdigest() != meta_sha256:
            return None
        listed = json.loads(meta_bytes).get("sha256", {}).get("splits.parquet")
        manifest = (root / "splits.parquet").read_bytes()
        if not isinstance(listed, str) or hashlib.sha256(manifest).hexdigest() != listed:
            return None
    except (OSError, ValueError, AttributeError, TypeError):  # unreadable: leave it to intake's fallback
        return None
    return root


def _members_from_checkpoint(uri: str, meta_sha256: str) -> list[int] | None:
    """Member ids from a checkpoint's manifest, only if meta.json and the manifest match their digests."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    root = verified_manifest(uri, meta_sha256)
    if root is None:
        return None
    try:
        table = pq.read_table(root / "splits.parquet", columns=["sample_id", "split"])
        keep = pc.is_in(table.column("split"), value_set=_strings(MEMBER_SPLITS))
        return [int(i) for i in table.filter(keep).column("sample_id").to_pylist()]
    except (OSError, ValueError, KeyError, AttributeError, TypeError):  # unreadable: leave it to intake's fallback
        return None


def _strings(values):
    import pyarrow as pa

    return pa.array(list(values), pa.string())


def add_member_sets(c: sqlite3.Connection) -> None:
    """Migration: create ``model_members`` and back-fill it from readable checkpoints. Idempotent, so it may run
    in any order with other migrations."""
    c.execute(TABLE)
    rows = c.execute("SELECT version, uri, sha256 FROM model_versions WHERE version NOT IN "
                     "(SELECT version FROM model_members) ORDER BY version").fetchall()
    for version, uri, sha256 in rows:
        members = _members_from_checkpoint(uri, sha256)
        if members is not None:
            record_members(c, version, members)
