"""Plots are written, are valid PNGs of the expected size, and are not blank."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from trainables.attacks.config import AttackConfig
from trainables.attacks.protocol import AttackSets
from trainables.attacks.runner import fit_attacks, score_attacks
from trainables.attacks.signals import Signals
from trainables.audit.forgetting import ModelReport
from trainables.audit.plots import DPI, PANEL, plot_loss_history, write_all


def _signals(ids, member_shift: float, rng) -> Signals:
    n = len(ids)
    is_member = np.arange(n) < n // 2
    cos = np.sort(rng.normal(0.8 + member_shift * is_member[:, None], 0.05, (n, 10)), axis=1)
    probs = rng.dirichlet(np.ones(8), n)
    top3 = -np.sort(-probs, axis=1)[:, :3]
    return Signals(ids, np.zeros(n, int), cos, top3, rng.random(n), rng.random(n), rng.random(n) - member_shift,
                   rng.normal(size=(n, 6)) + member_shift * is_member[:, None])


def fake_reports(roles=("original", "unlearned", "retrained"), n=60) -> dict[str, ModelReport]:
    rng = np.random.default_rng(0)
    sets = AttackSets(np.arange(1000, 1000 + n), np.arange(2000, 2000 + n), np.arange(n), np.arange(100, 100 + n))
    cfg = AttackConfig(attacks=["encodermi_vector", "confidence"], bootstrap=50)
    reports = {}
    for shift, role in zip((0.1, 0.01, 0.0), roles, strict=True):
        fit = _signals(sets.fit_ids, shift, rng)
        scored = _signals(sets.score_ids, shift, rng)
        attacks = score_attacks(fit_attacks(fit, sets.fit_labels, cfg), scored, sets.score_labels, cfg, "auditor")
        reports[role] = ModelReport(role, attacks, scored, sets, {"knn_acc": 0.5})
    return reports


def _check_png(path, width: int, height: int) -> None:
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    img = Image.open(path)
    assert img.size == (width, height), (path.name, img.size)
    pixels = np.asarray(img.convert("L"), dtype=float)
    assert pixels.std() > 10, f"{path.name} looks blank"
    assert (pixels < 128).mean() > 0.005, f"{path.name} has almost no ink"


def test_every_plot_is_a_non_blank_png_of_the_expected_size(tmp_path):
    history = [{"epoch": e, "loss": 3.0 / e, "gradient_penalty": 1.0 / e ** 2, "forget_loss": 0.5 + 0.1 * e,
                "epoch_time_s": 1.0} for e in range(1, 11)]
    paths = write_all(fake_reports(), tmp_path, history=history, tsne_samples=40)
    names = sorted(p.name for p in paths)
    assert names == sorted(["roc.png", "hist_cosine.png", "hist_top1.png", "scatter3d.png", "top3_3d.png",
                            "tsne.png", "loss_history.png"])
    panel_w, panel_h = round(PANEL[0] * 3 * DPI), round((PANEL[1] + 0.6) * DPI)
    for p in paths:
        if p.name == "roc.png":
            _check_png(p, round(PANEL[0] * 2 * DPI), panel_h)  # one panel per attack
        elif p.name == "loss_history.png":
            _check_png(p, round(7.5 * DPI), round(4.8 * DPI))
        else:
            _check_png(p, panel_w, panel_h)  # one panel per model


def test_loss_history_puts_accuracy_monitors_in_a_second_panel(tmp_path):
    history = [{"epoch": e, "loss": 1.0 / e, "knn_acc": 0.9 - 0.01 * e, "samples_per_s": 500.0} for e in range(1, 6)]
    path = plot_loss_history(history, tmp_path / "h.png")
    _check_png(path, round(15.0 * DPI), round(4.8 * DPI))


def test_single_model_plots_and_no_history(tmp_path):
    reports = {"original": fake_reports()["original"]}
    paths = write_all(reports, tmp_path, history=None, tsne_samples=30)
    assert "loss_history.png" not in {p.name for p in paths}
    _check_png(tmp_path / "hist_cosine.png", round(7.0 * DPI), round((PANEL[1] + 0.6) * DPI))


@pytest.mark.parametrize("history", [[], [{"epoch": 1, "epoch_time_s": 2.0}], None])
def test_loss_history_without_numbers_is_skipped(tmp_path, history):
    assert plot_loss_history(history, tmp_path / "x.png") is None
    assert not (tmp_path / "x.png").exists()
