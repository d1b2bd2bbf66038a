"""A rerun of a job whose checkpoint was written but whose results row was not (a results store that failed after
training) is idempotent: the verified checkpoint in ``--out`` is recognised as this very job's and only the missing
row is appended, so nothing trained is thrown away and nothing is trained twice.

    if results and finished_pretrain(args.out, job):    # same command, run again
        append_from_args(args, out, results)            # the row only
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

_RUN_FACTS = ("forget_count", "retain_count", "forget_ids")  # what unlearned_meta adds to the job's keys


def _verified_meta(out: str | Path) -> dict[str, Any] | None:
    from trainables.checkpoint import META, verify_checkpoint
    from trainables.errors import UserError

    try:
        if not (Path(out) / META).is_file():
            return None
        return verify_checkpoint(out)
    except (UserError, OSError):  # no checkpoint there (or an unusable path, which the job's own checks report)
        return None


def finished_pretrain(out: str | Path, job) -> bool:
    """``out`` holds a verified pretraining checkpoint of exactly ``job`` (a :class:`PretrainJob`)."""
    meta = _verified_meta(out)
    return meta is not None and meta.get("kind") == "pretrain" and meta.get("config") == job.model_dump(mode="json")


def finished_unlearning(out: str | Path, job, checkpoint: str | Path, forget_ids=None) -> bool:
    """``out`` holds a verified unlearn / retrain checkpoint of ``job`` (an UnlearnJob) from ``checkpoint``."""
    meta = _verified_meta(out)
    if meta is None or meta.get("kind") not in ("unlearn", "retrain"):
        return False
    from trainables.checkpoint import read_meta
    from trainables.unlearning.config import with_default_method
    from trainables.unlearning.registry import default_key

    job = with_default_method(job, default_key(read_meta(checkpoint)))  # as prepare_unlearning resolved it
    recorded = dict(meta.get("unlearning") or {})
    ids = recorded.get("forget_ids")
    same_job = {k: v for k, v in recorded.items() if k not in _RUN_FACTS} == job.model_dump(mode="json")
    same_parent = (meta.get("parent") or {}).get("path") == str(Path(checkpoint).resolve())
    same_ids = forget_ids is None or sorted({int(i) for i in forget_ids}) == sorted(ids or [])
    return same_job and same_parent and same_ids


def row_recorded(results: str, out: str | Path) -> bool:
    """A row for the checkpoint ``out`` is already in the results store."""
    from orchestrator.results.store import load

    df = load(results, kinds=["pretrain", "unlearn", "retrain"])
    return bool((df["checkpoint_uri"] == str(Path(out).resolve())).any())
