"""`unlearn tune` end to end on digits (the shared 2-CPU Ray session): rows, the best feasible trial and its YAML
that `forget` and the scheduler accept, a cap that excludes trials, resume after an interruption, Train-inside-Tune,
and bad inputs (exit 2, nothing written)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from orchestrator.cli import build_parser, main
from orchestrator.tune.outcome import load_trials
from tests.tune_helpers import tiny_checkpoint, write_space

FAST_ATTACK = ["--attack", "n_views=4", "--attack", "attacks=[encodermi_vector, confidence]"]
DOCUMENTED = ("trial_id", "experiment", "status", "method", "hp_lr", "hp_b", "hp_json", "before_mia_accuracy",
              "after_mia_accuracy", "after_mia_auc", "before_knn_acc", "after_knn_acc", "leakage_vs_chance",
              "wall_time_s", "unlearn_time_s", "eval_time_s", "objective", "objective_name", "feasible",
              "accuracy_drop", "accuracy_metric", "cap", "constraint", "epochs_run", "stopped_early", "sampled",
              "protocol", "space")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return tiny_checkpoint(tmp_path_factory.mktemp("tune") / "base")


def _tune(checkpoint, space, out, results, *extra):
    return ["tune", "--checkpoint", str(checkpoint), "--space", str(space), "--out", str(out),
            "--results", str(results), *FAST_ATTACK, *extra]


@pytest.mark.slow
def test_search_writes_a_row_per_trial_and_picks_the_best_feasible(ray_session, checkpoint, tmp_path, capsys):
    # lr from negligible to destructive: the start points guarantee feasible and cap-violating trials
    space = write_space(tmp_path / "space.yaml", {"lr": {"type": "loguniform", "low": 1e-5, "high": 0.5},
                                                  "b": {"type": "loguniform", "low": 0.1, "high": 10.0}},
                        fixed={"form": "squared"}, start=[{"lr": 1e-5, "b": 1.0}, {"lr": 0.5, "b": 1.0}])
    out, results = tmp_path / "out", tmp_path / "results"
    code = main(_tune(checkpoint, space, out, results, "--samples", "5", "--cap", "0.05", "--set", "epochs=2",
                      "--asha", "--seed", "3"))
    printed = capsys.readouterr()
    assert code == 0, printed.err[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    df = load_trials(str(results), experiment=summary["search"])
    assert len(df) == 5 and df["trial_id"].nunique() == 5
    assert set(DOCUMENTED) <= set(df.columns)
    assert (df["kind"] == "tune-trial").all() and (df["method"] == "memgp").all()
    assert df["before_mia_accuracy"].nunique() == 1  # every trial starts from the same original model
    ok = df[df["status"] == "ok"]
    assert (ok["feasible"] == (ok["accuracy_drop"] <= 0.05)).all()
    assert (~df["feasible"]).any(), "the destructive start point should violate the cap"
    feasible = df[df["feasible"]]
    best = df.set_index("trial_id").loc[summary["best"]["trial_id"]]
    assert best["feasible"] and best["objective"] == feasible["objective"].min()
    assert (df["epochs_run"] >= 1).all() and (df["epochs_run"] <= 2).all()  # ASHA may stop at epoch 1
    assert "best feasible trial" in printed.out and "best.yaml" in printed.out

    best_yaml = out / "best.yaml"
    config = yaml.safe_load(best_yaml.read_text())
    assert config["method"] == "memgp" and config["lr"] == pytest.approx(json.loads(best["sampled"])["lr"]
                                                                          if isinstance(best["sampled"], str)
                                                                          else best["sampled"]["lr"])
    assert config["epochs"] == best["epochs_run"]
    # both consumers load it: `unlearn forget --config` runs it, the scheduler's executor resolves it
    assert main(["forget", "--checkpoint", str(checkpoint), "--config", str(best_yaml), "--out",
                 str(tmp_path / "forgot"), "--set", "runtime.progress=false"]) == 0
    from orchestrator.ledger.executors import RayExecutor
    from orchestrator.ledger.verification import VerifyConfig

    resolved = RayExecutor().resolve_config(str(best_yaml), [], VerifyConfig())
    assert resolved["job"]["lr"] == pytest.approx(config["lr"]) and resolved["job"]["method"] == "memgp"


@pytest.mark.slow
def test_an_interrupted_search_resumes_without_rerunning_finished_trials(ray_session, checkpoint, tmp_path):
    from orchestrator.commands.tune import settings_from_args
    from orchestrator.tune.search import run_search

    space = write_space(tmp_path / "space.yaml", {"lr": {"type": "loguniform", "low": 1e-5, "high": 1e-4}})
    out, results = tmp_path / "out", tmp_path / "results"
    argv = _tune(checkpoint, space, out, results, "--samples", "4", "--cap", "0.5", "--set", "epochs=1",
                 "--keep-models")
    assert main(argv + ["--interrupt-after", "2"]) == 130
    first = load_trials(str(results))
    assert 2 <= len(first) < 4 and not (out / "best.yaml").exists()
    assert json.loads((out / "summary.json").read_text())["interrupted"] is True

    outcome = run_search(settings_from_args(build_parser().parse_args(argv + ["--resume"])))
    assert not outcome.interrupted and len(outcome.finished) == 4 and outcome.best is not None
    rows = load_trials(str(results))
    assert len(rows) == 4 and rows["trial_id"].nunique() == 4  # rows of the first run are not written twice
    again = {t.trial_id: t.result for t in outcome.trials}
    for _, row in first.iterrows():  # same process and report time: the trial ran once, in the first run
        extra = json.loads(row["extra_json"])
        assert (again[row["trial_id"]]["pid"], again[row["trial_id"]]["timestamp"]) == (extra["pid"],
                                                                                          extra["timestamp"])
    assert (out / "best.yaml").exists()
    for uri in rows["checkpoint_uri"]:  # --keep-models: every trial's unlearned checkpoint, linked to its parent
        meta = json.loads((Path(uri) / "meta.json").read_text())
        assert meta["kind"] == "unlearn" and meta["parent"]["path"] == str(checkpoint.resolve())


@pytest.mark.slow
def test_no_feasible_trial_exits_1_and_still_writes_every_row(ray_session, checkpoint, tmp_path, capsys):
    space = write_space(tmp_path / "space.yaml", {"lr": {"type": "loguniform", "low": 0.2, "high": 0.5}})
    out, results = tmp_path / "out", tmp_path / "results"
    assert main(_tune(checkpoint, space, out, results, "--samples", "2", "--cap", "0.01", "--set", "epochs=2",
                      "--set", "a=0")) == 1
    assert "no feasible trial" in capsys.readouterr().err
    rows = load_trials(str(results))
    assert len(rows) == 2 and not rows["feasible"].any()
    assert not (out / "best.yaml").exists() and json.loads((out / "summary.json").read_text())["best"] is None


@pytest.mark.slow
def test_multi_worker_trials_drive_ray_train(ray_session, checkpoint, tmp_path):
    out, results = tmp_path / "out", tmp_path / "results"
    code = main(_tune(checkpoint, "finetune", out, results, "--samples", "1", "--set", "epochs=1", "--cap", "0.5",
                      "--workers-per-trial", "2", "--cpus-per-trial", "0.5"))
    assert code == 0
    row = load_trials(str(results)).iloc[0]
    assert row["status"] == "ok" and row["checkpoint_uri"].startswith(str(out / "trials"))
    meta = json.loads((out / "trials" / row["trial_id"] / "meta.json").read_text())
    assert meta["distributed"]["workers"] == 2 and meta["unlearning"]["method"] == "finetune"


@pytest.mark.parametrize("extra, message", [
    (["--space", "nope"], "unknown search space 'nope'"),
    (["--space", "BAD"], "unknown type 'gaussian'"),
    (["--cap", "0"], "--cap must be in (0, 1)"),
    (["--cap", "1.5"], "--cap must be in (0, 1)"),
    (["--objective", "gap_to_retrain"], "--retrained"),
    (["--objective", "target_distance"], "--retrained"),
    (["--samples", "0"], "--samples must be at least 1"),
    (["--resume"], "holds no search to resume"),
    (["--asha", "--workers-per-trial", "2"], "--workers-per-trial 1"),
])
def test_bad_inputs_exit_2_and_write_nothing(tmp_path, capsys, extra, message):
    bad = write_space(tmp_path / "bad.yaml", {"lr": {"type": "gaussian", "low": 1, "high": 2}})
    extra = [str(bad) if e == "BAD" else e for e in extra]
    out, results = tmp_path / "out", tmp_path / "results"
    argv = ["tune", "--checkpoint", str(tmp_path / "missing"), "--space", "memgp", "--out", str(out),
            "--results", str(results), *extra]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.startswith("error:") and "Traceback" not in err
    assert not out.exists() and not results.exists()


def test_existing_out_needs_resume(tmp_path, capsys, checkpoint):
    out = tmp_path / "out"
    out.mkdir()
    (out / "something").write_text("x")
    assert main(["tune", "--checkpoint", str(checkpoint), "--space", "memgp", "--out", str(out), "--results",
                 str(tmp_path / "results")]) == 2
    assert "pass --resume" in capsys.readouterr().err and not (tmp_path / "results").exists()
