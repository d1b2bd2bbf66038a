"""The deletion-request ledger: an embedded SQLite database of requests, batches and model versions.

Only ids are stored (sample ids, request ids, checkpoint paths and digests), never image data. SQLite runs in WAL
mode with ``synchronous=FULL`` and a busy timeout; every write is one explicit ``BEGIN IMMEDIATE`` transaction, so
concurrent writers queue instead of failing and a killed process leaves the last committed state.

    requests        pending -> batched -> applied -> verified   (or back to pending with retry_count + 1 when
                    its batch fails, and ``failed`` once retry_count reaches the escalation limit)
    batches         batched -> trained -> verified -> done      (or failed, or rolled_back)
    model_versions  version, parent, batch_id, uri, sha256, forgotten_ids, metrics; exactly one is_current
    locks           the scheduler lease (see :mod:`orchestrator.ledger.lease`)
    certificates    content sha256 and facts of every issued request certificate (:mod:`orchestrator.ledger.certificate`)
    reference_sets  per model version: K reference models (uri, sha256 of their manifest, k, seed) for LiRA
    events          an append-only audit trail of every transition, each with its actor (``user@host``)

The path comes from ``--ledger PATH``, else ``$UNLEARN_LEDGER``, else ``runs/ledger/ledger.sqlite``. Usage::

    ledger = Ledger.open("runs/ledger/ledger.sqlite")
    ledger.add_requests([NewRequest("alice", (3, 17))])
    ledger.list_requests(status=["pending"])

Schema changes go through :data:`MIGRATIONS` (``PRAGMA user_version`` = schema version); see docs/ledger.md.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.ledger.member_sets import add_member_sets
from orchestrator.ledger.record_keys import add_record_keys
from trainables.errors import UserError

ENV_LEDGER = "UNLEARN_LEDGER"
DEFAULT_LEDGER = Path("runs") / "ledger" / "ledger.sqlite"
REQUEST_STATES = ("pending", "batched", "applied", "verified", "failed")
BATCH_STATES = ("batched", "trained", "verified", "done", "failed", "rolled_back")
UNFINISHED_BATCH_STATES = ("batched", "trained", "verified")

_SCHEMA_V1 = f"""
CREATE TABLE ledger_info (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE model_versions (
    version INTEGER PRIMARY KEY,
    parent INTEGER REFERENCES model_versions(version),
    batch_id INTEGER UNIQUE REFERENCES batches(batch_id),
    uri TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    forgotten_ids TEXT NOT NULL,
    metrics TEXT NOT NULL DEFAULT '{{}}',
    registered_at TEXT NOT NULL,
    promoted_at TEXT,
    is_current INTEGER NOT NULL DEFAULT 0 CHECK (is_current IN (0, 1)),
    retired_at TEXT,
    retired_reason TEXT
);
CREATE UNIQUE INDEX one_current_model ON model_versions(is_current) WHERE is_current = 1;
CREATE TABLE batches (
    batch_id INTEGER PRIMARY KEY,
    state TEXT NOT NULL CHECK (state IN {BATCH_STATES}),
    run_name TEXT NOT NULL UNIQUE,
    parent_version INTEGER NOT NULL REFERENCES model_versions(version),
    forget_ids TEXT NOT NULL,
    config TEXT NOT NULL,
    candidate_uri TEXT,
    candidate_sha256 TEXT,
    metrics TEXT,
    reason TEXT,
    created_at TEXT NOT NULL,
    trained_at TEXT,
    verified_at TEXT,
    finished_at TEXT,
    updated_at TEXT NOT NULL
);
CREATE TABLE requests (
    seq INTEGER PRIMARY KEY,
    request_id TEXT NOT NULL UNIQUE,
    subject_id TEXT NOT NULL,
    sample_ids TEXT NOT NULL,
    received_at TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN {REQUEST_STATES}),
    batch_id INTEGER REFERENCES batches(batch_id),
    retry_count INTEGER NOT NULL DEFAULT 0,
    reason TEXT,
    updated_at TEXT NOT NULL
);
CREATE INDEX requests_by_status ON requests(status, seq);
CREATE TABLE batch_requests (
    batch_id INTEGER NOT NULL REFERENCES batches(batch_id),
    request_id TEXT NOT NULL REFERENCES requests(request_id),
    PRIMARY KEY (batch_id, request_id)
);
CREATE TABLE locks (
    name TEXT PRIMARY KEY,
    owner TEXT,
    host TEXT,
    pid INTEGER,
    generation INTEGER NOT NULL DEFAULT 0,
    acquired_at REAL,
    heartbeat_at REAL,
    timeout_s REAL
);
CREATE TABLE events (
    event_id INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    kind TEXT NOT NULL,
    batch_id INTEGER,
    version INTEGER,
    detail TEXT NOT NULL DEFAULT '{{}}'
);
"""


def _create_v1(conn: sqlite3.Connection) -> None:
    for statement in _SCHEMA_V1.split(";"):
        if statement.strip():
            conn.execute(statement)
    conn.execute("INSERT INTO ledger_info VALUES ('ledger_id', ?), ('created_at', ?)",
                 (uuid.uuid4().hex, utc_now()))


def _add_certificates(conn: sqlite3.Connection) -> None:
    """Issued per-request certificates (``unlearn requests certificate``): the sha256 of each one's canonical facts,
    and the facts themselves, so ``--verify`` can name what an edited copy changed. Idempotent (IF NOT EXISTS), so
    it is safe whatever number it gets among other migrations."""
    conn.execute("""CREATE TABLE IF NOT EXISTS certificates (
        certificate_id INTEGER PRIMARY KEY,
        request_id TEXT NOT NULL REFERENCES requests(request_id),
        batch_id INTEGER REFERENCES batches(batch_id),
        version INTEGER REFERENCES model_versions(version),
        content_sha256 TEXT NOT NULL UNIQUE,
        facts TEXT NOT NULL,
        format TEXT NOT NULL,
        issued_at TEXT NOT NULL,
        out TEXT
    )""")
    conn.execute("CREATE INDEX IF NOT EXISTS certificates_by_request ON certificates(request_id)")


def _add_event_actor(conn: sqlite3.Connection) -> None:
    """events.actor: who made each change (``user@host``). Checks the column first, so the migration is a no-op
    wherever it already ran, in whatever order it is merged with other migrations."""
    if "actor" not in {r[1] for r in conn.execute("PRAGMA table_info(events)")}:
        conn.execute("ALTER TABLE events ADD COLUMN actor TEXT")


def _add_reference_sets(conn: sqlite3.Connection) -> None:
    """Reference sets of model versions (the LiRA references, :mod:`orchestrator.ledger.references`). Idempotent, so
    it may run at any position of :data:`MIGRATIONS`."""
    conn.execute("""CREATE TABLE IF NOT EXISTS reference_sets (
        set_id INTEGER PRIMARY KEY,
        version INTEGER NOT NULL REFERENCES model_versions(version),
        uri TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        k INTEGER NOT NULL CHECK (k >= 2),
        seed INTEGER NOT NULL,
        created_at TEXT NOT NULL,
        detail TEXT NOT NULL DEFAULT '{}'
    )""")
    conn.execute("CREATE INDEX IF NOT EXISTS reference_sets_by_version ON reference_sets(version, set_id)")


# The gate's evidence (schema 6): the verdict of a batch's membership test and the evidence file's digest; how
# each model version was promoted. Each column is added only if missing, so this migration may run in any order
# with others (and twice) without harm.
GATE_COLUMNS: dict[str, tuple[tuple[str, str], ...]] = {
    "batches": (("verdict", "TEXT"), ("test", "TEXT"), ("statistic", "REAL"), ("p_value", "REAL"),
                ("alpha", "REAL"), ("parent_p_value", "REAL"), ("n_forget", "INTEGER"), ("n_nonmember", "INTEGER"),
                ("reference_k", "INTEGER"), ("attack", "TEXT"), ("evidence_sha256", "TEXT")),
    # evidence: verified | no-signal (promoted, not detectable before or after) | unverified (forced) | NULL
    "model_versions": (("evidence", "TEXT"), ("evidence_note", "TEXT")),
}


def _add_gate_columns(conn: sqlite3.Connection) -> None:
    for table, columns in GATE_COLUMNS.items():
        have = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
        for name, kind in columns:
            if name not in have:
                conn.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")


# version -> function bringing the schema from version-1 to version, run inside one transaction. Keep each one
# idempotent (check before ALTER), so migrations written on parallel branches can be renumbered when merged.
MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {1: _create_v1, 2: _add_certificates,
                                                                 3: _add_event_actor, 4: add_member_sets,
                                                                 5: _add_reference_sets, 6: _add_gate_columns,
                                                                 7: add_record_keys}



SCHEMA_VERSION = max(MIGRATIONS)


ENV_ACTOR = "UNLEARN_ACTOR"  # who the events name; the cron wrapper passes the submitting user@host to Ray jobs


def current_actor() -> str:
    """``$UNLEARN_ACTOR``, else ``user@host`` of this process (uid when the user has no name)."""
    import getpass
    import socket

    if os.environ.get(ENV_ACTOR):
        return os.environ[ENV_ACTOR][:256]
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry and no LOGNAME/USER (some containers)
        user = f"uid{os.getuid()}"
    return f"{user}@{socket.gethostname()}"


def utc_now(offset_s: float = 0.0) -> str:
    """ISO-8601 UTC with microseconds: sorts as text, readable in the sqlite3 shell."""
    t = time.time() + offset_s
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e6):06d}Z"


def parse_time(text: str) -> float:
    """Seconds since the epoch of a :func:`utc_now` string (or any ISO-8601 time with a zone)."""
    from datetime import datetime

    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def resolve_ledger_path(arg: str | os.PathLike | None) -> Path:
    """``--ledger`` if given, else ``$UNLEARN_LEDGER``, else :data:`DEFAULT_LEDGER`."""
    return Path(arg or os.environ.get(ENV_LEDGER) or DEFAULT_LEDGER).expanduser()


def add_ledger_arg(p) -> None:
    p.add_argument("--ledger", metavar="PATH",
                   help=f"ledger database (default: ${ENV_LEDGER}, else {DEFAULT_LEDGER})")


def _create_private(path: Path) -> None:
    """A new ledger is readable by its owner only: directory 0700 (if created here), database 0600. SQLite gives its
    -wal and -shm files the database file's mode."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:  # created by a concurrent process meanwhile: fine, it is the same ledger
        pass


def ids_json(ids) -> str:
    return json.dumps(sorted({int(i) for i in ids}))


@dataclass(frozen=True)
class NewRequest:
    """A deletion request to record: who asked, which sample ids. ``request_id`` makes a re-import idempotent."""

    subject_id: str
    sample_ids: tuple[int, ...]
    request_id: str | None = None
    received_at: str | None = None
    sample_keys: tuple[str, ...] | None = None  # record keys aligned with sample_ids (or, before resolving, asked)


def _row(row: sqlite3.Row | None) -> dict[str, Any] | None:
    if row is None:
        return None
    out = dict(row)
    for key in ("sample_ids", "sample_keys", "forget_ids", "forgotten_ids", "metrics", "config", "detail"):
        if isinstance(out.get(key), str):
            out[key] = json.loads(out[key])
    return out


class Ledger:
    """One connection to the ledger database (one per thread; open another for a second thread)."""

    def __init__(self, path: str | os.PathLike, *, create: bool = False, busy_timeout_s: float = 60.0):
        self.path = Path(path)
        if self.path.is_dir():
            raise UserError(f"--ledger {self.path} is a directory; name the database file, e.g. "
                            f"{self.path / 'ledger.sqlite'}")
        if not self.path.exists():
            if not create:
                raise UserError(f"no ledger at {self.path}: register a model first with "
                                f"`unlearn models register CHECKPOINT --ledger {self.path}`")
            from orchestrator.outputs import check_writable_file

            check_writable_file(self.path, "--ledger")
            _create_private(self.path)
        try:
            self.conn = sqlite3.connect(str(self.path), timeout=busy_timeout_s, isolation_level=None)
            self.conn.row_factory = sqlite3.Row
            self.conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
            self.conn.execute("PRAGMA journal_mode = WAL")
            self.conn.execute("PRAGMA synchronous = FULL")  # a committed transition survives power loss
            self.conn.execute("PRAGMA foreign_keys = ON")
        except sqlite3.DatabaseError as exc:
            raise UserError(f"{self.path} is not a usable ledger database: {exc}") from None
        self._migrate()

    @classmethod
    def open(cls, path: str | os.PathLike | None = None, **kw) -> Ledger:
        """Open the ledger at ``path`` (resolved like ``--ledger``)."""
        return cls(resolve_ledger_path(path), **kw)

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (``BEGIN IMMEDIATE``: the write lock is taken up front, so no upgrade deadlock)."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    @contextmanager
    def snapshot(self) -> Iterator[sqlite3.Connection]:
        """A consistent read of several statements."""
        self.conn.execute("BEGIN")
        try:
            yield self.conn
        finally:
            self.conn.execute("COMMIT")

    def _migrate(self) -> None:
        if self.schema_version == SCHEMA_VERSION:  # the common case: no write lock taken just to open
            return
        with self.transaction() as c:  # re-read under the write lock: another process may have migrated
            version = c.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise UserError(f"{self.path} has ledger schema {version}, newer than this program's "
                                f"{SCHEMA_VERSION}: upgrade unlearn-orchestrator")
            for target in range(version + 1, SCHEMA_VERSION + 1):
                MIGRATIONS[target](c)
                c.execute(f"PRAGMA user_version = {target}")

    @property
    def schema_version(self) -> int:
        return self.conn.execute("PRAGMA user_version").fetchone()[0]

    @property
    def ledger_id(self) -> str:
        return self.conn.execute("SELECT value FROM ledger_info WHERE key = 'ledger_id'").fetchone()[0]

    @staticmethod
    def event(c: sqlite3.Connection, kind: str, *, batch_id: int | None = None, version: int | None = None,
              **detail) -> None:
        c.execute("INSERT INTO events (at, kind, batch_id, version, detail, actor) VALUES (?, ?, ?, ?, ?, ?)",
                  (utc_now(), kind, batch_id, version, json.dumps(detail, default=str), current_actor()))

    # ----------------------------------------------------------------------------------------- requests
    def add_requests(self, new: list[NewRequest],
                     check: Callable[[sqlite3.Connection, list[NewRequest]], None] | None = None,
                     ) -> list[tuple[str, bool]]:
        """Record requests in one transaction; returns ``(request_id, added)`` per request.

        A given ``request_id`` that already exists with the same subject and ids is skipped (``added=False``), so
        re-importing a file is idempotent; with different content it is an error. ``check`` runs inside the
        transaction (e.g. against the current model's forgotten ids) and raises UserError to write nothing.
        """
        out = []
        with self.transaction() as c:
            if check is not None:
                check(c, new)
            seq = c.execute("SELECT COALESCE(MAX(seq), 0) FROM requests").fetchone()[0]
            for req in new:
                if req.request_id is not None:
                    old = c.execute("SELECT subject_id, sample_ids FROM requests WHERE request_id = ?",
                                    (req.request_id,)).fetchone()
                    if old is not None:
                        if (old[0], old[1]) != (req.subject_id, ids_json(req.sample_ids)):
                            raise UserError(f"request {req.request_id!r} already exists with a different subject "
                                            f"or sample ids; nothing was added")
                        out.append((req.request_id, False))
                        continue
                seq += 1
                request_id = req.request_id or f"req-{seq:06d}"
                now = utc_now()
                c.execute("INSERT INTO requests (seq, request_id, subject_id, sample_ids, received_at, "
                          "updated_at) VALUES (?, ?, ?, ?, ?, ?)",
                          (seq, request_id, req.subject_id, ids_json(req.sample_ids), req.received_at or now, now))
                if req.sample_keys is not None:  # record keys (schema 7), aligned with the sorted sample ids
                    c.execute("UPDATE requests SET sample_keys = ? WHERE seq = ?",
                              (json.dumps(list(req.sample_keys)), seq))
                out.append((request_id, True))
            added = [rid for rid, ok in out if ok]
            if added:
                self.event(c, "requests_added", count=len(added), first=added[0], last=added[-1])
        return out

    def get_request(self, request_id: str) -> dict[str, Any] | None:
        return _row(self.conn.execute("SELECT * FROM requests WHERE request_id = ?", (request_id,)).fetchone())

    def list_requests(self, status: list[str] | None = None, batch_id: int | None = None) -> list[dict[str, Any]]:
        sql, args = "SELECT * FROM requests WHERE 1", []
        if status:
            bad = sorted(set(status) - set(REQUEST_STATES))
            if bad:
                raise UserError(f"unknown request status {', '.join(bad)}; choose from {', '.join(REQUEST_STATES)}")
            sql += f" AND status IN ({','.join('?' * len(status))})"
            args += list(status)
        if batch_id is not None:
            sql += " AND request_id IN (SELECT request_id FROM batch_requests WHERE batch_id = ?)"
            args.append(batch_id)
        return [_row(r) for r in self.conn.execute(sql + " ORDER BY seq", args)]

    def request_batches(self, request_id: str) -> list[dict[str, Any]]:
        """Every batch a request was part of (retries included), oldest first."""
        return [_row(r) for r in self.conn.execute(
            "SELECT b.* FROM batches b JOIN batch_requests br USING (batch_id) WHERE br.request_id = ? "
            "ORDER BY b.batch_id", (request_id,))]

    def retry_failed(self, request_ids: list[str] | None = None) -> list[str]:
        """Put escalated (``failed``) requests back to pending with a fresh retry count (after a human fix)."""
        with self.transaction() as c:
            rows = [r[0] for r in c.execute("SELECT request_id FROM requests WHERE status = 'failed' ORDER BY seq")]
            if request_ids is not None:
                unknown = [r for r in request_ids if r not in rows]
                if unknown:
                    raise UserError(f"not in status failed: {', '.join(unknown)}; nothing was changed")
                rows = request_ids
            for rid in rows:
                c.execute("UPDATE requests SET status = 'pending', retry_count = 0, batch_id = NULL, "
                          "updated_at = ? WHERE request_id = ?", (utc_now(), rid))
            if rows:
                self.event(c, "requests_retried", request_ids=rows)
        return rows

    # ------------------------------------------------------------------------------------------- models
    def current_model(self) -> dict[str, Any] | None:
        return _row(self.conn.execute("SELECT * FROM model_versions WHERE is_current = 1").fetchone())

    def get_model(self, version: int) -> dict[str, Any] | None:
        return _row(self.conn.execute("SELECT * FROM model_versions WHERE version = ?", (version,)).fetchone())

    def list_models(self) -> list[dict[str, Any]]:
        return [_row(r) for r in self.conn.execute("SELECT * FROM model_versions ORDER BY version")]

    def lineage(self, version: int) -> list[dict[str, Any]]:
        """``version`` and its ancestors, newest first."""
        out, v = [], version
        while v is not None:
            row = self.get_model(v)
            out.append(row)
            v = row["parent"]
        return out

    @staticmethod
    def insert_model(c: sqlite3.Connection, *, uri: str, sha256: str, forgotten_ids, metrics: dict,
                     parent: int | None, batch_id: int | None, promote: bool, evidence: str | None = None,
                     evidence_note: str | None = None) -> int:
        """Insert a model version; with ``promote`` it becomes the one current version (call inside a transaction).
        ``evidence``: how it was promoted (``verified``, ``no-signal``, ``unverified``; None for a base model)."""
        now = utc_now()
        if promote:
            c.execute("UPDATE model_versions SET is_current = 0 WHERE is_current = 1")
        cur = c.execute(
            "INSERT INTO model_versions (parent, batch_id, uri, sha256, forgotten_ids, metrics, registered_at, "
            "promoted_at, is_current, evidence, evidence_note) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (parent, batch_id, uri, sha256, ids_json(forgotten_ids), json.dumps(metrics), now,
             now if promote else None, int(promote), evidence, evidence_note))
        Ledger.event(c, "model_promoted" if promote else "model_registered", version=cur.lastrowid,
                     batch_id=batch_id, uri=uri)
        return cur.lastrowid

    # ------------------------------------------------------------------------------------------ batches
    def get_batch(self, batch_id: int) -> dict[str, Any] | None:
        return _row(self.conn.execute("SELECT * FROM batches WHERE batch_id = ?", (batch_id,)).fetchone())

    def unfinished_batch(self) -> dict[str, Any] | None:
        states = UNFINISHED_BATCH_STATES
        return _row(self.conn.execute(
            f"SELECT * FROM batches WHERE state IN ({','.join('?' * len(states))}) ORDER BY batch_id LIMIT 1",
            states).fetchone())

    def list_batches(self) -> list[dict[str, Any]]:
        return [_row(r) for r in self.conn.execute("SELECT * FROM batches ORDER BY batch_id")]

    def events(self, kind: str | None = None) -> list[dict[str, Any]]:
        sql = "SELECT * FROM events" + (" WHERE kind = ?" if kind else "") + " ORDER BY event_id"
        return [_row(r) for r in self.conn.execute(sql, (kind,) if kind else ())]
