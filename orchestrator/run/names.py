"""Deterministic Ray Train run names, so that relaunching a job resumes it and a new job never resumes a stale run.

Ray Train resumes a run when ``RunConfig(name, storage_path)`` points at an existing run directory. The default
name is ``<kind>-<12 hex digits>``, the start of the sha256 of the job (kind, full validated config, absolute
``--out`` path, and inputs the config does not name, such as the parent checkpoint): the same command resumes, any change to the config or the output is a new run. Each run directory
holds ``unlearn_run.json`` with that hash; a directory with another hash (an explicit ``--run-name`` reused for a
different job) or without the file (not made by this tool) is refused, never resumed.

Example:
    >>> plan = plan_run(open_storage("/tmp/runs"), "pretrain", job, "ckpt/simclr")
    >>> plan.name, plan.resuming
    ('pretrain-3f9c2a1b7d4e', False)
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from orchestrator.run.storage import Storage
from trainables.errors import UserError

RUN_RECORD = "unlearn_run.json"
USER_ERROR = "user_error.txt"  # a deterministic error seen by a worker: later attempts of this launch stop at once
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def job_hash(kind: str, job: BaseModel, out: str | Path, identity: dict[str, Any] | None = None) -> str:
    """sha256 of what defines the job's result: its kind, full config, absolute output path and any inputs the
    config does not name (``identity``, e.g. the parent checkpoint's weights hash and the forget ids)."""
    payload = {"kind": kind, "config": job.model_dump(mode="json"), "out": str(Path(out).expanduser().resolve()),
               **({"identity": identity} if identity else {})}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def default_run_name(kind: str, digest: str) -> str:
    return f"{kind}-{digest[:12]}"


def check_run_name(name: str) -> str:
    if not _NAME.match(name):
        raise UserError(f"--run-name {name!r}: use 1-128 letters, digits, '.', '_' or '-', starting with a letter "
                        f"or digit (it becomes a directory name)")
    return name


@dataclass
class RunPlan:
    storage: Storage
    name: str
    digest: str
    kind: str
    record: dict[str, Any] | None  # the run's record (None until a new run is claimed)
    resuming: bool = False         # the run existed before this launch

    @property
    def finished(self) -> bool:
        return bool(self.record and self.record.get("status") == "finished")

    def path(self, *parts: str) -> str:
        return self.storage.join(self.name, *parts)

    def display(self) -> str:
        return self.storage.display(self.name)


def plan_run(storage: Storage, kind: str, job: BaseModel, out: str | Path, run_name: str | None = None,
             identity: dict[str, Any] | None = None) -> RunPlan:
    """Name the run and check what already exists under it (reads only; :func:`claim_run` writes)."""
    digest = job_hash(kind, job, out, identity)
    name = check_run_name(run_name) if run_name else default_run_name(kind, digest)
    plan = RunPlan(storage, name, digest, kind, None)
    text = storage.read_text(plan.path(RUN_RECORD))
    if text is None:
        if storage.listdir(plan.path()):
            raise UserError(f"run directory {plan.display()} exists but was not made by `unlearn` (no {RUN_RECORD}); "
                            f"choose another --run-name or --storage")
        return plan
    try:
        plan.record, plan.resuming = json.loads(text), True
    except json.JSONDecodeError as exc:
        raise UserError(f"{plan.display()}/{RUN_RECORD} is corrupt ({exc}); delete the run directory to start "
                        f"over") from None
    if plan.record.get("config_hash") != digest:
        raise UserError(
            f"run {name!r} in {storage.uri} belongs to a different job (config hash "
            f"{str(plan.record.get('config_hash'))[:12]}, this job {digest[:12]}: another config or --out); "
            f"choose another --run-name, or delete {plan.display()} to start over")
    return plan


def claim_run(plan: RunPlan, job: BaseModel, out: str | Path, extra: dict[str, Any] | None = None) -> None:
    """Create or refresh the run record (status ``running``) and clear a previous launch's user-error marker."""
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    record = plan.record or {"config_hash": plan.digest, "kind": plan.kind, "out": str(Path(out).resolve()),
                             "created_at": now, "config": job.model_dump(mode="json")}
    record = {**record, **(extra or {}), "status": "running", "launched_at": now}
    plan.storage.write_text(plan.path(RUN_RECORD), json.dumps(record, indent=2, sort_keys=True))
    plan.storage.delete_file(plan.path(USER_ERROR))
    plan.record = record


def mark_finished(plan: RunPlan, exported_to: str | Path) -> None:
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    record = {**(plan.record or {}), "status": "finished", "finished_at": now, "exported_to": str(exported_to)}
    plan.storage.write_text(plan.path(RUN_RECORD), json.dumps(record, indent=2, sort_keys=True))
    plan.record = record
