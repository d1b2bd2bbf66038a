"""Every job appends its results row: pretrain / forget / retrain (``--results`` or ``$UNLEARN_RESULTS``) and the
scheduler's ``scheduled-batch`` rows; a bad results path or tag fails before any work."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orchestrator.cli import main
from orchestrator.results import store as results
from tests.ledger_fakes import make_base_checkpoint
from trainables.data.splits import Splits

TINY = ["--dataset", "digits", "--epochs", "2", "--set", "data.image_size=16", "--set", "data.num_members=100",
        "--set", "data.num_nonmembers=100", "--set", "model.width=4", "--set", "model.proj_dim=8",
        "--set", "optim.batch_size=50", "--set", "eval.knn_k=5", "--set", "eval.linear_probe=false",
        "--set", "runtime.progress=false", "--set", "runtime.num_threads=1"]
QUIET = ["--set", "runtime.progress=false", "--set", "runtime.num_threads=1"]


def test_pretrain_forget_retrain_rows(tmp_path, monkeypatch, capsys):
    store = tmp_path / "results"
    monkeypatch.delenv("UNLEARN_RESULTS", raising=False)
    assert main(["pretrain", *TINY, "--out", str(tmp_path / "pre"), "--results", str(store),
                 "--experiment", "main", "--tag", "ablation={terms: a+b, equation: eq3}"]) == 0
    assert main(["forget", "--checkpoint", str(tmp_path / "pre"), "--method", "memgp", "--epochs", "2", "--set", "b=2",
                 *QUIET, "--out", str(tmp_path / "fg"), "--results", str(store)]) == 0
    monkeypatch.setenv("UNLEARN_RESULTS", str(store))  # the default when --results is not given
    assert main(["retrain", "--checkpoint", str(tmp_path / "pre"), "--set", "retrain_epochs=1", *QUIET,
                 "--out", str(tmp_path / "rt")]) == 0
    assert capsys.readouterr().out.count(f"results row appended to {store}") == 3

    df = results.load(str(store))
    assert list(df.columns) == list(results.COLUMNS)
    rows = {r["kind"]: r for r in df.to_dict("records")}
    assert set(rows) == {"pretrain", "unlearn", "retrain"}
    pre, fg, rt = rows["pretrain"], rows["unlearn"], rows["retrain"]
    for row, path in ((pre, "pre"), (fg, "fg"), (rt, "rt")):
        assert row["dataset"] == "digits" and row["model"] == "simclr" and row["num_members"] == 100
        assert row["checkpoint_uri"] == str((tmp_path / path).resolve())
        assert row["git_sha"] and json.loads(row["packages_json"])["torch"]
        assert row["wall_time_s"] > 0
    assert pre["method"] == "none" and pre["experiment"] == "main" and pre["hp_epochs"] == 2
    assert json.loads(pre["extra_json"])["ablation"] == {"terms": "a+b", "equation": "eq3"}
    assert 0 <= pre["before_knn_acc"] <= 1 and pre["after_knn_acc"] is None
    forget = len(Splits.load(tmp_path / "pre" / "splits.parquet")["forget"])
    assert fg["method"] == "memgp" and fg["forget_size"] == forget and fg["hp_b"] == 2 and fg["hp_epochs"] == 2
    assert fg["parent_uri"] == str((tmp_path / "pre").resolve()) and fg["unlearn_time_s"] > 0
    assert 0 <= fg["after_knn_acc"] <= 1 and 0 <= fg["before_knn_acc"] <= 1  # monitor before and after
    assert "memgp" in json.loads(fg["metrics_json"])["after"]  # the loss components too
    assert json.loads(fg["hp_json"])["unlearning.b"] == 2
    assert rt["method"] == "retrain" and rt["retrain_time_s"] > 0 and 0 <= rt["retrain_knn_acc"] <= 1


def test_without_results_path_rows_go_to_results_in_the_working_directory_and_bad_input_writes_nothing(
        tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("UNLEARN_RESULTS", raising=False)
    monkeypatch.chdir(tmp_path)
    base = make_base_checkpoint(tmp_path / "base")
    assert main(["forget", "--checkpoint", str(base), "--epochs", "1", *QUIET, "--out", "fg"]) == 0
    assert "results row appended to results" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["base", "fg", "results"]
    assert list(results.load("results")["kind"]) == ["unlearn"]
    assert main(["forget", "--checkpoint", str(base), "--epochs", "1", *QUIET, "--out", "fg2",
                 "--results", "nosuchscheme://bucket/x"]) == 2
    assert "cannot open results path" in capsys.readouterr().err
    assert main(["pretrain", *TINY, "--out", "pre", "--tag", "no-equals-sign"]) == 2
    assert "expects key=value" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["base", "fg", "results"]
    assert len(results.load("results")) == 1


@pytest.fixture
def ledger(tmp_path, monkeypatch) -> tuple[Path, list[int]]:
    path = tmp_path / "ledger" / "ledger.sqlite"
    monkeypatch.setenv("UNLEARN_LEDGER", str(path))
    monkeypatch.delenv("FAKE_ATTACK", raising=False)
    base = make_base_checkpoint(tmp_path / "base")
    assert main(["models", "register", str(base)]) == 0
    return path, [int(i) for i in Splits.load(base / "splits.parquet")["member"]]


def test_schedule_appends_a_row_per_promoted_or_failed_batch(ledger, tmp_path, monkeypatch):
    _, members = ledger
    store = tmp_path / "results"
    fake = ["--executor", "tests.ledger_fakes:FakeExecutor", "--results", str(store)]
    assert main(["requests", "add", "--subject", "a", "--sample-ids", ",".join(map(str, members[:3]))]) == 0
    assert main(["schedule", "run", *fake]) == 0
    monkeypatch.setenv("FAKE_ATTACK", "0.9")  # far from chance: verification fails
    assert main(["requests", "add", "--subject", "b", "--sample-ids", ",".join(map(str, members[3:6]))]) == 0
    assert main(["schedule", "run", *fake]) == 1
    assert main(["schedule", "run", *fake, "--dry-run"]) == 0  # plans only: no row

    df = results.load(str(store), kinds=["scheduled-batch"]).sort_values("batch_id")
    assert list(df["batch_id"]) == ["1", "2"] and list(df["status"]) == ["ok", "failed"]
    ok, failed = df.to_dict("records")
    assert ok["forget_size"] == 3 and 0.3 < ok["after_mia_auc"] < 0.7 < 0.9 < ok["before_mia_auc"]
    assert ok["before_knn_acc"] == 0.80 and ok["after_knn_acc"] == 0.79 and ok["dataset"] == "digits"
    assert json.loads(ok["extra_json"])["version"] == 2 and ok["checkpoint_uri"].endswith("batch-000001")
    extra = json.loads(failed["extra_json"])
    assert failed["after_mia_auc"] > 0.9 and extra["version"] is None and "verification failed" in extra["reason"]
    assert extra["verification"]["verification"]["verdict"] == "failed"
