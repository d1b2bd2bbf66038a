"""The training history of a checkpoint (``meta["history"]``: one dict per epoch) as small multiples: one panel per
loss term and per monitor, each on its own y scale, so a term 100x smaller than the total stays visible, and a
monitor measured once (e.g. kNN accuracy at the end) is one labelled point instead of an empty panel.

    plot_loss_history([{"epoch": 1, "loss": 2.1, "gradient_penalty": 0.01, "knn_acc": 0.41}, ...], "out/h.png")
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from trainables.audit.plot_style import panels, save, styled

SKIP_HISTORY = {"epoch", "epoch_time_s", "images_per_s", "step", "time_s", "wall_time_s"}
MAX_COLUMNS = 4


def history_keys(rows: list[Mapping]) -> list[str]:
    """Numeric keys except epoch / timing / throughput; losses first, then monitors (keys with ``acc``)."""
    keys = sorted({k for h in rows for k, v in h.items()
                   if k not in SKIP_HISTORY and not k.endswith(("_per_s", "_time_s")) and isinstance(v, (int, float))
                   and not isinstance(v, bool)})
    return [k for k in keys if "acc" not in k] + [k for k in keys if "acc" in k]


def _panel(ax, rows: list[Mapping], key: str, epochs: tuple[float, float]) -> None:
    points = [(h.get("epoch", i + 1), float(h[key])) for i, h in enumerate(rows)
              if isinstance(h.get(key), (int, float)) and math.isfinite(h[key])]
    x, y = (np.array(v, dtype=float) for v in zip(*points, strict=True)) if points else (np.array([]), np.array([]))
    monitor = "acc" in key
    ax.plot(x, y, marker="o", ms=4 if len(x) > 1 else 8, color="tab:green" if monitor else "tab:blue")
    if len(x) == 1:  # measured once: say so, and give the point room
        ax.annotate(f"{y[0]:.4g} (epoch {x[0]:g}, measured once)", (x[0], y[0]), xytext=(0, 10),
                    textcoords="offset points", ha="right" if x[0] > sum(epochs) / 2 else "left")
    elif len(y) and (y > 0).all() and y.max() / y.min() > 100:
        ax.set_yscale("log")
    ax.set_xlim(*epochs)
    ax.set_title(key + (" (monitor)" if monitor else ""))
    ax.set_xlabel("epoch")
    ax.grid(alpha=0.3)


def figure_loss_history(history: list[Mapping], *, title: str = "Loss components per unlearning epoch"):
    """One panel per term (None when there is nothing to plot); ``MAX_COLUMNS`` panels per row, the same epoch
    range in each."""
    rows = [h for h in history or [] if isinstance(h, Mapping)]
    keys = history_keys(rows)
    if not rows or not keys:
        return None
    cols = min(MAX_COLUMNS, len(keys))
    nrows = math.ceil(len(keys) / cols)
    with styled():
        fig, axes = panels(cols, f"{title} (each panel its own scale)", rows=nrows, panel=(3.6, 2.8))
        flat = [ax for row in axes for ax in row] if nrows > 1 else axes
        seen = [float(h.get("epoch", i + 1)) for i, h in enumerate(rows)]
        epochs = (min(seen) - 0.5, max(seen) + 0.5)
        for ax, key in zip(flat, keys, strict=False):
            _panel(ax, rows, key, epochs)
        for ax in flat[len(keys):]:
            ax.set_visible(False)
    return fig


def plot_loss_history(history: list[Mapping], path, *, title: str = "Loss components per unlearning epoch") -> Path | None:
    fig = figure_loss_history(history, title=title)
    return None if fig is None else save(fig, path)
