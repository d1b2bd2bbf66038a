"""`unlearn demo --quick`: the whole demo path with tiny settings (pretrain, background retrain on Ray, audit,
requests, scheduled unlearning with verification and promotion, Tune when present, final audit, report), then a
resume that keeps every finished step."""

from __future__ import annotations

import json

import pytest

from orchestrator.cli import main
from orchestrator.ledger.db import Ledger
from orchestrator.results import store as results


@pytest.mark.slow
def test_quick_demo_end_to_end_and_resume(tmp_path, ray_session, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    printed = captured.out
    assert len((captured.out + captured.err).splitlines()) <= 60  # a log, not a scroll
    for n in range(1, 9):
        assert f"[{n}/8]" in printed
    table = printed.split("=" * 72, 1)[1]
    assert "promoted as the served model" in table
    assert all(name in table for name in ("original", "unlearned", "retrained", "gap to retrain"))
    assert f"report: {out / 'report' / 'report.html'}" in table

    with Ledger(out / "ledger" / "ledger.sqlite") as ledger:
        assert ledger.current_model()["version"] == 2
        requests = ledger.list_requests()
    assert len(requests) == 8 and {r["status"] for r in requests} == {"verified"}
    df = results.load(str(out / "results"))
    kinds = df["kind"].value_counts().to_dict()
    assert kinds["pretrain"] == 1 and kinds["retrain"] == 1 and kinds["scheduled-batch"] == 1
    assert kinds["tune-trial"] == 2
    assert kinds["evaluate"] == 8  # 4 attacks x (the audit of the original, the final audit)
    final = df[(df["kind"] == "evaluate") & (df["experiment"] == "main")]
    assert final["retrain_mia_accuracy"].notna().all() and final["before_mia_accuracy"].notna().all()
    report = (out / "report" / "report.md").read_text()
    assert "*Table II" in report and "*Scheduled deletion batches" in report
    assert json.loads((out / "demo.json").read_text())["quick"] is True

    # An interrupted demo continues where it stopped: the final audit is redone, nothing else is repeated.
    import shutil

    shutil.rmtree(out / "eval")
    assert main(["demo", "--resume", str(out)]) == 0
    printed = capsys.readouterr().out
    assert printed.count("already done") >= 3 and "unlearn pretrain" not in printed
    again = results.load(str(out / "results"))["kind"].value_counts().to_dict()
    assert again["pretrain"] == 1 and again["retrain"] == 1 and again["evaluate"] == 12
    assert ray_session.is_initialized()  # the session's Ray instance was used, not shut down

    assert main(["demo", "--resume", str(tmp_path)]) == 2
    assert "not a demo directory" in capsys.readouterr().err
