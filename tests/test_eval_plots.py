"""Plots are written, are valid PNGs of the expected size, are not blank, and read as a person needs them: log-log
ROC with the low-FPR points marked, shared axes across the original / unlearned / retrained panels, "forget set"
(never "members") in every panel, legends >= 9 px where the report shows them, 2-D pairs instead of 3-D clouds,
and a loss history where every term has its own panel (asserted on the matplotlib objects)."""

from __future__ import annotations

import re

import matplotlib.pyplot as plt
import numpy as np
import pytest
from PIL import Image

from trainables.attacks.config import AttackConfig
from trainables.attacks.protocol import AttackSets
from trainables.attacks.runner import fit_attacks, score_attacks
from trainables.attacks.signals import Signals
from trainables.audit import plots
from trainables.audit.forgetting import ModelReport
from trainables.audit.plot_signals import FIG6_PAIRS, figure_pairs
from trainables.audit.plot_style import DISPLAY_WIDTH_PX, MIN_TEXT_PX, display_px
from trainables.audit.plots import (
    DPI,
    PANEL,
    ROC_PANEL,
    figure_histograms,
    figure_loss_history,
    figure_roc,
    plot_loss_history,
    write_all,
)


def _signals(ids, member_shift: float, rng) -> Signals:
    n = len(ids)
    is_member = np.arange(n) < n // 2
    cos = np.sort(rng.normal(0.8 + member_shift * is_member[:, None], 0.05, (n, 10)), axis=1)
    probs = rng.dirichlet(np.ones(8), n)
    top3 = -np.sort(-probs, axis=1)[:, :3]
    return Signals(ids, np.zeros(n, int), cos, top3, rng.random(n), rng.random(n), rng.random(n) - member_shift,
                   rng.normal(size=(n, 6)) + member_shift * is_member[:, None])


def fake_reports(roles=("original", "unlearned", "retrained"), n=60,
                 attacks=("encodermi_vector", "confidence")) -> dict[str, ModelReport]:
    rng = np.random.default_rng(0)
    sets = AttackSets(np.arange(1000, 1000 + n), np.arange(2000, 2000 + n), np.arange(n), np.arange(100, 100 + n))
    cfg = AttackConfig(attacks=list(attacks), bootstrap=50)
    reports = {}
    for shift, role in zip((0.1, 0.01, 0.0), roles, strict=True):
        fit = _signals(sets.fit_ids, shift, rng)
        scored = _signals(sets.score_ids, shift, rng)
        attacks = score_attacks(fit_attacks(fit, sets.fit_labels, cfg), scored, sets.score_labels, cfg, "auditor")
        reports[role] = ModelReport(role, attacks, scored, sets, {"knn_acc": 0.5})
    return reports


@pytest.fixture(scope="module")
def reports():
    return fake_reports()


HISTORY = [{"epoch": e, "loss": 3.0 / e, "gradient_penalty": 0.01 / e ** 2, "forget_loss": 0.5 + 0.1 * e,
            "epoch_time_s": 1.0} for e in range(1, 11)]


def _check_png(path, width: int, height: int) -> None:
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    img = Image.open(path)
    assert img.size == (width, height), (path.name, img.size)
    pixels = np.asarray(img.convert("L"), dtype=float)
    assert pixels.std() > 10, f"{path.name} looks blank"
    assert (pixels < 128).mean() > 0.005, f"{path.name} has almost no ink"


def test_every_plot_is_a_non_blank_png_of_the_expected_size(tmp_path, reports):
    history = [{**h, "knn_acc": 0.4} if h["epoch"] == 10 else h for h in HISTORY]
    paths = write_all(reports, tmp_path, history=history, tsne_samples=40)
    assert sorted(p.name for p in paths) == sorted(["roc.png", "hist_cosine.png", "hist_top1.png", "signal_pairs.png",
                                                    "top3_pairs.png", "tsne.png", "loss_history.png"])
    px = lambda inches: round(inches * DPI)  # noqa: E731
    sizes = {"roc.png": (px(ROC_PANEL[0] * 2), px(ROC_PANEL[1] + 0.6)),  # one panel per attack
             "signal_pairs.png": (px(4.0 * 3), px(3.2 * 3 + 0.6)),  # 3 pairs x 3 models
             "top3_pairs.png": (px(4.0 * 3), px(3.2 * 2 + 0.6)),
             "loss_history.png": (px(3.6 * 4), px(2.8 + 0.6))}  # 4 terms, one row
    for p in paths:
        _check_png(p, *sizes.get(p.name, (px(PANEL[0] * 3), px(PANEL[1] + 0.6))))  # one panel per model


def test_paper_figures_add_the_3d_scatters_and_the_linear_roc(tmp_path, reports, monkeypatch):
    monkeypatch.setattr(plots, "plot_tsne", lambda *a, **k: tmp_path / "tsne.png")  # t-SNE is tested above
    names = {p.name for p in write_all(reports, tmp_path, tsne_samples=30, paper_figures=True)}
    assert {"scatter3d.png", "top3_3d.png", "roc_linear.png", "signal_pairs.png"} <= names


def test_roc_is_log_log_with_the_low_fpr_points_marked(reports):
    fig = figure_roc(reports)
    axes = fig.axes
    assert len(axes) == 2 and all(ax.get_xscale() == "log" and ax.get_yscale() == "log" for ax in axes)
    assert axes[0].get_shared_x_axes().joined(axes[0], axes[1])
    assert axes[0].get_shared_y_axes().joined(axes[0], axes[1])
    lo = axes[0].get_xlim()[0]
    assert lo <= 0.0005  # 0.1% FPR is on the axis, with 60 non-members (1/60 = 1.7% is the smallest FPR)
    for ax, attack in zip(axes, reports["original"].attacks, strict=True):
        for role, report in reports.items():
            for fpr, key in ((0.01, "tpr_at_1fpr"), (0.001, "tpr_at_01fpr")):
                expected = max(report.attacks[attack].metrics[key][0], lo)
                assert any(list(line.get_xdata()) == [fpr] and line.get_ydata()[0] == pytest.approx(expected)
                           for line in ax.lines), (attack, role, fpr)
        labels = [t.get_text() for t in ax.get_legend().get_texts()]
        assert any(re.fullmatch(r"original: AUC \d\.\d\d, TPR \d\.\d\d at 1% / \d\.\d\d at 0\.1% FPR", lab)
                   for lab in labels), labels
    plt.close(fig)
    linear = figure_roc(reports, scale="linear")
    assert all(ax.get_xscale() == "linear" for ax in linear.axes)
    plt.close(linear)


def test_histograms_share_axes_and_call_the_forget_set_the_forget_set(reports):
    fig = figure_histograms(reports, "cos_mean", label="view cosine")
    a, b, c = fig.axes
    for axis in (a.get_shared_x_axes(), a.get_shared_y_axes()):
        assert axis.joined(a, b) and axis.joined(a, c)
    assert a.get_ylim() == c.get_ylim()
    for ax in fig.axes:
        labels = [t.get_text() for t in ax.get_legend().get_texts()]
        assert labels[0].startswith("forget set") and labels[1].startswith("non-members")
        assert not any(re.search(r"(?<!non-)\bmembers\b", lab) for lab in labels), labels
    assert "retrained without the forget set" in c.get_title()
    plt.close(fig)


def test_legends_and_titles_are_at_least_9px_where_the_report_shows_them(reports):
    four = fake_reports(attacks=("encodermi_vector", "encodermi_threshold", "confidence", "combined"))
    wrapped = figure_roc(four)  # four attacks: two rows of two panels, not one row squeezed to a quarter
    assert [ax.get_title() for ax in wrapped.axes] == list(four["original"].attacks)
    assert wrapped.get_figwidth() * DPI <= DISPLAY_WIDTH_PX
    figures = [wrapped, figure_roc(reports), figure_histograms(reports, "top1", label="top-1"),
               figure_pairs(reports, FIG6_PAIRS, title="pairs"), figure_loss_history(HISTORY)]
    for fig in figures:
        texts = [t for ax in fig.axes if ax.get_legend() for t in ax.get_legend().get_texts()]
        texts += [ax.title for ax in fig.axes if ax.get_title()]
        assert texts
        for text in texts:
            assert display_px(fig, text.get_fontsize()) >= MIN_TEXT_PX, (text.get_text(), text.get_fontsize())
        plt.close(fig)


def test_signal_pairs_replace_the_3d_clouds_with_shared_2d_rows(reports):
    fig = figure_pairs(reports, FIG6_PAIRS, title="pairs")
    assert len(fig.axes) == 9 and not any(ax.name == "3d" for ax in fig.axes)
    grid = np.array(fig.axes).reshape(3, 3)  # rows = pairs, columns = original / unlearned / retrained
    for row in grid:
        assert row[0].get_shared_x_axes().joined(row[0], row[2]) and row[0].get_shared_y_axes().joined(row[0], row[2])
    assert not grid[0][0].get_shared_y_axes().joined(grid[0][0], grid[1][0])  # other pair, other scale
    assert [ax.get_xlabel() for ax in grid[:, 0]] == ["top-1 confidence", "top-1 confidence", "view cosine"]
    plt.close(fig)


def test_loss_history_gives_every_term_its_own_panel_and_a_single_point_a_label():
    history = [{**h, "knn_acc": 0.41} if h["epoch"] == 10 else h for h in HISTORY]
    fig = figure_loss_history(history)
    by_title = {ax.get_title(): ax for ax in fig.axes if ax.get_visible()}
    assert set(by_title) == {"forget_loss", "gradient_penalty", "loss", "knn_acc (monitor)"}
    # the penalty (<= 0.01) is not squashed under the total (3.0): its panel's y range fits it
    penalty = by_title["gradient_penalty"]
    assert penalty.get_ylim()[1] < 0.02
    monitor = by_title["knn_acc (monitor)"]
    assert [t.get_text() for t in monitor.texts] == ["0.41 (epoch 10, measured once)"]
    assert monitor.get_xlim() == by_title["loss"].get_xlim() == (0.5, 10.5)  # same epochs in every panel
    plt.close(fig)


def test_single_model_plots_and_no_history(tmp_path, reports):
    paths = write_all({"original": reports["original"]}, tmp_path, history=None, tsne_samples=30)
    assert "loss_history.png" not in {p.name for p in paths}
    _check_png(tmp_path / "hist_cosine.png", round(7.0 * DPI), round((PANEL[1] + 0.6) * DPI))


@pytest.mark.parametrize("history", [[], [{"epoch": 1, "epoch_time_s": 2.0}], None])
def test_loss_history_without_numbers_is_skipped(tmp_path, history):
    assert plot_loss_history(history, tmp_path / "x.png") is None
    assert not (tmp_path / "x.png").exists()
