"""The real executor end to end on digits: pretrain a tiny encoder, register it, add requests, run the schedule
(memgp unlearning in-process + the membership-inference verification), in-process and without Ray workers."""

from __future__ import annotations

import pytest

from orchestrator.cli import main
from orchestrator.ledger.db import Ledger
from tests.conftest import tiny_job
from tests.ledger_fakes import ledger_problems
from trainables.checkpoint import read_meta

pytest.importorskip("trainables.unlearning.config", reason="needs the unlearning feature")
pytest.importorskip("trainables.audit.forgetting", reason="needs the evaluation feature")

FAST = ["--set", "epochs=2", "--set", "batch_size=32", "--set", "runtime.progress=false",
        "--attack-set", "n_views=4", "--attack-set", "max_fit=60"]


@pytest.mark.slow
def test_real_executor_promotes_a_verified_version_and_refuses_a_failing_one(tmp_path, monkeypatch, capsys):
    from orchestrator.run.jobs import run_pretrain

    job = tiny_job("simclr", data={"num_members": 120, "num_nonmembers": 120}, optim={"epochs": 2},
                   eval={"knn_k": 10, "linear_probe": False})
    base, _ = run_pretrain(job, tmp_path / "pretrained")
    ledger = tmp_path / "ledger" / "ledger.sqlite"
    monkeypatch.setenv("UNLEARN_LEDGER", str(ledger))
    assert main(["models", "register", str(base)]) == 0
    from trainables.data.splits import Splits

    members = [int(i) for i in Splits.load(base / "splits.parquet")["member"]]
    assert main(["requests", "add", "--subject", "a", "--sample-ids", ",".join(map(str, members[:12]))]) == 0
    # A 2-epoch model may show no membership signal: promote on no-signal, this checks the plumbing (the gate's
    # rules have their own tests in tests/test_gate.py).
    wide = ["--max-accuracy-drop", "1", "--on-no-signal", "promote"]
    assert main(["schedule", "run", *FAST, *wide]) == 0
    with Ledger(ledger) as led:
        current = led.current_model()
        batch = led.get_batch(1)
    v = batch["metrics"]["verification"]
    assert current["version"] == 2 and current["forgotten_ids"] == sorted(members[:12])
    assert v["verdict"] in ("verified", "no-signal") and current["evidence"] == v["verdict"]
    assert (v["n_forget"], v["attack"]) == (12, "encodermi_vector") and 0 <= v["p_value"] <= 1
    assert all(0 <= v["utility"][k] <= 1 for k in ("parent", "candidate"))
    from orchestrator.ledger.evidence import read_evidence

    rows = read_evidence(ledger, 1, sha256=batch["evidence_sha256"]).to_pylist()
    assert sorted(r["sample_id"] for r in rows if (r["role"], r["model"]) == ("forget", "parent")) == sorted(members[:12])
    meta = read_meta(current["uri"])
    assert meta["kind"] == "unlearn" and meta["parent"]["path"] == str(base.resolve())
    assert ledger_problems(ledger) == []

    # A second batch passes too, and its verification re-attacked the first batch's ids (relearning check).
    assert main(["requests", "add", "--subject", "b", "--sample-ids", ",".join(map(str, members[12:20]))]) == 0
    assert main(["schedule", "run", *FAST, *wide]) == 0
    with Ledger(ledger) as led:
        assert led.get_batch(2)["metrics"]["verification"]["n_earlier"] == 12 and led.current_model()["version"] == 3

    # A third batch whose unlearning blows up (the loop's explosion guard) fails: nothing promoted, re-queued
    # without using a retry (a fault of the job, not a verification failure).
    assert main(["requests", "add", "--subject", "c", "--sample-ids", ",".join(map(str, members[20:24]))]) == 0
    capsys.readouterr()
    assert main(["schedule", "run", *FAST, *wide, "--set", "explode_limit=1e-9"]) == 1
    assert "batch 3 failed, nothing promoted (version 3 stays current): unlearning failed" in capsys.readouterr().err
    with Ledger(ledger) as led:
        assert led.current_model()["version"] == 3
        assert [(r["status"], r["retry_count"]) for r in led.list_requests(status=["pending"])] == [("pending", 0)]
    assert ledger_problems(ledger) == []
