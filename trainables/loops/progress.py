"""Progress display: a tqdm bar per epoch on a terminal, one summary line per epoch everywhere."""

from __future__ import annotations

import sys
from collections.abc import Iterable

from tqdm.auto import tqdm


def batches(loader: Iterable, *, epoch: int, epochs: int, enabled: bool, desc: str = "train"):
    show = enabled and sys.stderr.isatty()
    return tqdm(loader, desc=f"{desc} {epoch + 1}/{epochs}", leave=False, disable=not show, dynamic_ncols=True)


def format_metrics(metrics: dict) -> str:
    parts = []
    for k, v in metrics.items():
        if isinstance(v, float):
            parts.append(f"{k}={v:.4f}" if abs(v) < 1000 else f"{k}={v:.4g}")
        elif isinstance(v, int):
            parts.append(f"{k}={v}")
    return " ".join(parts)
