"""Deletion requests by record key: `requests add --keys` / `--file` with a key column resolve to the members'
sample ids, the keys are stored and shown, and ledgers or manifests from before keys keep working."""

from __future__ import annotations

import shutil

import pyarrow.parquet as pq
import pytest

from orchestrator.cli import main
from orchestrator.ledger import db as ledger_mod
from orchestrator.ledger.db import Ledger
from tests.ledger_fakes import make_base_checkpoint
from trainables.data.splits import Splits


@pytest.fixture(scope="module")
def base_ckpt(tmp_path_factory):
    return make_base_checkpoint(tmp_path_factory.mktemp("base") / "pretrained", num_members=20)


@pytest.fixture
def ledger(tmp_path, base_ckpt, monkeypatch):
    path = tmp_path / "ledger.sqlite"
    monkeypatch.setenv("UNLEARN_LEDGER", str(path))
    assert main(["models", "register", str(base_ckpt)]) == 0
    return path


def _members(ck) -> list[int]:
    return [int(i) for i in Splits.load(ck / "splits.parquet")["member"]]


def test_requests_by_key_store_ids_and_keys_and_show_them(ledger, base_ckpt, tmp_path, capsys):
    m = _members(base_ckpt)
    assert main(["requests", "add", "--subject", "alice", "--keys", f"train/{m[5]},train/{m[1]}"]) == 0
    assert main(["requests", "add", "--subject", "bob", "--sample-ids", str(m[2])]) == 0  # ids get their key too
    (tmp_path / "r.csv").write_text(f"subject_id,key,request_id\ncarol,train/{m[3]},ext-1\ndave,train/{m[4]},ext-2\n"
                                    f"carol,train/{m[6]},ext-1\n")
    assert main(["requests", "add", "--file", str(tmp_path / "r.csv")]) == 0
    with Ledger(ledger) as led:
        rows = {r["subject_id"]: r for r in led.list_requests()}
    assert rows["alice"]["sample_ids"] == sorted([m[5], m[1]])
    assert rows["alice"]["sample_keys"] == [f"train/{i}" for i in sorted([m[5], m[1]])]  # aligned with the ids
    assert rows["bob"]["sample_keys"] == [f"train/{m[2]}"]
    assert rows["carol"]["sample_ids"] == sorted([m[3], m[6]]) and rows["carol"]["request_id"] == "ext-1"
    assert rows["dave"]["sample_ids"] == [m[4]]
    assert main(["requests", "add", "--file", str(tmp_path / "r.csv")]) == 0  # a re-import adds nothing
    capsys.readouterr()
    assert main(["requests", "list"]) == 0
    listing = capsys.readouterr().out
    assert "KEYS" in listing.splitlines()[0] and f"train/{m[3]}" in listing
    assert main(["requests", "show", "req-000001"]) == 0
    assert f"train/{min(m[5], m[1])}, train/{max(m[5], m[1])}" in capsys.readouterr().out
    with Ledger(ledger) as led:
        assert len(led.list_requests()) == 4


def test_a_ledger_from_before_keys_is_back_filled_and_an_old_manifest_refuses_keys(tmp_path, base_ckpt, capsys):
    import sqlite3

    path = tmp_path / "v6.sqlite"
    assert main(["models", "register", str(base_ckpt), "--ledger", str(path)]) == 0
    conn = sqlite3.connect(path)  # as the release before keys left it: schema 6, no keys anywhere
    conn.executescript("DROP TABLE member_keys; ALTER TABLE requests DROP COLUMN sample_keys; PRAGMA user_version = 6;")
    conn.close()
    m = _members(base_ckpt)
    assert main(["requests", "add", "--subject", "a", "--keys", f"train/{m[0]}", "--ledger", str(path)]) == 0
    with Ledger(path) as led:
        assert led.conn.execute("SELECT COUNT(*) FROM member_keys").fetchone()[0] == 1  # back-filled
        assert led.list_requests()[0]["sample_ids"] == [m[0]]
        before = [tuple(r) for r in led.conn.execute("SELECT * FROM member_keys")]
        ledger_mod.MIGRATIONS[7](led.conn)  # idempotent: run again (e.g. renumbered after a merge), nothing changes
        assert [tuple(r) for r in led.conn.execute("SELECT * FROM member_keys")] == before

    old = tmp_path / "old"  # a checkpoint whose manifest predates keys
    shutil.copytree(base_ckpt, old)
    pq.write_table(pq.read_table(old / "splits.parquet").drop_columns(["key"]), old / "splits.parquet")
    from tests.test_bad_inputs import _rehash

    _rehash(old)
    other = str(tmp_path / "old.sqlite")
    assert main(["models", "register", str(old), "--ledger", other]) == 0
    capsys.readouterr()
    assert main(["requests", "add", "--subject", "a", "--keys", f"train/{m[0]}", "--ledger", other]) == 2
    assert "no record keys" in capsys.readouterr().err
    assert main(["requests", "add", "--subject", "a", "--sample-ids", str(m[0]), "--ledger", other]) == 0
    with Ledger(other) as led:
        row = led.list_requests()[0]
        assert row["sample_keys"] is None and row["sample_ids"] == [m[0]]
        assert led.conn.execute("SELECT COUNT(*) FROM member_keys").fetchone()[0] == 0
