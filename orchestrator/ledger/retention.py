"""Retention of failed batches' files: the candidate checkpoint in ``models_dir`` and the Ray Train run directory
in the run storage (epoch checkpoints, often larger than the model) of every failed batch except the newest
``keep`` ones, which stay for diagnosis. ``unlearn schedule run --keep-failed N`` (default 3) runs it at the end
of every run, under the lease; the batch rows, their reasons and metrics stay in the ledger (only files go), and
a ``retention_cleaned`` event lists what was removed.

    cleaned = clean_failed_batches(ledger, lease, models_dir, storage_uri, keep=3)
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from orchestrator.ledger.db import Ledger
from orchestrator.ledger.fencing import remove_stale_staging
from orchestrator.ledger.lease import Lease
from orchestrator.run.storage import open_storage

DEFAULT_KEEP_FAILED = 3
_RUN_NAME = re.compile(r"^unlearn-[0-9a-f]{8}-batch-\d{6}$")  # what transitions.run_name_for makes; nothing else


def clean_failed_batches(ledger: Ledger, lease: Lease, models_dir: Path, storage_uri: str | None,
                         keep: int = DEFAULT_KEEP_FAILED) -> dict[int, list[str]]:
    """Delete the files of all but the newest ``keep`` failed batches; returns {batch_id: removed paths}."""
    failed = [b for b in ledger.list_batches() if b["state"] == "failed"]
    old = failed[:max(0, len(failed) - keep)]
    if not old:
        return {}
    with ledger.transaction() as c:  # a fenced-out holder deletes nothing
        lease.check(c)
    storage = open_storage(storage_uri) if storage_uri else None
    cleaned: dict[int, list[str]] = {}
    for batch in old:
        name = batch["run_name"]
        if not _RUN_NAME.match(name):  # never build a path to delete from anything but our own run names
            continue
        removed = []
        candidate = Path(models_dir) / name
        if candidate.exists():
            shutil.rmtree(candidate)
            removed.append(str(candidate))
        removed += [str(p) for p in remove_stale_staging(models_dir, name, generation=2**62)]
        if storage is not None and storage.exists(storage.join(name)):
            storage.fs.delete_dir(storage.join(name))
            removed.append(storage.display(name))
        if removed:
            cleaned[batch["batch_id"]] = removed
    if cleaned:
        with ledger.transaction() as c:
            lease.check(c)
            Ledger.event(c, "retention_cleaned", keep=keep, removed={str(k): v for k, v in cleaned.items()})
    return cleaned
