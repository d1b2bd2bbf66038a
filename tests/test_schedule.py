"""`unlearn requests|models|schedule` end to end in-process, with a tiny real checkpoint and the fake executor."""

from __future__ import annotations

import json

import pytest

from orchestrator.cli import main
from orchestrator.ledger.db import Ledger, utc_now
from orchestrator.ledger.lease import Lease
from tests.ledger_fakes import ledger_problems, make_base_checkpoint, registered_ledger

FAKE = ["--executor", "tests.ledger_fakes:FakeExecutor"]


@pytest.fixture(scope="module")
def base_ckpt(tmp_path_factory):
    return make_base_checkpoint(tmp_path_factory.mktemp("base") / "pretrained")


@pytest.fixture
def setup(tmp_path, base_ckpt, monkeypatch):
    """A ledger with the base model registered; returns (ledger path, member ids, non-member ids)."""
    path, splits = registered_ledger(tmp_path, base_ckpt, monkeypatch)
    return path, [int(i) for i in splits["member"]], [int(i) for i in splits["nonmember_eval"]]


def ids(values) -> str:
    return ",".join(map(str, values))


def test_registering_a_bad_checkpoint_creates_no_ledger(tmp_path, capsys):
    ledger = tmp_path / "l" / "ledger.sqlite"
    assert main(["models", "register", str(tmp_path / "missing"), "--ledger", str(ledger)]) == 2
    assert "checkpoint not found" in capsys.readouterr().err and not ledger.parent.exists()
    assert main(["requests", "list", "--ledger", str(ledger)]) == 2
    assert "no ledger at" in capsys.readouterr().err


def test_add_schedule_verify_promote_twice(setup, capsys):
    path, members, _ = setup
    assert main(["requests", "add", "--subject", "alice", "--sample-ids", ids(members[:3])]) == 0
    assert main(["requests", "add", "--subject", "bob", "--sample-ids", ids(members[3:5])]) == 0
    assert main(["schedule", "run", *FAKE]) == 0
    assert "model version 2 is now current" in capsys.readouterr().out
    assert main(["requests", "add", "--subject", "carol", "--sample-ids", ids(members[5:7])]) == 0
    assert main(["schedule", "run", *FAKE]) == 0
    with Ledger(path) as led:
        current = led.current_model()
        assert current["version"] == 3 and [m["version"] for m in led.lineage(3)] == [3, 2, 1]
        assert current["forgotten_ids"] == sorted(members[:7])
        assert {r["status"] for r in led.list_requests()} == {"verified"}
        assert [b["forget_ids"] for b in led.list_batches()] == [sorted(members[:5]), sorted(members[5:7])]
        assert len(led.list_requests(batch_id=1)) == 2
    assert ledger_problems(path) == []
    capsys.readouterr()
    assert main(["requests", "list", "--status", "verified"]) == 0
    assert main(["models", "list"]) == 0
    assert main(["models", "current"]) == 0
    assert main(["schedule", "status"]) == 0
    out = capsys.readouterr().out
    assert out.count("verified") >= 3 and "lineage       3 <- 2 <- 1" in out
    assert "scheduler lock: free" in out and "requests: verified 3" in out and "open batch: none" in out


def test_requests_add_rejects_bad_ids_and_writes_nothing(setup, capsys, tmp_path):
    path, members, nonmembers = setup
    capsys.readouterr()
    assert main(["requests", "add", "--subject", "x", "--sample-ids", ids([members[0], nonmembers[0]])]) == 2
    assert f"not members of the current model's training set, so there is nothing to unlearn: {nonmembers[0]}" \
        in capsys.readouterr().err
    assert main(["requests", "add", "--subject", "x", "--sample-ids", "1,a"]) == 2
    assert main(["requests", "add", "--sample-ids", "1"]) == 2
    assert main(["requests", "add", "--subject", "a", "--sample-ids", ids(members[:2])]) == 0
    assert main(["schedule", "run", *FAKE]) == 0
    capsys.readouterr()
    assert main(["requests", "add", "--subject", "b", "--sample-ids", ids(members[1:3])]) == 2
    assert f"already forgotten by the current model (version 2): {members[1]}" in capsys.readouterr().err
    csv = tmp_path / "requests.csv"
    csv.write_text(f'subject_id,sample_ids,request_id\nc,"{ids(members[5:7])}",crm-1\nd,{members[8]},crm-2\n')
    for _ in range(2):  # re-importing the same file adds nothing twice
        assert main(["requests", "add", "--file", str(csv)]) == 0
    with Ledger(path) as led:
        assert [r["request_id"] for r in led.list_requests()] == ["req-000001", "crm-1", "crm-2"]
    assert main(["requests", "show", "crm-1"]) == 0 and main(["requests", "show", "nope"]) == 2


def test_failed_verification_leaves_the_current_model_untouched_then_escalates(setup, capsys, monkeypatch):
    path, members, _ = setup
    assert main(["requests", "add", "--subject", "a", "--sample-ids", ids(members[:4])]) == 0
    monkeypatch.setenv("FAKE_ATTACK", "0.9")  # the attack still finds the forget set
    assert main(["schedule", "run", *FAKE, "--escalate-after", "2"]) == 1
    err = capsys.readouterr().err
    assert "batch 1 failed, nothing promoted (version 1 stays current)" in err and "still detectable" in err
    with Ledger(path) as led:
        assert led.current_model()["version"] == 1 and len(led.list_models()) == 1
        request = led.list_requests()[0]
        assert (request["status"], request["retry_count"]) == ("pending", 1)
        batch = led.get_batch(1)
        assert batch["state"] == "failed" and batch["verdict"] == "failed" and batch["p_value"] < 0.05
        assert batch["metrics"]["verification"]["verdict"] == "failed"
    assert main(["schedule", "run", *FAKE, "--escalate-after", "2"]) == 3
    assert "ESCALATION: 1 deletion requests failed 2 batches" in capsys.readouterr().err
    assert main(["schedule", "run", *FAKE]) == 3  # still escalated on the next run, nothing pending
    assert main(["requests", "retry", "--failed"]) == 0
    monkeypatch.setenv("FAKE_ATTACK", "0.52")
    assert main(["schedule", "run", *FAKE]) == 0
    assert ledger_problems(path) == []


def test_unlearning_error_fails_the_batch_with_its_reason(setup, monkeypatch):
    path, members, _ = setup
    assert main(["requests", "add", "--subject", "a", "--sample-ids", str(members[0])]) == 0
    monkeypatch.setenv("FAKE_UNLEARN_ERROR", "loss is NaN at epoch 3 (term gp)")
    assert main(["schedule", "run", *FAKE, "--escalate-after", "1"]) == 1
    with Ledger(path) as led:
        assert led.get_batch(1)["reason"] == "unlearning failed: RuntimeError: loss is NaN at epoch 3 (term gp)"
        assert led.current_model()["version"] == 1
        # a fault of the job, not a verification failure: no retry used, so no escalation even at --escalate-after 1
        assert (led.list_requests()[0]["status"], led.list_requests()[0]["retry_count"]) == ("pending", 0)


def test_tampered_checkpoint_is_refused_at_load(setup, capsys, tmp_path, base_ckpt):
    path, members, _ = setup
    assert main(["requests", "add", "--subject", "a", "--sample-ids", ids(members[:2])]) == 0
    assert main(["schedule", "run", *FAKE]) == 0
    with Ledger(path) as led:
        candidate = led.current_model()["uri"]
    weights = f"{candidate}/model.pt"
    data = bytearray(open(weights, "rb").read())
    data[-1] ^= 0xFF
    open(weights, "wb").write(data)
    # intake checks the ledger's own copy of the member set: a deletion request is recorded all the same
    assert main(["requests", "add", "--subject", "b", "--sample-ids", str(members[3])]) == 0
    assert main(["schedule", "run", *FAKE]) == 2  # but nothing trains from the tampered model
    assert main(["models", "current"]) == 2
    assert "failed verification: sha256 of model.pt" in capsys.readouterr().err
    with Ledger(path) as led:
        assert len(led.list_batches()) == 1 and [r["status"] for r in led.list_requests()] == ["verified", "pending"]
    data[-1] ^= 0xFF  # restore the weights, then swap in a self-consistent but different meta.json
    open(weights, "wb").write(data)
    meta = json.loads(open(f"{candidate}/meta.json").read())
    meta["forgotten_ids"] = []
    open(f"{candidate}/meta.json", "w").write(json.dumps(meta))
    assert main(["schedule", "run", *FAKE]) == 2
    assert "was modified after registration" in capsys.readouterr().err


def test_trigger_min_batch_max_age_and_dry_run(setup, capsys):
    path, members, _ = setup
    old = utc_now(-3 * 3600)
    assert main(["requests", "add", "--subject", "a", "--sample-ids", str(members[0]), "--received-at", old]) == 0
    capsys.readouterr()
    assert main(["schedule", "run", *FAKE, "--min-batch", "5"]) == 0
    assert "nothing to do: 1 pending requests (< min-batch 5), oldest 3.0 h" in capsys.readouterr().out
    with Ledger(path) as led:
        events = len(led.events())
    assert main(["schedule", "run", *FAKE, "--min-batch", "5", "--max-age", "2", "--dry-run"]) == 0
    assert "would batch 1 requests (1 new sample ids) as batch 1" in capsys.readouterr().out
    with Ledger(path) as led:
        assert len(led.events()) == events and led.list_batches() == []
    assert main(["schedule", "run", *FAKE, "--min-batch", "5", "--max-age", "2"]) == 0
    assert "oldest pending request is 3.0 h old >= max-age 2" in capsys.readouterr().out


def test_rollback_requeues_what_the_retired_versions_forgot(setup, capsys):
    path, members, _ = setup
    for chunk in (members[:2], members[2:4]):
        assert main(["requests", "add", "--subject", "s", "--sample-ids", ids(chunk)]) == 0
        assert main(["schedule", "run", *FAKE]) == 0
    assert main(["models", "rollback", "2"]) == 0
    assert "1 verified request(s) are pending again" in capsys.readouterr().out
    with Ledger(path) as led:
        assert led.current_model()["version"] == 2 and led.get_model(3)["retired_at"]
        assert [r["status"] for r in led.list_requests()] == ["verified", "pending"]
        assert led.get_batch(2)["state"] == "rolled_back"
    assert main(["models", "rollback", "3"]) == 2  # not an ancestor of the current version
    assert main(["schedule", "run", *FAKE]) == 0
    with Ledger(path) as led:
        assert led.current_model()["version"] == 4 and led.current_model()["parent"] == 2
    assert ledger_problems(path) == []


def test_a_run_while_another_holds_the_lock_exits_75(setup, capsys):
    path, members, _ = setup
    assert main(["requests", "add", "--subject", "a", "--sample-ids", str(members[0])]) == 0
    with Lease(path, timeout_s=60):
        assert main(["schedule", "run", *FAKE]) == 75
        assert main(["models", "rollback", "1"]) == 2
    assert "holds the scheduler lock" in capsys.readouterr().err
    with Ledger(path) as led:
        assert led.list_batches() == [] and led.list_requests()[0]["status"] == "pending"


def test_promoting_a_replacement_must_keep_verified_deletions(setup, capsys, base_ckpt, tmp_path):
    path, members, _ = setup
    assert main(["requests", "add", "--subject", "a", "--sample-ids", str(members[0])]) == 0
    assert main(["schedule", "run", *FAKE]) == 0
    other = make_base_checkpoint(tmp_path / "other")
    capsys.readouterr()
    assert main(["models", "register", str(other), "--promote"]) == 2
    assert "bypasses the verification gate" in capsys.readouterr().err
    # even forced, a replacement must keep every verified deletion
    assert main(["models", "register", str(other), "--promote", "--force", "--reason", "test"]) == 2
    assert "does not forget 1 ids of verified deletion requests" in capsys.readouterr().err
    assert main(["models", "register", str(base_ckpt)]) == 0  # the same checkpoint again: no new version
    with Ledger(path) as led:
        assert len(led.list_models()) == 2


def test_real_executor_names_the_ray_run_after_the_batch(tmp_path):
    from orchestrator.ledger.executors import RayExecutor, load_executor

    executor = load_executor("ray", workers=2, use_gpu=False, storage_path=str(tmp_path))
    assert isinstance(executor, RayExecutor)

    options = executor.ray_options("unlearn-ab-batch-000007")
    assert (options.run_name, options.storage, options.workers) == ("unlearn-ab-batch-000007", str(tmp_path), 2)
    assert main(["schedule", "run", "--executor", "no_such_module:X", "--ledger", str(tmp_path / "l")]) == 2


def test_a_run_resumes_the_open_batch_then_batches_what_arrived_since(setup, capsys):
    from orchestrator.ledger.transitions import create_batch

    path, members, _ = setup
    assert main(["requests", "add", "--subject", "a", "--sample-ids", str(members[0])]) == 0
    with Ledger(path) as led, Lease(path) as lease:  # as if a run died right after batching
        create_batch(led, lease, config={"fake": {"epochs": 1}, "verify": {}})
    assert main(["requests", "add", "--subject", "b", "--sample-ids", str(members[1])]) == 0
    capsys.readouterr()
    assert main(["schedule", "run", *FAKE]) == 0
    out = capsys.readouterr().out
    assert "resuming batch 1 from state batched" in out and "batch 2: 1 requests" in out
    with Ledger(path) as led:
        assert [m["batch_id"] for m in led.list_models()] == [None, 1, 2]
        assert read_meta_epochs(led.get_model(2)["uri"]) == [1]  # the resumed batch kept its frozen config
    assert ledger_problems(path) == []


def read_meta_epochs(uri: str) -> list[int]:
    from trainables.checkpoint import read_meta

    return read_meta(uri)["epochs_run"]
