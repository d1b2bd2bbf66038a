"""Every durable state change of a deletion batch, each one SQLite transaction that first checks the lease.

A transition is idempotent: called again after a crash it sees the state already reached and returns, so the
scheduler can simply re-run from whatever state the ledger holds.

    batch = create_batch(ledger, lease, config={...})          # pending requests -> batched
    record_trained(ledger, lease, batch_id, uri, sha256)         # batched -> trained, requests -> applied
    record_verified(ledger, lease, batch_id, metrics, evidence_sha256=sha)   # trained -> verified (or no-signal)
    version = promote_batch(ledger, lease, batch_id)             # new current version + requests verified, atomic
    fail_batch(ledger, lease, batch_id, reason, max_failures=3)  # requests back to pending (retry + 1) or failed
    hold_batch(ledger, lease, batch_id, reason, escalate=False)  # no-signal: requests pending, no retry used
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from typing import Any

from orchestrator.ledger.db import UNFINISHED_BATCH_STATES, Ledger, ids_json, utc_now
from orchestrator.ledger.lease import Lease
from trainables.errors import UserError


def run_name_for(ledger_id: str, batch_id: int) -> str:
    """Deterministic per batch (a re-run resumes the same Ray Train run) and unique per ledger (a new ledger never
    picks up another ledger's stale run in a shared storage path)."""
    return f"unlearn-{ledger_id[:8]}-batch-{batch_id:06d}"


def _batch(c: sqlite3.Connection, batch_id: int) -> sqlite3.Row:
    row = c.execute("SELECT * FROM batches WHERE batch_id = ?", (batch_id,)).fetchone()
    if row is None:
        raise UserError(f"no batch {batch_id} in the ledger")
    return row


def _set_requests(c: sqlite3.Connection, batch_id: int, status: str, from_states: tuple[str, ...]) -> None:
    c.execute(f"UPDATE requests SET status = ?, batch_id = ?, updated_at = ? WHERE status IN "
              f"({','.join('?' * len(from_states))}) AND request_id IN "
              f"(SELECT request_id FROM batch_requests WHERE batch_id = ?)",
              (status, batch_id, utc_now(), *from_states, batch_id))


def create_batch(ledger: Ledger, lease: Lease, *, config: dict[str, Any]) -> dict[str, Any] | None:
    """Move every pending request into one new batch against the current model; None if nothing is pending.

    The batch unlearns the union of the requests' ids minus those the current model already forgot (so no id is
    applied twice). If nothing new is left, the requests are verified at once by the current model (state done).
    """
    with ledger.transaction() as c:
        lease.check(c)
        current = c.execute("SELECT version, forgotten_ids FROM model_versions WHERE is_current = 1").fetchone()
        if current is None:
            raise UserError("no current model version: register one with `unlearn models register CHECKPOINT`")
        pending = c.execute("SELECT request_id, sample_ids FROM requests WHERE status = 'pending' "
                            "ORDER BY seq").fetchall()
        if not pending:
            return None
        forgotten = set(json.loads(current["forgotten_ids"]))
        new_ids = sorted({i for r in pending for i in json.loads(r["sample_ids"])} - forgotten)
        batch_id = c.execute("SELECT COALESCE(MAX(batch_id), 0) + 1 FROM batches").fetchone()[0]
        now = utc_now()
        state = "batched" if new_ids else "done"
        c.execute("INSERT INTO batches (batch_id, state, run_name, parent_version, forget_ids, config, created_at, "
                  "updated_at, finished_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                  (batch_id, state, run_name_for(ledger.ledger_id, batch_id), current["version"], ids_json(new_ids),
                   json.dumps(config), now, now, None if new_ids else now))
        c.executemany("INSERT INTO batch_requests VALUES (?, ?)", [(batch_id, r["request_id"]) for r in pending])
        _set_requests(c, batch_id, "batched" if new_ids else "verified", ("pending",))
        Ledger.event(c, "batch_created", batch_id=batch_id, version=current["version"], requests=len(pending),
                     new_ids=len(new_ids))
    return ledger.get_batch(batch_id)


def record_trained(ledger: Ledger, lease: Lease, batch_id: int, uri: str, sha256: str) -> None:
    """The candidate checkpoint exists: batched -> trained, requests -> applied."""
    with ledger.transaction() as c:
        lease.check(c)
        batch = _batch(c, batch_id)
        if batch["state"] != "batched":
            return  # already recorded by an earlier attempt
        now = utc_now()
        c.execute("UPDATE batches SET state = 'trained', candidate_uri = ?, candidate_sha256 = ?, trained_at = ?, "
                  "updated_at = ? WHERE batch_id = ?", (uri, sha256, now, now, batch_id))
        _set_requests(c, batch_id, "applied", ("batched",))
        Ledger.event(c, "batch_trained", batch_id=batch_id, uri=uri)


VERDICT_COLUMNS = ("verdict", "test", "statistic", "p_value", "alpha", "parent_p_value", "n_forget", "n_nonmember",
                   "reference_k", "attack")


def _record_verdict(c: sqlite3.Connection, batch_id: int, metrics: dict[str, Any] | None,
                    evidence_sha256: str | None) -> None:
    """The gate's verdict (``metrics["verification"]``) into the batch row's own columns."""
    record = (metrics or {}).get("verification") or {}
    values = [record.get(k) for k in VERDICT_COLUMNS]
    c.execute(f"UPDATE batches SET {', '.join(f'{k} = ?' for k in VERDICT_COLUMNS)}, evidence_sha256 = ? "
              f"WHERE batch_id = ?", (*values, evidence_sha256, batch_id))


def record_verified(ledger: Ledger, lease: Lease, batch_id: int, metrics: dict[str, Any], *,
                    evidence_sha256: str | None = None) -> None:
    """The gate let the candidate through (verdict verified, or no-signal under ``--on-no-signal promote``):
    trained -> verified, metrics and verdict kept."""
    with ledger.transaction() as c:
        lease.check(c)
        if _batch(c, batch_id)["state"] != "trained":
            return
        now = utc_now()
        c.execute("UPDATE batches SET state = 'verified', metrics = ?, verified_at = ?, updated_at = ? "
                  "WHERE batch_id = ?", (json.dumps(metrics), now, now, batch_id))
        _record_verdict(c, batch_id, metrics, evidence_sha256)
        Ledger.event(c, "batch_verified", batch_id=batch_id, metrics=metrics)


def promote_batch(ledger: Ledger, lease: Lease, batch_id: int,
                  before_commit: Callable[[], None] | None = None) -> int:
    """Register the verified candidate as the new current version and mark its requests verified, atomically.

    ``before_commit`` runs after the promotion statements and before the commit (the crash-injection point
    "after promotion, before marking requests": a crash there rolls the whole transaction back).
    """
    with ledger.transaction() as c:
        lease.check(c)
        batch = _batch(c, batch_id)
        if batch["state"] == "done":
            return c.execute("SELECT version FROM model_versions WHERE batch_id = ?", (batch_id,)).fetchone()[0]
        if batch["state"] != "verified":
            raise RuntimeError(f"batch {batch_id} is {batch['state']}, not verified: refusing to promote")
        current = c.execute("SELECT version, forgotten_ids FROM model_versions WHERE is_current = 1").fetchone()
        if current["version"] != batch["parent_version"]:
            raise UserError(f"batch {batch_id} was unlearned from version {batch['parent_version']} but the current "
                            f"version is {current['version']} (rolled back or replaced meanwhile); not promoting")
        check_candidate(batch["candidate_uri"], batch["candidate_sha256"])  # under the write lock: no gap after it
        forgotten = set(json.loads(current["forgotten_ids"])) | set(json.loads(batch["forget_ids"]))
        evidence = "no-signal" if batch["verdict"] == "no-signal" else "verified"
        note = NO_SIGNAL_NOTE if evidence == "no-signal" else None
        version = Ledger.insert_model(c, uri=batch["candidate_uri"], sha256=batch["candidate_sha256"],
                                      forgotten_ids=forgotten, metrics=json.loads(batch["metrics"] or "{}"),
                                      parent=batch["parent_version"], batch_id=batch_id, promote=True,
                                      evidence=evidence, evidence_note=note)
        if before_commit is not None:
            before_commit()
        _set_requests(c, batch_id, "verified", ("applied",))
        now = utc_now()
        c.execute("UPDATE requests SET reason = NULL WHERE batch_id = ? AND status = 'verified'", (batch_id,))
        c.execute("UPDATE batches SET state = 'done', finished_at = ?, updated_at = ? WHERE batch_id = ?",
                  (now, now, batch_id))
    return version


NO_SIGNAL_NOTE = "not detectable before or after (no-signal: the parent showed no membership signal on this batch)"


class CandidateChanged(UserError):
    """The candidate checkpoint on disk is not the one that was verified."""


def check_candidate(uri: str, sha256: str) -> None:
    """Refuse a candidate whose files or ``meta.json`` changed since it was recorded and verified."""
    from orchestrator.ledger.versions import checkpoint_digest

    try:
        digest, _ = checkpoint_digest(uri)
    except UserError as exc:
        raise CandidateChanged(f"candidate {uri} is no longer intact: {exc}") from None
    if digest != sha256:
        raise CandidateChanged(f"candidate {uri} was modified after verification (meta.json sha256 "
                               f"{digest[:12]}..., verified {sha256[:12]}...); refusing to promote it")


_MEMBERS = "request_id IN (SELECT request_id FROM batch_requests WHERE batch_id = ?)"


def _close_failed(c, lease: Lease, batch_id: int, reason: str, metrics: dict | None,
                  evidence_sha256: str | None) -> str | None:
    """Inside a transaction: batch -> failed with its reason (and the gate's verdict when ``metrics`` holds one);
    returns the time stamp, or None when the batch is already finished (nothing changed)."""
    lease.check(c)
    if _batch(c, batch_id)["state"] not in UNFINISHED_BATCH_STATES:
        return None
    now = utc_now()
    c.execute("UPDATE batches SET state = 'failed', reason = ?, metrics = COALESCE(?, metrics), finished_at = ?, "
              "updated_at = ? WHERE batch_id = ?",
              (reason, json.dumps(metrics) if metrics is not None else None, now, now, batch_id))
    if metrics and "verification" in metrics:
        _record_verdict(c, batch_id, metrics, evidence_sha256)
    return now


def fail_batch(ledger: Ledger, lease: Lease, batch_id: int, reason: str, *, metrics: dict | None = None,
               max_failures: int = 3, count_retry: bool = True, evidence_sha256: str | None = None) -> list[str]:
    """No promotion: batch -> failed; its requests back to pending with retry_count + 1, or ``failed``
    (escalated) once retry_count reaches ``max_failures``. Returns the escalated request ids.

    ``count_retry=False`` (a configuration error or an infrastructure fault, not a verification failure): the
    requests go back to pending with their retry count unchanged."""
    with ledger.transaction() as c:
        now = _close_failed(c, lease, batch_id, reason, metrics, evidence_sha256)
        if now is None:
            return []
        members = _MEMBERS
        step = 1 if count_retry else 0
        c.execute(f"UPDATE requests SET retry_count = retry_count + ?, reason = ?, batch_id = NULL, updated_at = ?, "
                  f"status = CASE WHEN ? AND retry_count + 1 >= ? THEN 'failed' ELSE 'pending' END "
                  f"WHERE status IN ('batched', 'applied') AND {members}",
                  (step, reason, now, step, max_failures, batch_id))
        escalated = [r[0] for r in c.execute(
            f"SELECT request_id FROM requests WHERE status = 'failed' AND retry_count >= ? AND {members} "
            f"ORDER BY seq", (max_failures, batch_id))] if count_retry else []
        Ledger.event(c, "batch_failed", batch_id=batch_id, reason=reason, escalated=escalated,
                     counted=count_retry)
    return escalated


def hold_batch(ledger: Ledger, lease: Lease, batch_id: int, reason: str, *, metrics: dict,
               evidence_sha256: str | None = None, escalate: bool = False) -> list[str]:
    """Verdict no-signal under the ``hold`` policy: batch -> failed (verdict no-signal), its requests back to
    pending *without* using a retry, to be merged with later requests into a larger batch; with ``escalate``
    (the hold's age or size limit is reached) they become ``failed`` for a human instead. Returns escalated ids."""
    with ledger.transaction() as c:
        now = _close_failed(c, lease, batch_id, reason, metrics, evidence_sha256)
        if now is None:
            return []
        members = _MEMBERS
        rows = [r[0] for r in c.execute(f"SELECT request_id FROM requests WHERE status IN ('batched', 'applied') "
                                        f"AND {members} ORDER BY seq", (batch_id,))]
        c.execute(f"UPDATE requests SET status = ?, reason = ?, batch_id = NULL, updated_at = ? "
                  f"WHERE status IN ('batched', 'applied') AND {members}",
                  ("failed" if escalate else "pending", reason, now, batch_id))
        Ledger.event(c, "batch_no_signal", batch_id=batch_id, reason=reason, held=not escalate,
                     escalated=rows if escalate else [])
    return rows if escalate else []


def rollback(ledger: Ledger, lease: Lease, version: int) -> dict[str, Any]:
    """Make ``version`` (an ancestor of the current one) current again. Versions after it are retired, their
    batches become rolled_back, and every verified request the target does not forget goes back to pending."""
    with ledger.transaction() as c:
        lease.check(c)
        open_batch = c.execute(f"SELECT batch_id, state FROM batches WHERE state IN "
                               f"({','.join('?' * len(UNFINISHED_BATCH_STATES))})", UNFINISHED_BATCH_STATES).fetchone()
        if open_batch is not None:
            raise UserError(f"batch {open_batch[0]} is in progress ({open_batch[1]}); finish it with `unlearn "
                            f"schedule run` before rolling back")
        current = c.execute("SELECT * FROM model_versions WHERE is_current = 1").fetchone()
        target = c.execute("SELECT * FROM model_versions WHERE version = ?", (version,)).fetchone()
        if target is None:
            raise UserError(f"no model version {version}; see `unlearn models list`")
        retired, v = [], current["version"]
        while v is not None and v != version:
            retired.append(v)
            v = c.execute("SELECT parent FROM model_versions WHERE version = ?", (v,)).fetchone()[0]
        if v is None or not retired:
            raise UserError(f"version {version} is not an earlier version in the current model's lineage "
                            f"(current: {current['version']}); only a rollback to an ancestor keeps the ledger "
                            f"consistent")
        now, why = utc_now(), f"rolled back to version {version}"
        marks = ",".join("?" * len(retired))
        c.execute("UPDATE model_versions SET is_current = 0 WHERE is_current = 1")
        c.execute(f"UPDATE model_versions SET retired_at = ?, retired_reason = ? WHERE version IN ({marks})",
                  (now, why, *retired))
        c.execute("UPDATE model_versions SET is_current = 1, promoted_at = ? WHERE version = ?", (now, version))
        c.execute(f"UPDATE batches SET state = 'rolled_back', updated_at = ? WHERE batch_id IN "
                  f"(SELECT batch_id FROM model_versions WHERE version IN ({marks}))", (now, *retired))
        kept = set(json.loads(target["forgotten_ids"]))
        requeued = [r["request_id"] for r in c.execute("SELECT request_id, sample_ids FROM requests WHERE status = "
                                                       "'verified' ORDER BY seq")
                    if not set(json.loads(r["sample_ids"])) <= kept]
        for rid in requeued:
            c.execute("UPDATE requests SET status = 'pending', batch_id = NULL, reason = ?, updated_at = ? "
                      "WHERE request_id = ?", (f"model {why}", now, rid))
        Ledger.event(c, "rollback", version=version, retired=retired, requeued=requeued)
    return {"version": version, "retired": retired, "requeued": requeued}
