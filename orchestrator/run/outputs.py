"""Output locations of a job, checked before any work is done."""

from __future__ import annotations

from pathlib import Path

from trainables.errors import UserError


def check_out_dir(out: str | Path) -> Path:
    """Refuse an existing, non-empty output before any work is done (nothing is ever overwritten)."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"{out} already exists and is not empty; choose another --out")
    return out
