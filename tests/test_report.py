"""`unlearn report` from a small synthetic results store: every table is there with the right numbers (means and
sds over seeds), the targets are marked met / missed, plots are copied, and bad input writes nothing."""

from __future__ import annotations

import base64
import re
from html import unescape
from pathlib import Path

import numpy as np
import pytest

from orchestrator.cli import main
from orchestrator.report import targets_markdown, targets_table
from orchestrator.report.render import find_browser, screenshot
from orchestrator.results import store as results

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
    assert "<table>" in html and "](figures/attack_by_method.png)" in md  # Markdown links, HTML embeds

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


def _report(store) -> tuple[str, str]:
    out = store / "report-html"
    if not (out / "report.html").is_file():
        assert main(["report", "--results", str(store / "results"), "--out", str(out)]) == 0
    return (out / "report.html").read_text(), (out / "report.md").read_text()


def test_html_is_one_self_contained_file(store):
    html, _ = _report(store)
    refs = re.findall(r"""\b(?:src|href)\s*=\s*["']([^"']*)["']""", html)
    assert refs and all(r.startswith(("#", "data:")) for r in refs), [r for r in refs if r[:5] != "data:"]
    assert not re.search(r"https?://|url\(|@import|<link|<script", html)
    images = re.findall(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    assert len(images) == 3  # attack_by_method, forget_size and the evaluation's roc.png
    assert base64.b64decode(images[-1]).startswith(b"\x89PNG")
    assert "@media print" in html and "break-inside:avoid" in html and "@page" in html


def test_verdict_comes_first_with_one_sentence_per_batch_and_model(store):
    html, md = _report(store)
    body = html.split("<body>", 1)[1]
    assert body.index('id="verdict"') < body.index('class="verdict"') < body.index("<nav") < body.index("<table")
    assert re.findall(r"<h2[^>]*>([^<]*)</h2>", body)[0] == "Verdict"
    verdict = body.split('class="verdict"', 1)[1].split("</section>", 1)[0]
    assert "1 of 1 deletion batch promoted; 4 of 5 evaluated models meet every target." in verdict
    items = re.findall(r'<li class="(\w+)"><span class="mark">([^<]*)</span>(.*?)</li>', verdict)
    assert [(c, m) for c, m, _ in items] == [("met", "✓ promoted")] + [("met", "✓ meets every target")] + [
        ("missed", "✗ misses 1 of 4 targets")] + [("met", "✓ meets every target")] * 3
    assert items[0][2].startswith("Batch 1 (12 ids; digits / simclr / memgp): now served as version 2")
    assert "cifar10 / moco / memgp, main, 3 runs: the original model&#x27;s attack accuracy 0.710 &lt; 0.75" in items[2][2]
    assert md.index("**1 of 1 deletion batch promoted") < md.index("**Contents**") < md.index("## Targets")


def test_table_of_contents_links_resolve_and_cover_every_section(store):
    html, md = _report(store)
    nav = html.split("<nav", 1)[1].split("</nav>", 1)[0]
    links = re.findall(r'href="#([^"]+)"', nav)
    ids = re.findall(r'<h[23] id="([^"]+)"', html)
    assert links == ids and len(set(ids)) == len(ids)  # every h2 / h3, in order, each id unique
    assert {"verdict", "targets", "the-papers-tables", "table-ii-before-vs-after-vs-retrain", "runs"} <= set(ids)
    assert "- [The paper's tables](#the-papers-tables)" in md


def test_numbers_right_text_left_and_met_missed_in_words_and_colour(store):
    html, _ = _report(store)
    targets = html.split('id="targets"', 1)[1].split("</table>", 1)[0]
    head = re.findall(r"<th( class=\"num\")?>([^<]*)</th>", targets)
    assert [unescape(h) for c, h in head if c] == ["n", "attack before >= 0.75", "|after - retrain| <= 0.05",
                                         "|after - 0.5| <= 0.05", "utility drop <= 0.10"]
    moco = next(r for r in targets.split("<tr>") if "<td>moco</td>" in r)
    assert '<td class="num missed">0.710 ± 0.010 <span class="mark">✗ MISSED</span></td>' in moco
    assert '<td class="num met">0.030 ± 0.010 <span class="mark">✓ met</span></td>' in moco
    assert "td.num,th.num{text-align:right" in html and "text-align:left" in html


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


def test_pdf_without_a_browser_is_refused_before_anything_is_written(store, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("UNLEARN_BROWSER", str(tmp_path / "no-such-browser"))
    assert main(["report", "--results", str(store / "results"), "--out", str(tmp_path / "r"), "--pdf"]) == 2
    assert "--pdf needs a headless Chromium" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


@pytest.mark.skipif(find_browser() is None, reason="no headless Chromium / Chrome on PATH")
def test_report_renders_in_a_headless_browser_with_the_verdict_on_screen(store, tmp_path):
    from PIL import Image

    out = tmp_path / "report"
    assert main(["report", "--results", str(store / "results"), "--out", str(out), "--pdf"]) == 0
    assert (out / "report.pdf").read_bytes()[:5] == b"%PDF-"
    png = screenshot(out / "report.html", tmp_path / "shot.png", width=1280, height=1200, max_kb=None)
    pixels = np.asarray(Image.open(png).convert("RGB"), dtype=int)
    assert pixels.shape == (1200, 1280, 3) and pixels.std() > 10
    # the verdict is styled on the first screen: its "missed" (moco) line has the missed background colour
    missed = (np.abs(pixels - [0xFC, 0xE8, 0xE6]).sum(axis=2) <= 6)
    met = (np.abs(pixels - [0xE6, 0xF4, 0xEA]).sum(axis=2) <= 6)
    assert missed[:800].sum() > 5000 and met[:800].sum() > 5 * missed[:800].sum() / 2


def test_verdict_without_a_retrained_model_says_what_is_missing(tmp_path):
    from orchestrator.report.aggregate import plain
    from orchestrator.report.verdict import verdict_items

    row = _eval_row(after=0.51)
    row.update({k: None for k in row if k.startswith("retrain_")})
    results.append(str(tmp_path / "r"), [row])
    frame = plain(results.load(str(tmp_path / "r")))
    headline, items = verdict_items(frame, targets_table(frame))
    assert headline == "0 of 1 evaluated model meets every target."
    assert items == [(None, "? no verdict", "cifar10 / simclr / memgp, main, 1 run: not measured: vs_retrain "
                                            "(evaluate with --original and --retrained).")]
