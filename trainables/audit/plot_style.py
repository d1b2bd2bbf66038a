"""What every evaluation figure shares: the panel order and names of the models, colours, font sizes that stay
readable where the report shows the figure, and one axis range for panels that are compared by eye.

Readability is a number, not a feeling: the report shows a figure at most ``DISPLAY_WIDTH_PX`` wide (its CSS uses
this constant), so a figure ``w`` pixels wide is scaled by ``min(1, DISPLAY_WIDTH_PX / w)`` and a font of ``s``
points is ``s * DPI / 72 * scale`` pixels on screen; ``FONT`` keeps legends at >= ``MIN_TEXT_PX`` for the widest
figure this module draws (three panels of ``PANEL`` inches).

    with styled():
        fig, axes = panels(3, "title", sharey=True)
    save(fig, "out/x.png")
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import contextmanager
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

ROLE_ORDER = ("original", "parent", "unlearned", "model", "retrained", "reference")
ROLE_COLOURS = {"original": "tab:red", "parent": "tab:red", "unlearned": "tab:blue", "model": "tab:blue",
                "retrained": "tab:green", "reference": "tab:green"}
# The forget set is "members" only for a model trained on it: the retrained model never saw it.
ROLE_TITLE = {"original": "original (trained on the forget set)", "unlearned": "unlearned",
              "retrained": "retrained without the forget set"}
FORGET, NONMEMBER = "tab:orange", "tab:purple"
FORGET_LABEL, NONMEMBER_LABEL = "forget set", "held-out non-members"
PANEL = (4.8, 4.0)  # inches per panel
DPI = 100
DISPLAY_WIDTH_PX = 1100  # the widest the report shows a figure (orchestrator/report's CSS)
MIN_TEXT_PX = 9
FONT = {"font.size": 10, "legend.fontsize": 10, "axes.titlesize": 11, "axes.labelsize": 10,
        "xtick.labelsize": 9.5, "ytick.labelsize": 9.5, "figure.titlesize": 12}


def ordered(reports: Mapping) -> list[str]:
    """Roles left to right: original, unlearned, retrained (others last)."""
    return sorted(reports, key=lambda r: ROLE_ORDER.index(r) if r in ROLE_ORDER else len(ROLE_ORDER))


def role_title(role: str) -> str:
    return ROLE_TITLE.get(role, role)


@contextmanager
def styled():
    """Matplotlib settings of every figure (text objects keep their sizes after the block)."""
    with plt.rc_context(FONT):
        yield


def panels(n: int, title: str, *, rows: int = 1, sharex=False, sharey=False, projection: str | None = None,
           panel: tuple[float, float] = PANEL):
    """A figure of ``rows`` x ``n`` panels (``axes[row][col]`` when rows > 1, else a flat list)."""
    size = (max(panel[0] * n, 7.0), panel[1] * rows + 0.6)
    if projection:
        fig = plt.figure(figsize=size)
        axes = [fig.add_subplot(rows, n, i + 1, projection=projection) for i in range(rows * n)]
    else:
        fig, grid = plt.subplots(rows, n, figsize=size, sharex=sharex, sharey=sharey, squeeze=False)
        axes = [list(r) for r in grid] if rows > 1 else list(grid[0])
    fig.suptitle(title)
    return fig, axes


def save(fig, path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return Path(path)


def display_px(fig, points: float) -> float:
    """On-screen pixels of a ``points`` font in ``fig`` where the report shows it."""
    width_px = fig.get_figwidth() * DPI
    return points * DPI / 72 * min(1.0, DISPLAY_WIDTH_PX / width_px)


def limits(values: list[np.ndarray]) -> tuple[float, float]:
    """One axis range for every panel (so before / after compare by eye), robust to a few outliers."""
    allv = np.concatenate([np.asarray(v, dtype=float).ravel() for v in values])
    lo, hi = np.quantile(allv, [0.005, 0.995]) if len(allv) > 50 else (allv.min(), allv.max())
    pad = 0.02 * (hi - lo) if hi > lo else 1e-3
    return float(lo - pad), float(hi + pad)


def by_group(reports: Mapping, roles: list[str], signal) -> list[np.ndarray]:
    """``signal`` (an attribute name of Signals, or a function of one) of the forget set and the non-members of
    every role."""
    get = signal if callable(signal) else (lambda s: getattr(s, signal))
    return [get(getattr(reports[r], g)) for r in roles for g in ("member_signals", "nonmember_signals")]
