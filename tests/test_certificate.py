"""`unlearn requests certificate`: facts, the three formats, the ledger record, --verify, and every bad input."""

from __future__ import annotations

import json
import re
import sqlite3

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from orchestrator.cli import main
from orchestrator.ledger import db as ledger_mod
from orchestrator.ledger.certificate.facts import content_sha256, record_keys
from orchestrator.ledger.certificate.files import write_certificate
from orchestrator.ledger.certificate.render import extract
from orchestrator.ledger.db import Ledger, NewRequest
from orchestrator.ledger.lease import Lease
from orchestrator.ledger.transitions import create_batch
from tests.evidence_fakes import gate_verification, write_gate_evidence
from tests.ledger_fakes import make_base_checkpoint
from trainables.data.splits import Splits

FAKE = ["--executor", "tests.ledger_fakes:FakeExecutor"]
NONMEMBER = [i / 100 for i in range(100)]  # 0.00 ... 0.99: a score s has exactly 100*s non-members below it


@pytest.fixture(scope="module")
def base_ckpt(tmp_path_factory):
    return make_base_checkpoint(tmp_path_factory.mktemp("base") / "pretrained")


@pytest.fixture
def verified(tmp_path, base_ckpt, monkeypatch):
    """A ledger whose request req-000001 (3 ids) is verified by batch 1 -> version 2 (legacy flat metrics);
    returns (ledger path, the request's ids)."""
    path = tmp_path / "ledger" / "ledger.sqlite"
    monkeypatch.setenv("UNLEARN_LEDGER", str(path))
    monkeypatch.delenv("FAKE_ATTACK", raising=False)
    members = [int(i) for i in Splits.load(base_ckpt / "splits.parquet")["member"]]
    assert main(["models", "register", str(base_ckpt)]) == 0
    assert main(["requests", "add", "--subject", "alice", "--sample-ids", ",".join(map(str, members[:3]))]) == 0
    assert main(["requests", "add", "--subject", "bob", "--sample-ids", ",".join(map(str, members[3:5]))]) == 0
    assert main(["schedule", "run", *FAKE]) == 0
    with Ledger(path) as led, led.transaction() as c:  # as a ledger of the release before the gate stored it
        metrics = json.loads(c.execute("SELECT metrics FROM batches WHERE batch_id = 1").fetchone()[0])
        metrics.pop("verification", None)
        metrics.update(forget_attack=0.5, accuracy_parent=0.8, accuracy_candidate=0.79)
        config = json.loads(c.execute("SELECT config FROM batches WHERE batch_id = 1").fetchone()[0])
        config["verify"] = {"attack_metric": "accuracy", "attack_tolerance": 0.1, "max_accuracy_drop": 0.05}
        c.execute("UPDATE batches SET metrics = ?, config = ?, evidence_sha256 = NULL, verdict = NULL "
                  "WHERE batch_id = 1", (json.dumps(metrics), json.dumps(config)))
    return path, members[:3]


def certificates(path) -> list[sqlite3.Row]:
    with Ledger(path) as led:
        return led.conn.execute("SELECT * FROM certificates ORDER BY certificate_id").fetchall()


def test_gate_evidence_certificate_in_every_format_verifies(verified, tmp_path, capsys):
    path, ids = verified
    write_gate_evidence(path, 1, forget={ids[0]: (0.995, 0.495), ids[1]: (0.905, 0.105), ids[2]: (0.8, 0.9)},
                        nonmember=NONMEMBER)
    for fmt in ("json", "md", "html"):
        assert main(["requests", "certificate", "req-000001", "--out", str(tmp_path / f"c.{fmt}")]) == 0
    rows = certificates(path)
    assert [r["format"] for r in rows] == ["json", "md", "html"] and len({r["content_sha256"] for r in rows}) == 3
    doc = json.loads((tmp_path / "c.json").read_text())
    facts = doc["facts"]
    assert doc["content_sha256"] == content_sha256(facts) == rows[0]["content_sha256"]
    assert facts["request"]["sample_ids"] == ids
    assert facts["request"]["record_keys"] == [f"train/{i}" for i in ids]  # digits: one train pool, keys train/<i>
    assert f"train/{ids[0]}, train/{ids[1]}" in (tmp_path / "c.md").read_text()
    assert facts["request"]["subject_id"] == "alice" and facts["request"]["verified_at"] is not None
    assert [facts["models"][k]["version"] for k in ("parent", "promoted")] == [1, 2]
    assert [x["version"] for x in facts["models"]["promoted"]["lineage"]] == [2, 1]
    v = facts["verification"]
    assert v["evidence"] == "statistical test" and v["p_value"] == 0.41 and v["reference_k"] == 4
    assert v["power_check"] == {"parent_p_value": 0.0004, "parent_rejects": True}
    assert v["utility"]["drop"] == 0.01 and v["utility"]["ci_high"] == 0.025
    # percentile = share of the 100 non-member scores below the sample's: 0.995 -> 100, 0.495 -> 50, 0.105 -> 11
    assert [(s["parent_percentile"], s["candidate_percentile"]) for s in facts["scores"]["samples"]] == \
        [(100.0, 50.0), (91.0, 11.0), (80.5, 90.5)]  # 0.8 and 0.9 tie one non-member each: it counts half
    assert facts["scores"]["nonmember"]["parent"]["n"] == 100
    assert facts["software"]["issued_with"]["unlearn-orchestrator"] == "0.1.0" and "torch" in facts["software"][
        "issued_with"] and facts["batch"]["config"]["fake"] == {"epochs": 2}
    html = (tmp_path / "c.html").read_text()
    assert html.index("VERIFIED") < html.index("<svg") < html.index("The request")
    assert html.count("<line") >= 6 and not re.search(r"(src|href)=", html)  # self-contained, 3 samples x 2 ticks
    md = (tmp_path / "c.md").read_text()
    assert md.startswith("# Deletion certificate: request req-000001\n\n**VERIFIED**")
    assert "| power check: parent p-value | 0.0004 |" in md and rows[1]["content_sha256"] in md
    capsys.readouterr()
    for fmt in ("json", "md", "html"):
        assert main(["requests", "certificate", "--verify", str(tmp_path / f"c.{fmt}")]) == 0
    out = capsys.readouterr().out
    assert out.count("certificate OK") == 3 and "verified (statistical test)" in out
    assert main(["requests", "show", "req-000001"]) == 0
    assert capsys.readouterr().out.count("certificate #") == 3
    with Ledger(path) as led:
        events = led.events("certificate_issued")
    assert [e["detail"]["format"] for e in events] == ["json", "md", "html"]
    assert events[0]["detail"]["content_sha256"] == rows[0]["content_sha256"]


def test_legacy_batch_certificate_says_point_estimate(verified, tmp_path, capsys):
    path, ids = verified
    with Ledger(path) as led:
        out = write_certificate(led, "req-000002", "md", tmp_path / "bob.md")
        html = write_certificate(led, "req-000002", "html", tmp_path / "bob.html").read_text()
    assert '<div class="banner warn"><b>VERIFIED (legacy point estimate)</b>' in html and "<svg" not in html
    text = out.read_text()
    assert "**VERIFIED (legacy point estimate)**" in text and "No per-sample scores were stored" in text
    _, facts = extract(text)
    v = facts["verification"]
    assert v["evidence"] == "legacy point estimate" and v["statistic"] == 0.5 and v["tolerance"] == 0.1
    assert v["p_value"] is None and v["utility"]["parent"] == 0.8 and facts["scores"]["available"] is False
    assert main(["requests", "certificate", "--verify", str(out)]) == 0
    capsys.readouterr()
    assert main(["requests", "certificate", "req-000002"]) == 0  # stdout, json
    assert json.loads(capsys.readouterr().out)["facts"]["request"]["request_id"] == "req-000002"


@pytest.mark.parametrize("fmt, edit, words", [
    ("json", lambda t: t.replace('"p_value": 0.41', '"p_value": 0.9'),
     "its facts were edited (1 field(s)): verification.p_value: issued 0.41, file says 0.9"),
    ("md", lambda t: t.replace("| p-value | 0.41 |", "| p-value | 0.9 |"), "was edited after it was issued: line"),
    ("html", lambda t: t.replace('"subject_id":"alice"', '"subject_id":"mallory"'),
     "request.subject_id: issued 'alice', file says 'mallory'"),
    ("html", lambda t: t.replace("VERIFIED", "VERIFIED!", 1), "was edited after it was issued"),
])
def test_tampered_certificate_fails_verify_naming_the_change(verified, tmp_path, capsys, fmt, edit, words):
    path, ids = verified
    write_gate_evidence(path, 1, forget={i: (0.9, 0.5) for i in ids}, nonmember=NONMEMBER)
    cert = tmp_path / f"c.{fmt}"
    assert main(["requests", "certificate", "req-000001", "--out", str(cert)]) == 0
    edited = edit(cert.read_text())
    assert edited != cert.read_text()
    cert.write_text(edited)
    capsys.readouterr()
    assert main(["requests", "certificate", "--verify", str(cert)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and words in err, err


def test_not_a_certificate(verified, tmp_path, capsys):
    cases = {"notes.txt": "hello", "other.json": '{"a": 1}', "page.html": "<!DOCTYPE html><p>hi</p>",
             "bin.dat": b"\xff\xfe\x00"}
    for name, content in cases.items():
        f = tmp_path / name
        f.write_bytes(content if isinstance(content, bytes) else content.encode())
        assert main(["requests", "certificate", "--verify", str(f)]) == 2
        assert "is not an unlearn certificate" in capsys.readouterr().err, name
    assert main(["requests", "certificate", "--verify", str(tmp_path / "absent.json")]) == 2
    assert "no such certificate file" in capsys.readouterr().err


def test_unknown_and_unverified_requests_get_no_certificate(verified, tmp_path, capsys, monkeypatch):
    path, _ = verified
    out = tmp_path / "c.json"
    assert main(["requests", "certificate", "req-999", "--out", str(out)]) == 2
    assert "no request 'req-999'" in capsys.readouterr().err
    members = [int(i) for i in Splits.load(Ledger(path).get_model(1)["uri"] + "/splits.parquet")["member"]]
    assert main(["requests", "add", "--subject", "c", "--sample-ids", str(members[10])]) == 0  # req-000003 pending
    assert main(["requests", "certificate", "req-000003", "--out", str(out)]) == 2
    assert "request req-000003 is pending, not verified" in capsys.readouterr().err
    monkeypatch.setenv("FAKE_ATTACK", "0.9")
    assert main(["schedule", "run", *FAKE, "--escalate-after", "1"]) == 3  # verification fails -> escalated
    assert main(["requests", "certificate", "req-000003", "--out", str(out)]) == 2
    assert "request req-000003 is failed, not verified (verification failed" in capsys.readouterr().err
    assert main(["requests", "retry", "--failed"]) == 0
    with Ledger(path) as led, Lease(led.path) as lease:
        create_batch(led, lease, config={})
    assert main(["requests", "certificate", "req-000003", "--out", str(out)]) == 2
    assert "is batched, not verified" in capsys.readouterr().err
    assert not out.exists() and certificates(path) == []


def test_out_that_exists_or_cannot_be_written_is_refused_first(verified, tmp_path, capsys):
    path, _ = verified
    existing = tmp_path / "c.html"
    existing.write_text("keep me")
    for out, words in ((existing, "already exists"), (tmp_path / "c.html" / "x.json", "not a writable directory")):
        assert main(["requests", "certificate", "req-999", "--out", str(out)]) == 2  # out is checked first
        assert words in capsys.readouterr().err
    assert existing.read_text() == "keep me" and certificates(path) == []
    with Ledger(path) as led:
        assert led.events("certificate_issued") == []


def test_modified_evidence_is_refused_and_rollback_revokes(verified, tmp_path, capsys):
    path, ids = verified
    evidence = write_gate_evidence(path, 1, forget={i: (0.9, 0.5) for i in ids}, nonmember=NONMEMBER)
    assert main(["requests", "certificate", "req-000001", "--out", str(tmp_path / "c.json")]) == 0
    evidence.write_bytes(evidence.read_bytes() + b"x")
    assert main(["requests", "certificate", "req-000001", "--out", str(tmp_path / "d.json")]) == 2
    assert "evidence file" in capsys.readouterr().err and not (tmp_path / "d.json").exists()
    assert main(["models", "rollback", "1"]) == 0
    capsys.readouterr()
    assert main(["requests", "certificate", "--verify", str(tmp_path / "c.json")]) == 2
    assert "is authentic but no longer holds: request req-000001 is now pending" in capsys.readouterr().err


def test_no_signal_verdict_is_not_shown_as_verified(verified, tmp_path):
    path, ids = verified
    write_gate_evidence(path, 1, forget={i: (0.5, 0.5) for i in ids}, nonmember=NONMEMBER,
                        verification=gate_verification(verdict="no-signal", parent_p_value=0.6,
                                                       parent_rejects=False))
    with Ledger(path) as led:
        text = write_certificate(led, "req-000001", "html", tmp_path / "c.html").read_text()
    assert "PROMOTED WITHOUT SIGNAL" in text and "did NOT detect them" in text and ">VERIFIED<" not in text


def test_record_keys_come_from_a_key_column_when_present(tmp_path):
    table = pa.table({"sample_id": pa.array([1, 2], pa.int64()), "split": ["retain", "retain"],
                      "label": pa.array([0, 0], pa.int64()), "key": ["rec-a", "rec-b"]})
    pq.write_table(table, tmp_path / "splits.parquet")
    assert record_keys({"uri": str(tmp_path)}, [2, 1]) == ["rec-b", "rec-a"]
    pq.write_table(table.drop_columns(["key"]), tmp_path / "splits.parquet")
    assert record_keys({"uri": str(tmp_path)}, [2]) is None


def test_certificates_migration_upgrades_a_v1_ledger_and_is_idempotent(tmp_path):
    path = tmp_path / "l.sqlite"
    conn = sqlite3.connect(path)
    ledger_mod._create_v1(conn)
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()
    with Ledger(path) as led:
        assert led.schema_version == ledger_mod.SCHEMA_VERSION
        ledger_mod._add_certificates(led.conn)  # run again (e.g. renumbered among other migrations): no error
        assert led.conn.execute("SELECT COUNT(*) FROM certificates").fetchone()[0] == 0


def test_request_for_already_forgotten_ids_is_certified_by_the_parent(verified, tmp_path):
    path, ids = verified
    with Ledger(path) as led:
        led.add_requests([NewRequest("alice", (ids[0],), request_id="resend")])  # raced past intake
        with Lease(led.path) as lease:
            assert create_batch(led, lease, config={})["state"] == "done"
        facts = extract(write_certificate(led, "resend", "json", tmp_path / "r.json").read_text())[1]
    assert facts["verification"]["evidence"] == "already forgotten"
    assert facts["models"]["promoted"]["version"] == facts["models"]["parent"]["version"] == 2
    assert facts["models"]["unlearned_in_this_batch"] is False
