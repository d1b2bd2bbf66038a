"""Record keys in the ledger: what users name in deletion requests, kept beside the internal sample ids.

A key is a record's stable name (an image folder's relative file path, a manifest's ``key`` column, ``train/17``
for the built-in sets; see docs/data.md); sample ids stay the internal index every batch and model version uses.
When a version is registered, its members' keys are copied into ``member_keys`` (version, ``[[id, key], ...]`` as
JSON, its sha256), like the member ids (:mod:`orchestrator.ledger.member_sets`), so intake resolves keys without
reading the served model's files. Each request stores the keys of its ids (``requests.sample_keys``, JSON aligned
with the sorted ``sample_ids``; NULL when the model's manifest has no keys).

    requests = resolve_request_keys(requests, intake_keys(ledger, current))   # ids from keys, keys for ids
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from dataclasses import replace
from typing import Any

from trainables.errors import UserError

TABLE = """CREATE TABLE IF NOT EXISTS member_keys (
    version INTEGER PRIMARY KEY REFERENCES model_versions(version),
    keys TEXT NOT NULL,
    sha256 TEXT NOT NULL
)"""


def record_member_keys(c: sqlite3.Connection, version: int, keys: dict[int, str] | None) -> None:
    """Store a version's member keys (inside the registration transaction); nothing for a manifest without keys."""
    if keys is None:
        return
    text = json.dumps(sorted([int(i), str(k)] for i, k in keys.items()))
    c.execute("INSERT OR REPLACE INTO member_keys (version, keys, sha256) VALUES (?, ?, ?)",
              (version, text, hashlib.sha256(text.encode()).hexdigest()))


def recorded_member_keys(c: sqlite3.Connection, version: int) -> dict[int, str] | None:
    """Member id -> key of ``version`` or its nearest ancestor (unlearning keeps members and keys); None if none."""
    v = version
    while v is not None:
        row = c.execute("SELECT keys, sha256 FROM member_keys WHERE version = ?", (v,)).fetchone()
        if row is not None:
            if hashlib.sha256(row[0].encode()).hexdigest() != row[1]:
                raise UserError(f"the ledger's member keys of model version {v} do not match their sha256; the "
                                f"ledger was edited by hand: restore it from a backup")
            return {int(i): str(k) for i, k in json.loads(row[0])}
        parent = c.execute("SELECT parent FROM model_versions WHERE version = ?", (v,)).fetchone()
        v = parent[0] if parent else None
    return None


def manifest_member_keys(path) -> dict[int, str] | None:
    """Member id -> key from a checkpoint's split manifest (None: a manifest from before keys)."""
    from trainables.checkpoint import MANIFEST
    from trainables.data.splits import Splits

    splits = Splits.load(path / MANIFEST)
    return None if splits.keys is None else {int(i): splits.keys[int(i)] for i in splits["member"]}


def intake_keys(ledger, row: dict[str, Any]) -> dict[int, str] | None:
    """The keys requests are resolved against: the ledger's copy, else (a version registered before keys were
    kept) its verified checkpoint's manifest."""
    from pathlib import Path

    from orchestrator.ledger.versions import verify_model

    keys = recorded_member_keys(ledger.conn, row["version"])
    if keys is None and Path(row["uri"]).is_dir():
        verify_model(row)
        keys = manifest_member_keys(Path(row["uri"]))
    return keys


def resolve_request_keys(requests: list, keys: dict[int, str] | None) -> list:
    """Requests named by key get their sample ids; requests named by id get their keys (when the model has keys).
    UserError, nothing added, for keys that are not members, repeated, or that the model cannot resolve."""
    from orchestrator.ledger.intake import shown_ids

    by_key = None if keys is None else {k: i for i, k in keys.items()}
    out = []
    for r in requests:
        if r.sample_ids:
            named = None if keys is None else tuple(keys.get(i) for i in r.sample_ids)
            out.append(replace(r, sample_keys=None if named is None or None in named else named))
            continue
        if by_key is None:
            raise UserError("the current model's split manifest has no record keys (it was made before keys "
                            "existed); name sample ids with --sample-ids; nothing was added")
        repeated = sorted({k for k in r.sample_keys if r.sample_keys.count(k) > 1})
        if repeated:
            raise UserError(f"request of {r.subject_id}: repeated keys {shown_ids(repeated)}; nothing was added")
        unknown = [k for k in r.sample_keys if k not in by_key]
        if unknown:
            raise UserError(f"{len(unknown)} key(s) not members of the current model's training set, so there is "
                            f"nothing to unlearn: {shown_ids(unknown)}; nothing was added")
        pairs = sorted((by_key[k], k) for k in r.sample_keys)
        out.append(replace(r, sample_ids=tuple(i for i, _ in pairs), sample_keys=tuple(k for _, k in pairs)))
    return out


def add_record_keys(c: sqlite3.Connection) -> None:
    """Migration: ``member_keys`` (back-filled from readable checkpoints) and ``requests.sample_keys``. Idempotent,
    so it may run at any position among other migrations."""
    from orchestrator.ledger.member_sets import verified_manifest

    c.execute(TABLE)
    if "sample_keys" not in {r[1] for r in c.execute("PRAGMA table_info(requests)")}:
        c.execute("ALTER TABLE requests ADD COLUMN sample_keys TEXT")
    rows = c.execute("SELECT version, uri, sha256 FROM model_versions WHERE version NOT IN "
                     "(SELECT version FROM member_keys) ORDER BY version").fetchall()
    for version, uri, sha256 in rows:
        root = verified_manifest(uri, sha256)
        try:
            keys = None if root is None else manifest_member_keys(root)
        except UserError:  # unreadable: requests on it are named by id, as before
            keys = None
        record_member_keys(c, version, keys)
