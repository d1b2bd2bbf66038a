"""Per-sample signals of the forget set and the non-members, two at a time (the paper's 3-D Figs. 3 and 6 as 2-D
pair panels: a 3-D cloud of a few hundred points cannot be read from a flat page), and the paper's 3-D versions.

Layout of the pair figures: one column per model (original, unlearned, retrained), one row per pair of signals;
the panels of a row share both axes, so a cloud that moves between "before" and "after" moves on the page.

    plot_pairs(reports, "out/signal_pairs.png")       # (top-1, view cosine), (top-1, loss), (view cosine, loss)
    plot_top3_pairs(reports, "out/top3_pairs.png")    # (top-1, top-2), (top-2, top-3)
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from trainables.audit.plot_style import (
    FORGET,
    FORGET_LABEL,
    NONMEMBER,
    NONMEMBER_LABEL,
    by_group,
    limits,
    ordered,
    panels,
    role_title,
    save,
    styled,
)

SIGNALS = {"top1": ("top-1 confidence", lambda s: s.top1), "cos": ("view cosine", lambda s: s.cos_mean),
           "loss": ("loss", lambda s: s.loss), "top2": ("top-2", lambda s: s.top3[:, 1]),
           "top3": ("top-3", lambda s: s.top3[:, 2])}
FIG6_PAIRS = (("top1", "cos"), ("top1", "loss"), ("cos", "loss"))
FIG3_PAIRS = (("top1", "top2"), ("top2", "top3"))


def figure_pairs(reports: Mapping, pairs=FIG6_PAIRS, *, title: str):
    """Rows = signal pairs, columns = models; each row shares its x and y axes."""
    roles = ordered(reports)
    with styled():
        fig, axes = panels(len(roles), title, rows=len(pairs), sharex="row", sharey="row", panel=(4.0, 3.2))
        grid = axes if len(pairs) > 1 else [axes]
        for row, (xs, ys) in zip(grid, pairs, strict=True):
            (xlabel, fx), (ylabel, fy) = SIGNALS[xs], SIGNALS[ys]
            xlim, ylim = limits(by_group(reports, roles, fx)), limits(by_group(reports, roles, fy))
            for ax, role in zip(row, roles, strict=True):
                for sig, colour, name in ((reports[role].member_signals, FORGET, FORGET_LABEL),
                                          (reports[role].nonmember_signals, NONMEMBER, NONMEMBER_LABEL)):
                    # outliers pinned to the shared box so every point stays visible
                    ax.scatter(np.clip(fx(sig), *xlim), np.clip(fy(sig), *ylim), s=10, alpha=0.6, color=colour,
                               label=name, edgecolors="none")
                ax.set(xlim=xlim, ylim=ylim, xlabel=xlabel)
                ax.set_title(role_title(role) if row is grid[0] else "")
            row[0].set_ylabel(ylabel)
        grid[0][0].legend(loc="best", markerscale=1.6)
    return fig


def plot_pairs(reports: Mapping, path) -> Path:
    return save(figure_pairs(reports, FIG6_PAIRS, title="Per-sample signals in pairs (paper Fig. 6 in 2-D)"), path)


def plot_top3_pairs(reports: Mapping, path) -> Path:
    return save(figure_pairs(reports, FIG3_PAIRS, title="Top-3 prediction confidences in pairs (paper Fig. 3 in 2-D)"),
                path)


def _scatter3d(reports: Mapping, path, keys: tuple[str, str, str], title: str) -> Path:
    roles = ordered(reports)
    lims = [limits(by_group(reports, roles, SIGNALS[k][1])) for k in keys]
    with styled():
        fig, axes = panels(len(roles), title, projection="3d")
        for ax, role in zip(axes, roles, strict=True):
            ax.set(xlim=lims[0], ylim=lims[1], zlim=lims[2])
            for sig, colour, name in ((reports[role].member_signals, FORGET, FORGET_LABEL),
                                      (reports[role].nonmember_signals, NONMEMBER, NONMEMBER_LABEL)):
                xyz = [np.clip(SIGNALS[k][1](sig), *lim) for k, lim in zip(keys, lims, strict=True)]
                ax.scatter(*xyz, s=6, alpha=0.6, color=colour, label=name)
            ax.set(title=role_title(role), xlabel=SIGNALS[keys[0]][0], ylabel=SIGNALS[keys[1]][0])
            ax.set_zlabel(SIGNALS[keys[2]][0], labelpad=2)
            ax.legend()
    return save(fig, path)


def plot_scatter3d(reports: Mapping, path) -> Path:
    """The paper's Fig. 6: (top-1, view cosine, loss) per sample in 3-D."""
    return _scatter3d(reports, path, ("top1", "cos", "loss"), "Top-1 confidence, view cosine and loss (paper Fig. 6)")


def plot_top3(reports: Mapping, path) -> Path:
    """The paper's Fig. 3: the three largest probabilities in 3-D."""
    return _scatter3d(reports, path, ("top1", "top2", "top3"), "Top-3 prediction confidences (paper Fig. 3)")
