"""Ledger and checkpoint files are private, events name their actor, and a migration is idempotent (issue 18,
case 9)."""

from __future__ import annotations

import os
import sqlite3
import stat

from orchestrator.ledger import db as ledger_mod
from orchestrator.ledger.db import Ledger, NewRequest
from tests.ledger_fakes import make_base_checkpoint


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_a_new_ledger_and_a_checkpoint_are_owner_only(tmp_path):
    old = os.umask(0o022)  # the usual default: without the fix everything would be world-readable
    try:
        path = tmp_path / "new" / "ledger.sqlite"
        with Ledger(path, create=True) as led:
            led.add_requests([NewRequest("s", (1,))])
        ckpt = make_base_checkpoint(tmp_path / "ck" / "base")
    finally:
        os.umask(old)
    assert mode(path.parent) == 0o700 and mode(path) == 0o600
    assert all(mode(p) == 0o600 for p in path.parent.glob("ledger.sqlite-*"))  # wal / shm, if still there
    assert mode(ckpt) == 0o700 and {mode(f) for f in ckpt.iterdir()} == {0o600}


def test_events_record_the_actor(tmp_path, monkeypatch):
    path = tmp_path / "ledger.sqlite"
    monkeypatch.delenv("UNLEARN_ACTOR", raising=False)
    expected = ledger_mod.current_actor()
    with Ledger(path, create=True) as led:
        led.add_requests([NewRequest("s", (1,))])
        monkeypatch.setenv("UNLEARN_ACTOR", "cron@scheduler-host")
        led.add_requests([NewRequest("t", (2,))])
        actors = [e["actor"] for e in led.events("requests_added")]
    assert actors[0] == expected and "@" in expected
    assert actors[1] == "cron@scheduler-host"


def test_the_actor_migration_upgrades_an_old_ledger_and_is_idempotent(tmp_path, monkeypatch):
    path = tmp_path / "v1.sqlite"
    monkeypatch.setattr(ledger_mod, "MIGRATIONS", {1: ledger_mod.MIGRATIONS[1]})
    monkeypatch.setattr(ledger_mod, "SCHEMA_VERSION", 1)
    with Ledger(path, create=True) as led:  # a ledger written by the previous release (schema 1, no actor)
        led.conn.execute("INSERT INTO events (at, kind) VALUES ('2026-01-01T00:00:00Z', 'old')")
    monkeypatch.undo()
    with Ledger(path) as led:
        assert led.schema_version == ledger_mod.SCHEMA_VERSION
        assert [e["actor"] for e in led.events()] == [None]  # history is not rewritten
    conn = sqlite3.connect(path)
    ledger_mod.MIGRATIONS[2](conn)  # run again (e.g. renumbered after a merge): no error, no second column
    assert [r[1] for r in conn.execute("PRAGMA table_info(events)")].count("actor") == 1


def test_an_existing_ledger_directory_keeps_its_mode(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    os.chmod(shared, 0o755)
    Ledger(shared / "ledger.sqlite", create=True).close()
    assert mode(shared) == 0o755 and mode(shared / "ledger.sqlite") == 0o600
