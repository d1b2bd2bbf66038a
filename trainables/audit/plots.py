"""The evaluation suite's figures (matplotlib, Agg backend, PNG), one file each, titled and labelled.

Every figure has one panel per evaluated model in the order original (before), unlearned (after), retrained
(the reference), so "before vs after" reads left to right:

- ``roc.png``: ROC curves of every attack, one line per model (log-log inset-free; AUC in the legend).
- ``hist_cosine.png`` / ``hist_top1.png``: mean augmented-view cosine similarity and top-1 confidence, forget
  set (members) vs non-members (paper Fig. 4).
- ``scatter3d.png``: (top-1, cosine similarity, loss) per sample (paper Fig. 6); ``top3_3d.png``: the three
  largest probabilities (paper Fig. 3).
- ``tsne.png``: t-SNE (sklearn) of the clean model outputs coloured member / non-member (paper Fig. 7).
- ``loss_history.png``: every loss component per unlearning epoch from a checkpoint's ``meta["history"]``.

Example:
    >>> paths = write_all(reports, "out/", history=meta.get("history"))
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.metrics import roc_curve  # noqa: E402

ROLE_ORDER = ("original", "parent", "unlearned", "model", "retrained", "reference")
ROLE_COLOURS = {"original": "tab:red", "parent": "tab:red", "unlearned": "tab:blue", "model": "tab:blue",
                "retrained": "tab:green", "reference": "tab:green"}
MEMBER, NONMEMBER = "tab:orange", "tab:purple"
PANEL = (4.8, 4.0)  # inches per panel
DPI = 100


def ordered(reports: Mapping) -> list[str]:
    return sorted(reports, key=lambda r: ROLE_ORDER.index(r) if r in ROLE_ORDER else len(ROLE_ORDER))


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def _panels(n: int, title: str, projection: str | None = None):
    fig = plt.figure(figsize=(max(PANEL[0] * n, 7.0), PANEL[1] + 0.6))
    axes = [fig.add_subplot(1, n, i + 1, projection=projection) for i in range(n)]
    fig.suptitle(title)
    return fig, axes


def plot_roc(reports: Mapping, path) -> Path:
    attacks = list(next(iter(reports.values())).attacks)
    fig, axes = _panels(len(attacks), "Membership-inference ROC (forget set vs held-out non-members)")
    for ax, attack in zip(axes, attacks, strict=True):
        for role in ordered(reports):
            res = reports[role].attacks[attack]
            fpr, tpr, _ = roc_curve(res.y, res.score)
            ax.plot(fpr, tpr, color=ROLE_COLOURS.get(role), label=f"{role} (AUC {res.value('auc'):.3f})")
        ax.plot([0, 1], [0, 1], "k:", lw=1, label="chance")
        ax.set(title=attack, xlabel="false positive rate", ylabel="true positive rate", xlim=(0, 1), ylim=(0, 1))
        ax.legend(loc="lower right", fontsize=8)
    return _save(fig, Path(path))


def _limits(values: list[np.ndarray]) -> tuple[float, float]:
    """One axis range for every panel (so before / after compare by eye), robust to a few outliers."""
    allv = np.concatenate([np.asarray(v, dtype=float).ravel() for v in values])
    lo, hi = np.quantile(allv, [0.005, 0.995]) if len(allv) > 50 else (allv.min(), allv.max())
    pad = 0.02 * (hi - lo) if hi > lo else 1e-3
    return float(lo - pad), float(hi + pad)


def _by_group(reports: Mapping, roles: list[str], signal) -> list[np.ndarray]:
    get = signal if callable(signal) else (lambda s: getattr(s, signal))
    return [get(getattr(reports[r], g)) for r in roles for g in ("member_signals", "nonmember_signals")]


def plot_histograms(reports: Mapping, signal: str, path, *, label: str) -> Path:
    roles = ordered(reports)
    fig, axes = _panels(len(roles), f"{label}: forget set (members) vs non-members")
    lo, hi = _limits(_by_group(reports, roles, signal))
    bins = np.linspace(lo, hi, 31)
    for ax, role in zip(axes, roles, strict=True):
        m = np.clip(getattr(reports[role].member_signals, signal), lo, hi)
        n = np.clip(getattr(reports[role].nonmember_signals, signal), lo, hi)
        ax.hist(m, bins=bins, alpha=0.55, color=MEMBER, label=f"members (mean {m.mean():.3f})", density=True)
        ax.hist(n, bins=bins, alpha=0.55, color=NONMEMBER, label=f"non-members (mean {n.mean():.3f})", density=True)
        ax.set(title=role, xlabel=label, ylabel="density", xlim=(lo, hi))
        ax.legend(fontsize=8)
    return _save(fig, Path(path))


def plot_scatter3d(reports: Mapping, path) -> Path:
    roles = ordered(reports)
    fig, axes = _panels(len(roles), "Top-1 confidence, view cosine similarity and loss per sample", "3d")
    lims = [_limits(_by_group(reports, roles, k)) for k in ("top1", "cos_mean", "loss")]
    for ax, role in zip(axes, roles, strict=True):
        ax.set(xlim=lims[0], ylim=lims[1], zlim=lims[2])
        for sig, colour, name in ((reports[role].member_signals, MEMBER, "members"),
                                  (reports[role].nonmember_signals, NONMEMBER, "non-members")):
            xyz = [np.clip(v, *lim) for v, lim in zip((sig.top1, sig.cos_mean, sig.loss), lims, strict=True)]
            ax.scatter(*xyz, s=6, alpha=0.6, color=colour, label=name)  # outliers pinned to the shared box
        ax.set(title=role, xlabel="top-1 confidence", ylabel="view cosine")
        ax.set_zlabel("loss", labelpad=2)
        ax.legend(fontsize=8)
    return _save(fig, Path(path))


def plot_top3(reports: Mapping, path) -> Path:
    roles = ordered(reports)
    fig, axes = _panels(len(roles), "Top-3 prediction confidences (paper Fig. 3)", "3d")
    lims = [_limits(_by_group(reports, roles, lambda s, k=k: s.top3[:, k])) for k in range(3)]
    for ax, role in zip(axes, roles, strict=True):
        ax.set(xlim=lims[0], ylim=lims[1], zlim=lims[2])
        for sig, colour, name in ((reports[role].member_signals, MEMBER, "members"),
                                  (reports[role].nonmember_signals, NONMEMBER, "non-members")):
            xyz = [np.clip(sig.top3[:, k], *lims[k]) for k in range(3)]
            ax.scatter(*xyz, s=6, alpha=0.6, color=colour, label=name)
        ax.set(title=role, xlabel="top-1", ylabel="top-2", zlabel="top-3")
        ax.legend(fontsize=8)
    return _save(fig, Path(path))


def plot_tsne(reports: Mapping, path, *, max_per_class: int = 300, seed: int = 0) -> Path:
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    roles = ordered(reports)
    fig, axes = _panels(len(roles), "t-SNE of model outputs (paper Fig. 7)")
    rng = np.random.default_rng(seed)
    for ax, role in zip(axes, roles, strict=True):
        m, n = reports[role].member_signals, reports[role].nonmember_signals
        pick = lambda k: np.sort(rng.permutation(k)[:max_per_class])  # noqa: E731
        im, inn = pick(len(m.output)), pick(len(n.output))
        x = np.concatenate([m.output[im], n.output[inn]]).astype(np.float64)
        perplexity = float(max(2, min(30, (len(x) - 1) // 3)))
        with threadpool_limits(1):  # OpenMP threads on a busy machine slow small t-SNEs down tenfold
            emb = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(x)
        ax.scatter(*emb[: len(im)].T, s=6, color=MEMBER, alpha=0.7, label="members (forget set)")
        ax.scatter(*emb[len(im):].T, s=6, color=NONMEMBER, alpha=0.7, label="non-members")
        ax.set(title=role, xlabel="t-SNE 1", ylabel="t-SNE 2")
        ax.legend(fontsize=8)
    return _save(fig, Path(path))


SKIP_HISTORY = {"epoch", "epoch_time_s", "images_per_s", "step", "time_s", "wall_time_s"}


def _history_lines(ax, rows: list[Mapping], keys: list[str], *, title: str, ylabel: str) -> None:
    epochs = [h.get("epoch", i + 1) for i, h in enumerate(rows)]
    for key in keys:
        ax.plot(epochs, [h.get(key, np.nan) for h in rows], marker="o", ms=3, label=key)
    values = np.array([h.get(k, np.nan) for h in rows for k in keys], dtype=float)
    finite = values[np.isfinite(values)]
    if len(finite) and (finite > 0).all() and finite.max() / finite.min() > 100:
        ax.set_yscale("log")
    ax.set(title=title, xlabel="epoch", ylabel=ylabel)
    ax.legend(fontsize=8, ncol=2)


def plot_loss_history(history: list[Mapping], path, *, title: str = "Loss components per unlearning epoch") -> Path | None:
    """Loss components per epoch (every numeric history key except epoch / timing); accuracy monitors (keys with
    ``acc``) in a second panel. None when there is nothing to plot."""
    rows = [h for h in history or [] if isinstance(h, Mapping)]
    keys = sorted({k for h in rows for k, v in h.items()
                   if k not in SKIP_HISTORY and not k.endswith(("_per_s", "_time_s")) and isinstance(v, (int, float))
                   and not isinstance(v, bool)})
    if not rows or not keys:
        return None
    monitors = [k for k in keys if "acc" in k]
    losses = [k for k in keys if k not in monitors]
    panels = [p for p in ((losses, title, "value"), (monitors, "Monitors per epoch", "accuracy")) if p[0]]
    fig, axes = plt.subplots(1, len(panels), figsize=(7.5 * len(panels), 4.8), squeeze=False, sharex=True)
    for ax, (panel_keys, panel_title, ylabel) in zip(axes[0], panels, strict=True):
        _history_lines(ax, rows, panel_keys, title=panel_title, ylabel=ylabel)
        if ylabel == "accuracy":
            ax.set_ylim(0, 1)
    return _save(fig, Path(path))


def write_all(reports: Mapping, out_dir, *, history: list | None = None, tsne_samples: int = 300,
              seed: int = 0) -> list[Path]:
    """Write every figure into ``out_dir``; returns the paths written."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [plot_roc(reports, out / "roc.png"),
             plot_histograms(reports, "cos_mean", out / "hist_cosine.png", label="mean augmented-view cosine"),
             plot_histograms(reports, "top1", out / "hist_top1.png", label="top-1 confidence"),
             plot_scatter3d(reports, out / "scatter3d.png"),
             plot_top3(reports, out / "top3_3d.png"),
             plot_tsne(reports, out / "tsne.png", max_per_class=tsne_samples, seed=seed)]
    loss = plot_loss_history(history or [], out / "loss_history.png")
    return paths + ([loss] if loss else [])
