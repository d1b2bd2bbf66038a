"""`unlearn report` from a small synthetic results store: every table is there with the right numbers (means and
sds over seeds), the targets are marked met / missed, plots are copied, and bad input writes nothing."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from orchestrator import results
from orchestrator.cli import main
from orchestrator.report import targets_markdown, targets_table

SEEDS = (0, 1, 2)


def _eval_row(*, model="simclr", method="memgp", seed=0, experiment="main", before=0.80, after=0.52, retrain=0.50,
              util=(0.60, 0.55, 0.58), hp=None, forget_size=80, uri="u", plots=(), ablation=None, attack=None):
    utility_key = "test_acc" if model == "supervised" else "knn_acc"
    stage = lambda acc, u, top1: {"mia_accuracy": acc, "mia_auc": acc + 0.02, "mia_precision": acc,  # noqa: E731
                                  "mia_recall": acc, "mia_tpr_at_1fpr": 0.01, utility_key: u,
                                  "forget_top1": top1, "nonmember_top1": 0.5, "forget_loss": 1.0,
                                  "forget_cos_mean": 0.9}
    unlearning = {"method": method, "a": 1.0, "b": 1.0, "c": 0.0, "form": "squared", "train_term_source": "forget",
                  "epochs": 10, "lr": 1e-3, "runtime": {"seed": seed}, **(hp or {})}
    extra = {"primary": attack is None, "plots": list(map(str, plots))}
    if ablation:
        extra["ablation"] = ablation
    return results.make_row(
        kind="evaluate", dataset="cifar10", model=model, method=method, attack=attack or "encodermi_vector",
        experiment=experiment, forget_size=forget_size, num_members=400, checkpoint_uri=f"/ck/{uri}-{seed}",
        original_uri=f"/ck/original-{model}-{seed}", retrained_uri=f"/ck/retrain-{model}-{seed}",
        hyperparameters={"unlearning": unlearning, "data": {"split_seed": seed}, "runtime": {"seed": seed}},
        metrics={"before": stage(before, util[0], 0.9), "after": stage(after, util[1], 0.6),
                 "retrain": stage(retrain, util[2], 0.55)},
        gap_mia_accuracy=after - retrain, gap_mia_auc=after - retrain, leakage_vs_chance=abs(after - 0.5),
        extra=extra)


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("report")
    plot = root / "evals" / "roc.png"
    plot.parent.mkdir()
    plot.write_bytes(b"\x89PNG\r\n\x1a\nfake")
    rows = []
    for s in SEEDS:  # main: 3 seeds per model; the seed moves the numbers by 0.01 * s
        rows += [_eval_row(model=m, seed=s, before=b + 0.01 * s, after=0.52 + 0.01 * s, uri=f"memgp-{m}",
                           plots=[plot] if m == "simclr" else [])
                 for m, b in (("simclr", 0.80), ("moco", 0.70), ("byol", 0.78))]
        rows.append(_eval_row(seed=s, attack="confidence", after=0.60, uri="memgp-simclr"))  # not the primary one
        rows.append(_eval_row(model="supervised", seed=s, experiment="supervised", uri="sup"))
        rows.append(_eval_row(seed=s, experiment="tuned", after=0.50, hp={"a": 0.0, "b": 3.0}, uri="tuned"))
    for terms, weights in (("a+b+c", {"a": 1, "b": 1, "c": 0.1}), ("b", {"a": 0, "b": 1, "c": 0}),
                           ("a+b", {"a": 1, "b": 1, "c": 0})):
        rows.append(_eval_row(method="gp", experiment="ablation", hp=weights, after=0.5 + 0.1 * len(terms)))
    rows.append(_eval_row(method="memgp", experiment="ablation", hp={"train_term_source": "retain"}, after=0.44))
    rows.append(_eval_row(method="memgp", experiment="ablation", hp={"a": 0.0},
                          ablation={"terms": "b", "equation": "eq3", "train_term_source": "forget"}, after=0.50))
    for size in (40, 80, 200):
        rows.append(_eval_row(experiment="forget_size", forget_size=size, after=0.5 + size / 4000, uri=f"fs{size}"))
    for method in ("finetune", "neggrad_plus"):
        rows.append(_eval_row(method=method, experiment="baselines", after=0.56, uri=method))
    # the unlearn / retrain jobs behind the main simclr rows: their times give the time ratio
    for s in SEEDS:
        rows.append(results.make_row(kind="unlearn", dataset="cifar10", model="simclr", method="memgp",
                                     checkpoint_uri=f"/ck/memgp-simclr-{s}", unlearn_time_s=10.0))
        rows.append(results.make_row(kind="retrain", dataset="cifar10", model="simclr", method="retrain",
                                     checkpoint_uri=f"/ck/retrain-simclr-{s}", retrain_time_s=100.0))
    rows.append(results.make_row(kind="pretrain", dataset="cifar10", model="simclr", method="none", num_members=400,
                                 hyperparameters={"optim": {"epochs": 150}}, metrics={"before": {"knn_acc": 0.6}},
                                 wall_time_s=300.0))
    for trial, (objective, feasible) in enumerate(((0.08, True), (0.01, True), (0.0, False))):
        rows.append(results.make_row(kind="tune-trial", dataset="cifar10", model="simclr", method="memgp",
                                     experiment="tune-memgp-abc", trial_id=f"t{trial}",
                                     hyperparameters={"a": 0.0, "b": float(trial + 1)},
                                     metrics={"after": {"mia_accuracy": 0.5 + objective}},
                                     extra={"objective": objective, "feasible": feasible}))
    rows.append(results.make_row(kind="scheduled-batch", status="ok", dataset="digits", model="simclr",
                                 method="memgp", batch_id="1", forget_size=12,
                                 metrics={"before": {"mia_accuracy": 0.7, "knn_acc": 0.6},
                                          "after": {"mia_accuracy": 0.52, "knn_acc": 0.58}},
                                 extra={"version": 2}))
    results.append(str(root / "results"), rows)
    return root


def _table(markdown: str, caption_start: str) -> list[list[str]]:
    """The rows of the Markdown table whose caption starts with ``caption_start``."""
    block = markdown.split(f"*{caption_start}", 1)[1].split("\n\n", 2)[1]
    return [[c.strip() for c in line.strip("|").split(" | ")] for line in block.splitlines()[2:]]


def test_report_renders_every_table_with_seed_means(store, capsys):
    out = store / "report"
    assert main(["report", "--results", str(store / "results"), "--out", str(out)]) == 0
    assert "report.md" in capsys.readouterr().out
    md = (out / "report.md").read_text()
    html = (out / "report.html").read_text()
    for caption in ("Table II", "Table III", "Table IV", "Table V", "Table VI", "Table VII", "Baselines",
                    "Tune-found", "Tune searches", "Every attack", "Scheduled deletion batches", "Per-method gap",
                    "Targets on CPU scale", "Pretrained models"):
        assert f"*{caption}" in md, caption
        assert caption in html, caption
    assert "<table>" in html and "<img src=\"figures/attack_by_method.png\"" in html

    # Table III, simclr / memgp: mean and sample sd over the 3 seeds, primary attack only (not "confidence")
    simclr = next(r for r in _table(md, "Table III") if r[1] == "simclr")
    assert simclr[3] == "3"
    sd = np.std([0.80, 0.81, 0.82], ddof=1)
    assert simclr[7] == f"0.810 ± {sd:.3f}" and simclr[8] == f"0.530 ± {sd:.3f}" and simclr[9] == "0.500 ± 0.000"
    # Table II: three states per group, original first
    states = [r[4] for r in _table(md, "Table II") if r[1] == "moco"]
    assert states == ["original", "unlearned", "retrained"]

    # Table IV (Eq. 2): check marks for c / b / a; Table V (Eq. 3): the retain-set training term and the
    # explicitly described ablation row
    eq2 = _table(md, "Table IV")
    assert eq2[0][2] == "original"
    marks = {tuple(r[3:6]) for r in eq2[1:]}
    assert marks == {("✓", "✓", "✓"), ("×", "✓", "×"), ("×", "✓", "✓")}
    eq3 = _table(md, "Table V")
    assert {r[5] for r in eq3[1:]} == {"forget", "retain"}
    assert any(r[3:5] == ["✓", "×"] for r in eq3[1:])  # MemGP only (terms "b")

    sizes = _table(md, "Table VI")
    assert [r[3] for r in sizes[1:]] == ["40", "80", "200"] and [r[4] for r in sizes[1:]] == ["10%", "20%", "50%"]
    assert sizes[3][7] == "0.550"  # attack accuracy after at 200 forgotten
    assert _table(md, "Table VII")[0][:3] == ["cifar10", "memgp", "3"]

    gap = next(r for r in _table(md, "Per-method gap") if r[1] == "simclr" and r[3] == "main")
    assert gap[-1] == "0.100"  # unlearning 10 s / retraining 100 s
    baselines = _table(md, "Baselines")
    assert [r[2] for r in baselines] == ["finetune", "neggrad_plus", "retrain (reference)"]
    tuned = _table(md, "Tune-found")
    assert {r[3] for r in tuned} == {"paper default", "Tune-found"}
    assert any("a=0" in r[4] and "b=3" in r[4] for r in tuned)
    search = _table(md, "Tune searches")[0]
    assert search[2:6] == ["3", "3", "2", "0.010"]  # best feasible: objective 0.01 (the 0.0 one is infeasible)
    assert _table(md, "Scheduled deletion batches")[0][:5] == ["1", "ok", "2", "12", "0.700 -> 0.520"]

    # the evaluation's plot is copied next to the report and referenced relatively
    assert (out / "figures" / "cifar10-simclr-memgp" / "roc.png").read_bytes().startswith(b"\x89PNG")
    assert "figures/cifar10-simclr-memgp/roc.png" in md
    assert (out / "figures" / "attack_by_method.png").stat().st_size > 1000
    assert (out / "figures" / "forget_size.png").is_file()

    # regenerating replaces the previous report atomically
    assert main(["report", "--results", str(store / "results"), "--out", str(out)]) == 0
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".report")]


def test_targets_marked_met_or_missed(store):
    df = targets_table(results.load(str(store / "results")))
    by = {(r.model, r.experiment): r for r in df.itertuples()}
    simclr = by[("simclr", "main")]
    assert simclr.before_mia_accuracy == pytest.approx(0.81) and simclr.met_before
    assert simclr.vs_retrain == pytest.approx(0.03) and simclr.met_vs_retrain and simclr.met_vs_chance
    assert simclr.drop == pytest.approx(0.05) and simclr.met_drop and simclr.all_met
    moco = by[("moco", "main")]
    assert not moco.met_before and not moco.all_met  # 0.71 < 0.75
    assert by[("supervised", "supervised")].all_met and by[("simclr", "tuned")].all_met
    assert ("simclr", "ablation") not in by  # only main / tuned / supervised rows
    text = targets_markdown(df)
    assert re.search(r"\| cifar10 \| moco \| memgp \| main \| 3 \| 0\.710 ± 0\.010 MISSED \|", text)
    assert "| cifar10 | simclr | memgp | main | 3 | 0.810 ± 0.010 met |" in text


def test_report_errors_write_nothing(store, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("UNLEARN_RESULTS", raising=False)
    assert main(["report", "--results", str(tmp_path / "none"), "--out", str(tmp_path / "r")]) == 2
    assert "no rows in the results store" in capsys.readouterr().err
    other = tmp_path / "other"
    other.mkdir()
    (other / "keep.txt").write_text("x")
    assert main(["report", "--results", str(store / "results"), "--out", str(other)]) == 2
    assert "is not a report directory" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other"] and (other / "keep.txt").read_text() == "x"
    monkeypatch.chdir(tmp_path)  # the default store, ./results, does not exist here
    assert main(["report", "--out", str(tmp_path / "r")]) == 2
    assert "no rows in the results store" in capsys.readouterr().err
