"""The ledger database, the lease and request intake (no checkpoints, no torch work); the gate: tests/test_gate.py."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time

import numpy as np
import pytest

from orchestrator.ledger import db as ledger_mod
from orchestrator.ledger.db import Ledger, NewRequest, resolve_ledger_path
from orchestrator.ledger.intake import check_members, parse_sample_ids, read_request_file, reject_forgotten
from orchestrator.ledger.lease import Lease, LeaseHeld, LeaseLost
from orchestrator.ledger.transitions import create_batch, fail_batch, run_name_for
from tests.conftest import REPO_ROOT
from trainables.errors import UserError


@pytest.fixture
def ledger(tmp_path):
    with Ledger(tmp_path / "ledger.sqlite", create=True) as led:
        with led.transaction() as c:  # a current model that forgot ids 1 and 2 (no checkpoint needed here)
            Ledger.insert_model(c, uri="/nowhere", sha256="0" * 64, forgotten_ids=[1, 2], metrics={}, parent=None,
                                batch_id=None, promote=True)
        yield led


def test_open_missing_ledger_is_a_user_error_and_creates_nothing(tmp_path):
    with pytest.raises(UserError, match="no ledger at"):
        Ledger(tmp_path / "absent.sqlite")
    assert not (tmp_path / "absent.sqlite").exists()


def test_a_file_that_is_not_a_ledger_is_a_user_error(tmp_path):
    (tmp_path / "notes.txt").write_text("not a database " * 100)
    with pytest.raises(UserError, match="is not a usable ledger database"):
        Ledger(tmp_path / "notes.txt")


def test_pragmas_and_path_resolution(ledger, tmp_path, monkeypatch):
    assert ledger.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert ledger.conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert ledger.schema_version == ledger_mod.SCHEMA_VERSION == max(ledger_mod.MIGRATIONS)
    monkeypatch.setenv("UNLEARN_LEDGER", str(tmp_path / "env.sqlite"))
    assert resolve_ledger_path(None) == tmp_path / "env.sqlite"
    assert resolve_ledger_path("x.sqlite").name == "x.sqlite"
    monkeypatch.delenv("UNLEARN_LEDGER")
    assert resolve_ledger_path(None) == ledger_mod.DEFAULT_LEDGER


def test_migration_hook_runs_pending_migrations_once(tmp_path, monkeypatch):
    path = tmp_path / "l.sqlite"
    Ledger(path, create=True).close()
    calls = []

    def add_column(c):
        calls.append(1)
        c.execute("ALTER TABLE requests ADD COLUMN note TEXT")

    target = ledger_mod.SCHEMA_VERSION + 1
    monkeypatch.setitem(ledger_mod.MIGRATIONS, target, add_column)
    monkeypatch.setattr(ledger_mod, "SCHEMA_VERSION", target)
    for _ in range(2):
        with Ledger(path) as led:
            assert led.schema_version == target
    assert calls == [1]
    cols = [r[1] for r in sqlite3.connect(path).execute("PRAGMA table_info(requests)")]
    assert "note" in cols


def test_newer_schema_is_refused(tmp_path):
    path = tmp_path / "l.sqlite"
    Ledger(path, create=True).close()
    sqlite3.connect(path).execute("PRAGMA user_version = 99")
    with pytest.raises(UserError, match="schema 99, newer"):
        Ledger(path)


def test_add_requests_ids_idempotency_and_conflicts(ledger):
    out = ledger.add_requests([NewRequest("a", (5, 3)), NewRequest("b", (7,), request_id="ext-9")])
    assert out == [("req-000001", True), ("ext-9", True)]
    assert ledger.get_request("req-000001")["sample_ids"] == [3, 5]
    assert ledger.add_requests([NewRequest("b", (7,), request_id="ext-9")]) == [("ext-9", False)]
    with pytest.raises(UserError, match="different subject"):
        ledger.add_requests([NewRequest("c", (8,)), NewRequest("b", (8,), request_id="ext-9")])
    assert len(ledger.list_requests()) == 2  # the whole call was rolled back, req c included
    with pytest.raises(UserError, match="unknown request status"):
        ledger.list_requests(status=["bogus"])


def test_already_forgotten_ids_are_rejected_unless_the_request_is_a_resend(ledger):
    with pytest.raises(UserError, match=r"1 sample id\(s\) already forgotten .*version 1\): 2"):
        ledger.add_requests([NewRequest("a", (2, 9))], check=reject_forgotten)
    assert ledger.list_requests() == []
    with ledger.transaction() as c:  # a request recorded before its ids were forgotten may be re-sent
        c.execute("UPDATE model_versions SET forgotten_ids = '[1, 2, 9]'")
    ledger.add_requests([NewRequest("a", (10,), request_id="x")])
    ledger.add_requests([NewRequest("a", (10,), request_id="x")], check=reject_forgotten)


def test_intake_parsing_and_membership(tmp_path):
    assert parse_sample_ids("3, 1;2 3") == (1, 2, 3)
    assert parse_sample_ids([4, 4]) == (4,)
    for bad in ("1,x", "", "-1"):
        with pytest.raises(UserError):
            parse_sample_ids(bad)
    check_members([NewRequest("a", (1, 2))], np.array([1, 2, 3]))
    with pytest.raises(UserError, match=r"2 sample id\(s\) not members.*: 7, 8"):
        check_members([NewRequest("a", (1, 7)), NewRequest("b", (8,))], np.array([1, 2, 3]))
    csv = tmp_path / "r.csv"
    csv.write_text('subject_id,sample_ids,request_id\nalice,"1,2",e1\nbob,3,\n')
    reqs = read_request_file(csv)
    assert [(r.subject_id, r.sample_ids, r.request_id) for r in reqs] == [("alice", (1, 2), "e1"), ("bob", (3,), None)]
    import pandas as pd

    pd.DataFrame({"subject": ["c"], "sample_ids": [[5, 4]]}).to_parquet(tmp_path / "r.parquet")
    assert read_request_file(tmp_path / "r.parquet")[0].sample_ids == (4, 5)
    (tmp_path / "bad.csv").write_text("subject_id,ids\na,1\n")
    with pytest.raises(UserError, match="lacks column"):
        read_request_file(tmp_path / "bad.csv")
    (tmp_path / "bad2.csv").write_text("subject_id,sample_ids\na,1\n,2\n")
    with pytest.raises(UserError, match="row 2: a subject id is required"):
        read_request_file(tmp_path / "bad2.csv")


_WRITER = """
import sys
from orchestrator.ledger.db import Ledger, NewRequest
led = Ledger(sys.argv[1])
for i in range(100):
    led.add_requests([NewRequest(sys.argv[2], (i,))])
"""


def test_two_processes_adding_100_requests_each_lose_nothing(ledger):
    env = {**os.environ, "PYTHONPATH": REPO_ROOT}
    procs = [subprocess.Popen([sys.executable, "-c", _WRITER, str(ledger.path), who], env=env, cwd=REPO_ROOT,
                              stderr=subprocess.PIPE, text=True) for who in ("p1", "p2")]
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errors
    rows = ledger.list_requests()
    assert len(rows) == 200 and len({r["request_id"] for r in rows}) == 200
    for who in ("p1", "p2"):
        assert sorted(r["sample_ids"][0] for r in rows if r["subject_id"] == who) == list(range(100))


def test_lease_excludes_a_second_run_and_is_released(ledger):
    with Lease(ledger.path, timeout_s=60) as first:
        with pytest.raises(LeaseHeld, match="another unlearning run holds the scheduler lock"):
            Lease(ledger.path, timeout_s=60).acquire()
        with ledger.transaction() as c:
            first.check(c)
    with Lease(ledger.path) as second:
        assert second.generation == first.generation + 1


def test_stale_lease_is_taken_over_and_the_old_holder_is_fenced(ledger):
    old = Lease(ledger.path, timeout_s=30).acquire()
    old._stop.set()  # freeze its heartbeat, then age it past the timeout
    ledger.conn.execute("UPDATE locks SET heartbeat_at = heartbeat_at - 31, host = 'elsewhere'")
    new = Lease(ledger.path, timeout_s=30).acquire()
    with pytest.raises(LeaseLost), ledger.transaction() as c:
        old.check(c)
    with ledger.transaction() as c:
        new.check(c)
    assert ledger.events("lease_taken_over")[0]["detail"]["reason"].startswith("heartbeat 31 s old")
    new.release()


def test_lease_of_a_dead_process_on_this_host_is_taken_over_at_once(ledger):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    lease = Lease(ledger.path, timeout_s=3600)
    ledger.conn.execute("INSERT INTO locks VALUES ('scheduler', 'x', ?, ?, 4, ?, ?, 3600)",
                        (lease.host, dead.pid, time.time(), time.time()))
    with lease:
        assert lease.generation == 5
    assert "is gone" in ledger.events("lease_taken_over")[0]["detail"]["reason"]


def test_batch_failure_requeues_with_retry_count_then_escalates(ledger):
    ledger.add_requests([NewRequest("a", (5,)), NewRequest("b", (1, 6))])  # 1 is already forgotten
    with Lease(ledger.path) as lease:
        for attempt in (1, 2, 3):
            batch = create_batch(ledger, lease, config={})
            assert batch["forget_ids"] == [5, 6] and batch["run_name"] == run_name_for(ledger.ledger_id, attempt)
            escalated = fail_batch(ledger, lease, batch["batch_id"], f"boom {attempt}", max_failures=3)
            statuses = {r["status"] for r in ledger.list_requests()}
            assert statuses == ({"pending"} if attempt < 3 else {"failed"})
        assert escalated == ["req-000001", "req-000002"]
        assert create_batch(ledger, lease, config={}) is None  # escalated requests wait for a human
    assert all(r["retry_count"] == 3 and r["reason"] == "boom 3" for r in ledger.list_requests())
    assert [b["state"] for b in ledger.list_batches()] == ["failed"] * 3
    assert ledger.retry_failed() == ["req-000001", "req-000002"]
    assert {(r["status"], r["retry_count"]) for r in ledger.list_requests()} == {("pending", 0)}


def test_batch_of_only_forgotten_ids_is_verified_by_the_current_model(ledger):
    ledger.add_requests([NewRequest("a", (1, 2))])  # raced past intake: already forgotten
    with Lease(ledger.path) as lease:
        batch = create_batch(ledger, lease, config={})
    assert batch["state"] == "done" and batch["forget_ids"] == []
    assert ledger.list_requests()[0]["status"] == "verified"
    assert len(ledger.list_models()) == 1
