"""The evaluation suite's figures (matplotlib, Agg backend, PNG), one file each, titled and labelled.

Every figure has one panel per evaluated model in the order original (before), unlearned (after), retrained
(the reference), so "before vs after" reads left to right, and panels compared by eye share their axes. The forget
set is called the forget set in every panel (the retrained model was never trained on it):

- ``roc.png``: ROC curves of every attack on log-log axes (the low-FPR region is where membership leaks, Carlini
  et al. 2022), one line per model, the TPR at 1% and 0.1% FPR marked, two panels per row; ``roc_linear.png`` with ``paper_figures``.
- ``hist_cosine.png`` / ``hist_top1.png``: mean augmented-view cosine similarity and top-1 confidence, forget set
  vs non-members (paper Fig. 4), shared x and y axes.
- ``signal_pairs.png``: (top-1, view cosine, loss) per sample as 2-D pairs (paper Fig. 6); ``top3_pairs.png``: the
  three largest probabilities as pairs (paper Fig. 3); the paper's 3-D versions (``scatter3d.png``,
  ``top3_3d.png``) with ``paper_figures`` (:mod:`trainables.audit.plot_signals`).
- ``tsne.png``: t-SNE (sklearn) of the clean model outputs, forget set vs non-members (paper Fig. 7).
- ``loss_history.png``: one panel per loss term and monitor per unlearning epoch (:mod:`trainables.audit.plot_history`).

Each ``figure_*`` returns the matplotlib Figure (tests inspect its axes); ``plot_*`` saves it.

Example:
    >>> paths = write_all(reports, "out/", history=meta.get("history"))
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_curve

from trainables.audit.plot_history import figure_loss_history, plot_loss_history
from trainables.audit.plot_signals import plot_pairs, plot_scatter3d, plot_top3, plot_top3_pairs
from trainables.audit.plot_style import (
    DPI,
    FORGET,
    FORGET_LABEL,
    NONMEMBER,
    NONMEMBER_LABEL,
    PANEL,
    ROLE_COLOURS,
    by_group,
    limits,
    ordered,
    panels,
    role_title,
    save,
    styled,
)

__all__ = ["DPI", "PANEL", "figure_histograms", "figure_loss_history", "figure_roc", "plot_histograms",
           "plot_loss_history", "plot_roc", "plot_tsne", "write_all"]
FPR_MARKS = ((0.01, "tpr_at_1fpr", "1%"), (0.001, "tpr_at_01fpr", "0.1%"))
ROC_COLUMNS = 2  # more attacks wrap to further rows, so the legends keep their size on the page
ROC_PANEL = (PANEL[0] + 0.4, PANEL[1] + 1.8)  # inches; the legend sits below the axes, off the curves


def figure_roc(reports: Mapping, *, scale: str = "log"):
    """ROC per attack (panel) and model (line). ``scale="log"``: log-log axes down to below 0.1% FPR (or half the
    smallest FPR the non-members allow); the TPR at 1% / 0.1% FPR (the tables' numbers) marked on each curve."""
    attacks = list(next(iter(reports.values())).attacks)
    cols = min(ROC_COLUMNS, len(attacks))
    rows = -(-len(attacks) // cols)
    with styled():
        fig, grid = panels(cols, "Membership-inference ROC (forget set vs held-out non-members)", rows=rows,
                           sharex=True, sharey=True, panel=ROC_PANEL)
        axes = [ax for row in grid for ax in row] if rows > 1 else grid
        for i in range(len(attacks), len(axes)):
            axes[i].set_visible(False)
            axes[i - cols].tick_params(labelbottom=True)  # the panel above is now the last of its column
        for ax, attack in zip(axes, attacks, strict=False):
            lo = 0.0
            if scale == "log":
                negatives = min(int((reports[r].attacks[attack].y == 0).sum()) for r in reports)
                lo = min(5e-4, 0.5 / max(negatives, 1))
            for role in ordered(reports):
                res = reports[role].attacks[attack]
                fpr, tpr, _ = roc_curve(res.y, res.score)
                marks = {key: res.metrics[key][0] for _, key, _ in FPR_MARKS if key in res.metrics}
                text = " / ".join(f"{marks[key]:.2f} at {pct}" for _, key, pct in FPR_MARKS if key in marks)
                label = f"{role}: AUC {res.value('auc'):.2f}" + (f", TPR {text} FPR" if text else "")
                colour = ROLE_COLOURS.get(role)
                ax.plot(np.maximum(fpr, lo), np.maximum(tpr, lo), color=colour, label=label)
                for x, key, _ in FPR_MARKS:
                    if key in marks and (scale == "log" or x >= 0.01):
                        ax.plot([x], [max(marks[key], lo)], "o", color=colour, ms=6, mfc="white", mew=1.5)
            ax.plot([max(lo, 1e-6), 1], [max(lo, 1e-6), 1], "k:", lw=1, label="chance")
            for x, _, pct in FPR_MARKS:
                if scale == "log" or x >= 0.01:
                    ax.axvline(x, color="0.6", lw=0.8, ls="--")
                    ax.annotate(f"{pct} FPR", (x, 1), xytext=(2, -12), textcoords="offset points", color="0.35",
                                fontsize=9.5)
            if scale == "log":
                ax.set(xscale="log", yscale="log")
            ax.set(title=attack, xlabel="false positive rate (non-members called members)",
                   ylabel="true positive rate (forget set found)", xlim=(lo, 1), ylim=(lo, 1.05 if lo else 1))
            ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.15), frameon=False)
    return fig


def plot_roc(reports: Mapping, path, *, scale: str = "log") -> Path:
    return save(figure_roc(reports, scale=scale), path)


def figure_histograms(reports: Mapping, signal: str, *, label: str):
    """One histogram panel per model, forget set vs non-members; every panel on the same x and y axes."""
    roles = ordered(reports)
    lo, hi = limits(by_group(reports, roles, signal))
    bins = np.linspace(lo, hi, 31)
    with styled():
        fig, axes = panels(len(roles), f"{label}: {FORGET_LABEL} vs {NONMEMBER_LABEL}", sharex=True, sharey=True)
        for ax, role in zip(axes, roles, strict=True):
            m = np.clip(getattr(reports[role].member_signals, signal), lo, hi)
            n = np.clip(getattr(reports[role].nonmember_signals, signal), lo, hi)
            ax.hist(m, bins=bins, alpha=0.55, color=FORGET, label=f"{FORGET_LABEL} (mean {m.mean():.3f})",
                    density=True)
            ax.hist(n, bins=bins, alpha=0.55, color=NONMEMBER, label=f"non-members (mean {n.mean():.3f})",
                    density=True)
            ax.set(title=role_title(role), xlabel=label, xlim=(lo, hi))
            ax.legend()
        axes[0].set_ylabel("density")
    return fig


def plot_histograms(reports: Mapping, signal: str, path, *, label: str) -> Path:
    return save(figure_histograms(reports, signal, label=label), path)


def plot_tsne(reports: Mapping, path, *, max_per_class: int = 300, seed: int = 0) -> Path:
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    roles = ordered(reports)
    rng = np.random.default_rng(seed)
    with styled():
        fig, axes = panels(len(roles), "t-SNE of model outputs (paper Fig. 7; each panel its own embedding)")
        for ax, role in zip(axes, roles, strict=True):
            m, n = reports[role].member_signals, reports[role].nonmember_signals
            pick = lambda k: np.sort(rng.permutation(k)[:max_per_class])  # noqa: E731
            im, inn = pick(len(m.output)), pick(len(n.output))
            x = np.concatenate([m.output[im], n.output[inn]]).astype(np.float64)
            perplexity = float(max(2, min(30, (len(x) - 1) // 3)))
            with threadpool_limits(1):  # OpenMP threads on a busy machine slow small t-SNEs down tenfold
                emb = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(x)
            ax.scatter(*emb[: len(im)].T, s=8, color=FORGET, alpha=0.7, label=FORGET_LABEL)
            ax.scatter(*emb[len(im):].T, s=8, color=NONMEMBER, alpha=0.7, label="non-members")
            ax.set(title=role_title(role), xlabel="t-SNE 1", ylabel="t-SNE 2")
            ax.legend()
    return save(fig, path)


def write_all(reports: Mapping, out_dir, *, history: list | None = None, tsne_samples: int = 300,
              seed: int = 0, paper_figures: bool = False) -> list[Path]:
    """Write every figure into ``out_dir``; returns the paths written. ``paper_figures``: also the linear ROC and
    the paper's 3-D scatters."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [plot_roc(reports, out / "roc.png"),
             plot_histograms(reports, "cos_mean", out / "hist_cosine.png", label="mean augmented-view cosine"),
             plot_histograms(reports, "top1", out / "hist_top1.png", label="top-1 confidence"),
             plot_pairs(reports, out / "signal_pairs.png"),
             plot_top3_pairs(reports, out / "top3_pairs.png"),
             plot_tsne(reports, out / "tsne.png", max_per_class=tsne_samples, seed=seed)]
    loss = plot_loss_history(history or [], out / "loss_history.png")
    paths += [loss] if loss else []
    if paper_figures:
        paths += [plot_roc(reports, out / "roc_linear.png", scale="linear"),
                  plot_scatter3d(reports, out / "scatter3d.png"), plot_top3(reports, out / "top3_3d.png")]
    return paths
