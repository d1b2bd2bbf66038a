"""The gate end to end through the CLI with the fake executor: verdicts in the ledger and the evidence file,
the no-signal policies, faults that use no retry, NaN scores, and the promotion bypasses closed."""

from __future__ import annotations

import json

import pytest

from orchestrator.cli import main
from orchestrator.ledger.db import Ledger
from orchestrator.ledger.evidence import read_evidence
from orchestrator.ledger.lease import Lease
from tests.ledger_fakes import FakeExecutor, ledger_problems, make_base_checkpoint, registered_ledger

FAKE = ["--executor", "tests.ledger_fakes:FakeExecutor"]


@pytest.fixture(scope="module")
def base_ckpt(tmp_path_factory):
    return make_base_checkpoint(tmp_path_factory.mktemp("base") / "pretrained")


@pytest.fixture
def setup(tmp_path, base_ckpt, monkeypatch):
    path, splits = registered_ledger(tmp_path, base_ckpt, monkeypatch)
    return path, [int(i) for i in splits["member"]]


def add(subject: str, ids) -> None:
    assert main(["requests", "add", "--subject", subject, "--sample-ids", ",".join(map(str, ids))]) == 0


def test_verified_batch_records_verdict_and_evidence(setup, capsys):
    path, members = setup
    add("a", members[:4])
    assert main(["schedule", "run", *FAKE]) == 0
    out = capsys.readouterr().out
    assert "verdict verified: mann-whitney-u-greater" in out and "power check passed" in out
    with Ledger(path) as led:
        batch = led.get_batch(1)
        v = batch["metrics"]["verification"]
        assert (batch["verdict"], batch["test"], batch["n_forget"], batch["n_nonmember"]) == (
            "verified", "mann-whitney-u-greater", 4, 200)
        assert batch["p_value"] == v["p_value"] >= 0.05 and batch["parent_p_value"] == v["parent_p_value"] < 0.05
        assert (batch["alpha"], batch["reference_k"], batch["attack"]) == (0.05, 0, "fake")
        assert set(v) >= {"verdict", "test", "statistic", "p_value", "alpha", "parent_p_value", "parent_rejects",
                          "n_forget", "n_nonmember", "attack", "reference_k", "utility", "reason"}
        assert set(v["utility"]) == {"parent", "candidate", "drop", "ci_low", "ci_high"}
        table = read_evidence(path, 1, sha256=batch["evidence_sha256"])
        assert led.current_model()["evidence"] == "verified"
    rows = table.to_pylist()
    assert sorted(r["sample_id"] for r in rows if (r["role"], r["model"]) == ("forget", "candidate")) == \
        sorted(members[:4])
    assert {(r["role"], r["model"]) for r in rows} == {("forget", "candidate"), ("nonmember", "candidate"),
                                                       ("forget", "parent"), ("nonmember", "parent")}
    assert main(["models", "current"]) == 0
    assert "evidence      verified (mann-whitney-u-greater: p = " in capsys.readouterr().out


def test_no_signal_holds_without_a_retry_then_batches_more_then_escalates(setup, capsys, monkeypatch):
    path, members = setup
    monkeypatch.setenv("FAKE_PARENT_ATTACK", "0.5")  # nothing detectable even before unlearning
    add("a", members[:3])
    assert main(["schedule", "run", *FAKE]) == 0
    assert "no-signal, nothing promoted" in capsys.readouterr().out
    with Ledger(path) as led:
        r = led.list_requests()[0]
        assert (r["status"], r["retry_count"]) == ("pending", 0) and led.get_batch(1)["verdict"] == "no-signal"
        assert led.current_model()["version"] == 1
    assert main(["schedule", "run", *FAKE]) == 0  # 3 ids pending, 6 needed: held, no new batch
    assert "holding 1 requests" in capsys.readouterr().out
    add("b", members[3:6])
    assert main(["schedule", "run", *FAKE, "--hold-max-size", "6"]) == 3  # merged: 6 ids, still nothing: escalate
    err = capsys.readouterr().err
    assert "ESCALATION: 2 deletion requests need a human" in err and "--on-no-signal promote" in err
    with Ledger(path) as led:
        assert led.get_batch(2)["forget_ids"] == sorted(members[:6])
        assert {r["status"] for r in led.list_requests()} == {"failed"}


def test_no_signal_promote_policy_says_so_wherever_the_version_is_shown(setup, capsys, monkeypatch):
    path, members = setup
    monkeypatch.setenv("FAKE_PARENT_ATTACK", "0.5")
    add("a", members[:3])
    assert main(["schedule", "run", *FAKE, "--on-no-signal", "promote"]) == 0
    assert "no-signal evidence (not detectable before or after)" in capsys.readouterr().out
    assert main(["models", "list"]) == 0 and main(["models", "current"]) == 0
    out = capsys.readouterr().out
    assert out.count("not detectable before or after") == 2
    with Ledger(path) as led:
        assert led.current_model()["evidence"] == "no-signal"
    assert ledger_problems(path) == []


def test_nan_scores_fail_and_faults_use_no_retry(setup, capsys, monkeypatch):
    path, members = setup
    add("a", members[:3])
    monkeypatch.setenv("FAKE_VERIFY_ERROR", "disk full")
    assert main(["schedule", "run", *FAKE, "--escalate-after", "1"]) == 1
    assert "no retry was used" in capsys.readouterr().err
    with Ledger(path) as led:
        assert led.list_requests()[0]["retry_count"] == 0
    monkeypatch.delenv("FAKE_VERIFY_ERROR")
    monkeypatch.setenv("FAKE_NAN", "1")
    assert main(["schedule", "run", *FAKE, "--escalate-after", "2"]) == 1
    assert "non-finite" in capsys.readouterr().err
    with Ledger(path) as led:
        assert led.get_batch(2)["verdict"] == "failed" and led.list_requests()[0]["retry_count"] == 1
        assert led.current_model()["version"] == 1


def test_bad_verification_settings_exit_2_before_anything(setup, capsys):
    path, members = setup
    add("a", members[:3])
    for bad in (["--attack-set", "n_views=abc"], ["--alpha", "0.7"], ["--hold-max-size", "0"],
                ["--attack-set", "attacks=[nope]"]):
        assert main(["schedule", "run", *FAKE, *bad]) == 2
        assert capsys.readouterr().err.startswith("error: invalid verification setting")
    with Ledger(path) as led:
        assert led.list_batches() == [] and led.list_requests()[0]["status"] == "pending"


def test_a_candidate_changed_after_verification_is_not_promoted(setup, capsys, tmp_path):
    from orchestrator.ledger.transitions import create_batch, record_trained, record_verified
    from orchestrator.ledger.verification import VerifyConfig
    from orchestrator.ledger.versions import checkpoint_digest

    path, members = setup
    add("a", members[:2])
    with Ledger(path) as led, Lease(path) as lease:  # as if a run died right after the verdict was committed
        config = FakeExecutor().resolve_config(None, [], VerifyConfig())
        batch = create_batch(led, lease, config=config)
        out = path.parent / "models" / batch["run_name"]
        FakeExecutor(storage_path=tmp_path / "runs").unlearn(led.current_model()["uri"], batch["forget_ids"],
                                                            config, out, batch["run_name"])
        record_trained(led, lease, 1, str(out), checkpoint_digest(out)[0])
        record_verified(led, lease, 1, {"verification": {"verdict": "verified"}})
    meta = json.loads((out / "meta.json").read_text())
    meta["forgotten_ids"] = []  # a swapped candidate: still self-consistent, but not what was verified
    (out / "meta.json").write_text(json.dumps(meta))
    assert main(["schedule", "run", *FAKE]) == 1
    assert "modified after verification" in capsys.readouterr().err
    with Ledger(path) as led:
        assert led.current_model()["version"] == 1 and led.get_batch(1)["state"] == "failed"
        assert led.list_requests()[0]["retry_count"] == 0


def test_register_promote_needs_force_and_reason_and_is_marked_unverified(setup, capsys, base_ckpt, tmp_path):
    path, members = setup
    other = make_base_checkpoint(tmp_path / "other", seed=20261202)  # never the registered weights
    capsys.readouterr()
    assert main(["models", "register", str(other), "--promote"]) == 2
    assert "bypasses the verification gate" in capsys.readouterr().err
    assert main(["models", "register", str(other), "--promote", "--force"]) == 2
    assert "--force needs --reason" in capsys.readouterr().err
    with Ledger(path) as led:
        assert len(led.list_models()) == 1
    assert main(["models", "register", str(other), "--promote", "--force", "--reason", "full retrain, ticket 7"]) == 0
    assert "PROMOTED UNVERIFIED" in capsys.readouterr().out
    assert main(["models", "list"]) == 0 and main(["models", "current"]) == 0
    out = capsys.readouterr().out
    assert out.count("PROMOTED UNVERIFIED: full retrain, ticket 7") == 2
    with Ledger(path) as led:
        assert led.current_model()["evidence"] == "unverified"
        event = led.events("promoted_unverified")[0]
        assert event["detail"]["reason"] == "full retrain, ticket 7" and event["version"] == 2
    # the old base checkpoint is registered (version 1, not current): --promote must not exit 0 doing nothing
    assert main(["models", "register", str(base_ckpt), "--promote", "--force", "--reason", "x"]) == 2
    assert "already registered as version 1, which is not current" in capsys.readouterr().err
