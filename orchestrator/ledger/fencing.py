"""The lease's fencing token carried to the candidate checkpoint: only the current lease holder can put
``models/<run name>`` in place.

A scheduled run writes its candidate into a staging directory named after its lease generation,
``models/.<run name>.g<generation>``, and renames it to ``models/<run name>`` inside a ledger transaction that first
passed :meth:`orchestrator.ledger.lease.Lease.check`. A takeover bumps the generation under the same SQLite write lock, so
the check-then-rename of a holder that was frozen (SIGSTOP, a suspended VM, a clock jump) and taken over fails
with :class:`~orchestrator.ledger.lease.LeaseLost`: its late checkpoint stays in its own staging directory (removed on the
way out), never where the live run writes or looks for its candidate.

    staging = staging_dir(models_dir, run_name, lease.generation)
    executor.unlearn(..., out=staging, ...)
    install_candidate(ledger, lease, staging, models_dir / run_name)   # LeaseLost if taken over meanwhile
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from orchestrator.ledger.db import Ledger
from orchestrator.ledger.lease import Lease, LeaseLost
from trainables.durable import fsync_dir


def staging_dir(models_dir: Path, run_name: str, generation: int) -> Path:
    """Where the holder of lease ``generation`` writes the candidate of run ``run_name``."""
    return Path(models_dir) / f".{run_name}.g{generation:06d}"


def _staging_generation(name: str, run_name: str) -> int | None:
    """The generation of a staging directory (or of a checkpoint writer's ``.tmp-`` partial inside one)."""
    match = re.fullmatch(rf"\.?\.{re.escape(run_name)}\.g(\d+)(\.tmp-[0-9a-f]+)?", name)
    return int(match.group(1)) if match else None


def remove_stale_staging(models_dir: Path, run_name: str, generation: int) -> list[Path]:
    """Delete what holders of older generations left for ``run_name`` (crashed, or frozen and now fenced: a frozen
    one that resumes later finds its files gone and fails before it can write anything). Returns what was removed."""
    removed = []
    for path in Path(models_dir).glob(f"*.{run_name}.g*"):
        gen = _staging_generation(path.name, run_name)
        if gen is not None and gen < generation:
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def install_candidate(ledger: Ledger, lease: Lease, staging: Path, final: Path) -> None:
    """Rename ``staging`` to ``final`` if and only if ``lease`` is still the current holder.

    The rename runs inside the write transaction that checked the lease: no takeover can happen between the check
    and the rename. On :class:`LeaseLost` the staging directory is removed and the error re-raised.
    """
    try:
        with ledger.transaction() as c:
            lease.check(c)
            if final.exists() and (not final.is_dir() or any(final.iterdir())):
                raise RuntimeError(f"{final} already exists; refusing to replace a candidate checkpoint")
            if final.is_dir():
                final.rmdir()  # an empty directory (e.g. made by hand) is not a candidate
            os.rename(staging, final)
            fsync_dir(final.parent)
    except LeaseLost:
        shutil.rmtree(staging, ignore_errors=True)
        raise
