"""Retention of failed batches' files (issue 18, case 9): `schedule run --keep-failed N` deletes the candidate
checkpoints and Ray Train run directories of all but the newest N failed batches; the ledger rows stay."""

from __future__ import annotations

import pytest

from orchestrator.cli import main
from orchestrator.ledger.db import Ledger
from tests.ledger_fakes import make_base_checkpoint
from trainables.data.splits import Splits

FAKE = ["--executor", "tests.ledger_fakes:FakeExecutor", "--escalate-after", "10"]


@pytest.fixture(scope="module")
def base_ckpt(tmp_path_factory):
    return make_base_checkpoint(tmp_path_factory.mktemp("base") / "pretrained")


def test_failed_batches_beyond_keep_are_cleaned_and_the_newest_kept(tmp_path, base_ckpt, monkeypatch, capsys):
    ledger = tmp_path / "ledger" / "ledger.sqlite"
    storage = tmp_path / "ray_runs"
    run = ["--ledger", str(ledger), "--storage", str(storage)]
    members = [int(i) for i in Splits.load(base_ckpt / "splits.parquet")["member"]]
    assert main(["models", "register", str(base_ckpt), "--ledger", str(ledger)]) == 0
    assert main(["requests", "add", "--subject", "s", "--sample-ids", str(members[0]), "--ledger", str(ledger)]) == 0
    monkeypatch.setenv("FAKE_ATTACK", "0.95")  # every verification fails: one failed batch per run
    for _ in range(3):
        assert main(["schedule", "run", *FAKE, *run, "--keep-failed", "2"]) == 1
    with Ledger(ledger) as led:
        names = [b["run_name"] for b in led.list_batches()]
        assert [b["state"] for b in led.list_batches()] == ["failed"] * 3  # rows and reasons stay
        assert len(led.events("retention_cleaned")) == 1
    models = ledger.parent / "models"
    assert sorted(p.name for p in models.iterdir()) == names[1:]
    assert sorted(p.name for p in storage.iterdir()) == names[1:]
    assert "retention: removed the files of failed batch(es) 1 (keeping the newest 2)" in capsys.readouterr().out

    monkeypatch.setenv("FAKE_ATTACK", "0.5")  # the next batch passes; --keep-failed 0 clears every failed one
    assert main(["schedule", "run", *FAKE, *run, "--keep-failed", "0"]) == 0
    with Ledger(ledger) as led:
        done = led.list_batches()[-1]["run_name"]
    assert [p.name for p in models.iterdir()] == [done]  # the promoted candidate is never touched
    assert sorted(p.name for p in storage.iterdir()) == [done]


def test_keep_failed_must_not_be_negative(tmp_path, capsys):
    assert main(["schedule", "run", "--keep-failed", "-1", "--ledger", str(tmp_path / "l.sqlite")]) == 2
    assert "--keep-failed must be 0 or more" in capsys.readouterr().err
