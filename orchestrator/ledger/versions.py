"""Model versions in the ledger and their checkpoints: integrity, forgotten ids, membership, registration.

A version is identified by the sha256 of its checkpoint's ``meta.json``, which itself lists the sha256 of every
file (weights, split manifest), so one digest pins the whole directory. Loading a version re-checks both: the files
against ``meta.json`` (:func:`trainables.checkpoint.verify_checkpoint`) and ``meta.json`` against the ledger.

    version = register_checkpoint(ledger, "runs/pretrained")      # the first one becomes current
    meta = verify_model(ledger.current_model())                   # UserError if tampered or missing
    members = member_ids(ledger.current_model())                  # sample ids the model was trained on
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from orchestrator.ledger.db import Ledger
from trainables.errors import UserError


def checkpoint_digest(path: str | Path) -> tuple[str, dict[str, Any]]:
    """Verify every file of the checkpoint; return (sha256 of meta.json, meta)."""
    from trainables.checkpoint import META, sha256_file, verify_checkpoint

    p = Path(path)
    if not p.is_dir():
        raise UserError(f"checkpoint not found: {p}")
    meta = verify_checkpoint(p)
    return sha256_file(p / META), meta


def forgotten_ids(meta: dict[str, Any]) -> set[int]:
    """Ids forgotten in the checkpoint's lineage (``meta["forgotten_ids"]``; none for a pretrained model)."""
    ids = meta.get("forgotten_ids") or []
    if not isinstance(ids, list) or not all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in ids):
        raise UserError("meta.json: forgotten_ids must be a list of sample ids (non-negative integers)")
    return set(ids)


def verify_model(row: dict[str, Any]) -> dict[str, Any]:
    """Refuse a registered version whose checkpoint is missing, corrupt, or changed since registration."""
    digest, meta = checkpoint_digest(row["uri"])
    if digest != row["sha256"]:
        raise UserError(f"model version {row['version']}: checkpoint {row['uri']} was modified after registration "
                        f"(meta.json sha256 {digest[:12]}..., ledger {row['sha256'][:12]}...); refusing it")
    if forgotten_ids(meta) != set(row["forgotten_ids"]):
        raise UserError(f"model version {row['version']}: checkpoint {row['uri']} forgets other ids than the "
                        f"ledger records; refusing it")
    return meta


def member_ids(row: dict[str, Any]) -> np.ndarray:
    """The member sample ids of a verified version (its split manifest)."""
    from trainables.checkpoint import MANIFEST
    from trainables.data.splits import Splits

    verify_model(row)
    path = Path(row["uri"]) / MANIFEST
    if not path.is_file():
        raise UserError(f"model version {row['version']}: {path} is missing; membership cannot be checked")
    return Splits.load(path)["member"]


def intake_members(ledger: Ledger, row: dict[str, Any]) -> np.ndarray:
    """The member ids requests are checked against: the copy the ledger recorded at registration (no checkpoint
    file is read, so a missing or damaged served model never blocks intake); a version registered before the
    ledger kept member sets falls back to its verified checkpoint."""
    from orchestrator.ledger.member_sets import recorded_members

    members = recorded_members(ledger.conn, row["version"])
    return member_ids(row) if members is None else members


def require_current(ledger: Ledger) -> dict[str, Any]:
    row = ledger.current_model()
    if row is None:
        raise UserError(f"no current model in {ledger.path}: register the served model first with "
                        f"`unlearn models register CHECKPOINT`")
    return row


def read_registration(path: str | Path) -> tuple[Path, str, dict[str, Any], set[int], set[int]]:
    """Everything registration reads from a checkpoint, checked: (resolved path, meta.json sha256, meta,
    forgotten ids, member ids). Called before the ledger is touched, so a bad checkpoint changes nothing."""
    from trainables.checkpoint import MANIFEST
    from trainables.data.splits import Splits

    p = Path(path).resolve()
    digest, meta = checkpoint_digest(p)
    if not (p / MANIFEST).is_file():
        raise UserError(f"{p} has no {MANIFEST}: the ledger needs the split manifest to check deletion requests")
    return p, digest, meta, forgotten_ids(meta), set(Splits.load(p / MANIFEST)["member"].tolist())


def register_checkpoint(ledger: Ledger, path: str | Path, *, promote: bool = False,
                        lease=None, force_reason: str | None = None) -> tuple[int, bool]:
    """Record a checkpoint as a model version; returns (version, newly_added).

    The first version is promoted automatically. Promoting a replacement later (``promote=True``, under the
    scheduler ``lease``) bypasses the verification gate: it needs ``force_reason`` (stored, audited, and shown as
    "promoted unverified"), and it must forget every verified request and know every pending id as a member.
    Registering the same checkpoint twice returns the existing version; asking to promote an already registered
    version that is not current is refused (``models rollback`` serves an ancestor again).
    """
    from orchestrator.ledger.member_sets import record_members
    from orchestrator.ledger.record_keys import manifest_member_keys, record_member_keys

    p, digest, meta, forgotten, members = read_registration(path)
    keys = manifest_member_keys(p)
    same = ledger.conn.execute("SELECT version, is_current FROM model_versions WHERE sha256 = ?",
                               (digest,)).fetchone()
    if same is not None:
        if promote and not same[1]:
            raise UserError(f"{p} is already registered as version {same[0]}, which is not current; registering it "
                            f"again promotes nothing (an ancestor is served again with `unlearn models rollback "
                            f"{same[0]}`)")
        return same[0], False
    if promote and not force_reason and ledger.current_model() is not None:
        raise UserError("promoting an outside checkpoint needs a reason (force_reason): it bypasses the gate")
    with ledger.transaction() as c:
        if lease is not None:
            lease.check(c)
        current = c.execute("SELECT version FROM model_versions WHERE is_current = 1").fetchone()
        forced = current is not None and promote
        if forced:
            _check_replacement(c, forgotten, members)
        version = Ledger.insert_model(c, uri=str(p), sha256=digest, forgotten_ids=forgotten,
                                      metrics=meta.get("metrics") or {}, parent=None, batch_id=None,
                                      promote=promote or current is None,
                                      evidence="unverified" if forced else None,
                                      evidence_note=force_reason if forced else None)
        record_members(c, version, members)  # intake checks against this copy, not the checkpoint's files
        record_member_keys(c, version, keys)  # and resolves record keys with this one
        if forced:
            Ledger.event(c, "promoted_unverified", version=version, uri=str(p), reason=force_reason,
                         replaced=current[0], claimed_forgotten=len(forgotten))
    return version, True


def _check_replacement(c, forgotten: set[int], members: set[int]) -> None:
    import json

    from orchestrator.ledger.db import UNFINISHED_BATCH_STATES

    if c.execute(f"SELECT 1 FROM batches WHERE state IN ({','.join('?' * len(UNFINISHED_BATCH_STATES))})",
                 UNFINISHED_BATCH_STATES).fetchone():
        raise UserError("a batch is in progress; finish it with `unlearn schedule run` before promoting another "
                        "model")
    rows = c.execute("SELECT status, sample_ids FROM requests WHERE status != 'failed'").fetchall()
    verified = {i for r in rows if r[0] == "verified" for i in json.loads(r[1])}
    open_ids = {i for r in rows if r[0] != "verified" for i in json.loads(r[1])}
    if missing := sorted(verified - forgotten):
        raise UserError(f"this checkpoint does not forget {len(missing)} ids of verified deletion requests "
                        f"(e.g. {missing[:5]}); promoting it would bring deleted data back")
    if unknown := sorted(open_ids - members):
        raise UserError(f"{len(unknown)} ids of open deletion requests are not members of this checkpoint "
                        f"(e.g. {unknown[:5]})")
