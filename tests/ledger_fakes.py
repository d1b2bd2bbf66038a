"""Deterministic stand-ins for the ledger / scheduler tests: a tiny real checkpoint and a fake executor.

The fake executor writes real checkpoints (so integrity checks and lineage conventions are exercised) but does not
train: it copies the parent's weights, records the cumulative ``forgotten_ids`` and ``parent`` like the real
unlearning does, and "trains" two epochs whose progress is kept under ``storage_path/<run_name>`` so that a re-run
with the same run name resumes, as Ray Train does. Verification metrics come from the environment:
``FAKE_ATTACK`` (forget-set attack score, default 0.5) and ``FAKE_UNLEARN_ERROR`` (raise during unlearning).

    --executor tests.ledger_fakes:FakeExecutor
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from orchestrator.ledger.scheduler import crash_point
from orchestrator.ledger.verification import VerificationResult, judge

_OWN_KEYS = ("format_version", "created_at", "model_spec", "packages", "sha256")


def make_base_checkpoint(out: str | Path, *, num_members: int = 60) -> Path:
    """A pretrained-looking checkpoint of a tiny random SimCLR encoder on digits (16 px), no training."""
    from tests.conftest import tiny_job
    from trainables.checkpoint import save_checkpoint
    from trainables.jobs.common import checkpoint_meta, load_data, new_model

    job = tiny_job("simclr", data={"num_members": num_members, "num_nonmembers": num_members},
                   model={"width": 4, "proj_dim": 8, "memory_bank_size": 16})
    source, splits = load_data(job.data)
    model, spec = new_model(job, source, len(splits["member"]))
    meta = checkpoint_meta(job, "pretrain", [{"epoch": 1, "knn_acc": 0.5}])
    return save_checkpoint(out, model, spec=spec, meta=meta, splits=splits)


class FakeExecutor:
    """Implements the scheduler's executor interface without any learning."""

    def __init__(self, *, workers: int = 0, use_gpu: bool = False, storage_path: str | Path | None = None):
        self.storage_path = Path(storage_path or "ray_runs")

    def resolve_config(self, config_file, overrides, verify) -> dict:
        return {"fake": {"epochs": 2}, "verify": verify.model_dump(mode="json")}

    def unlearn(self, parent: Path, forget_ids, config, out: Path, run_name: str) -> Path:
        from trainables.checkpoint import WEIGHTS, load_checkpoint, save_checkpoint

        if os.environ.get("FAKE_UNLEARN_ERROR"):
            raise RuntimeError(os.environ["FAKE_UNLEARN_ERROR"])
        ckpt = load_checkpoint(parent)
        progress = self.storage_path / run_name / "progress.json"
        progress.parent.mkdir(parents=True, exist_ok=True)
        done = json.loads(progress.read_text())["epochs"] if progress.exists() else []
        resumed = bool(done)
        for epoch in range(1, config["fake"]["epochs"] + 1):
            if epoch in done:
                continue
            done.append(epoch)  # the "training" of this epoch, then its checkpoint (atomic, as Ray Train's)
            tmp = progress.with_suffix(".tmp")
            tmp.write_text(json.dumps({"epochs": done}))
            tmp.replace(progress)
            crash_point("during_training")
        cumulative = sorted(set(ckpt.meta.get("forgotten_ids") or []) | set(forget_ids))
        meta = {k: v for k, v in ckpt.meta.items() if k not in _OWN_KEYS}
        meta.update(kind="unlearn", forgotten_ids=cumulative, epochs_run=done, resumed=resumed,
                    parent={"path": str(Path(parent).resolve()), "sha256": ckpt.meta["sha256"][WEIGHTS]},
                    written_by=os.environ.get("FAKE_WRITER", str(os.getpid())))
        return save_checkpoint(out, ckpt.model, spec=ckpt.meta["model_spec"], meta=meta,
                               splits=ckpt.splits.with_forget(cumulative))

    def verify(self, candidate: Path, parent: Path, batch_ids, all_forgotten_ids, config) -> VerificationResult:
        from orchestrator.ledger.verification import VerifyConfig
        from trainables.checkpoint import read_meta

        forgotten = set(read_meta(candidate)["forgotten_ids"])
        earlier = set(all_forgotten_ids) - set(batch_ids)
        metrics = {"forget_attack": float(os.environ.get("FAKE_ATTACK", "0.5")),
                   "accuracy_parent": 0.80, "accuracy_candidate": 0.79}
        if earlier:  # "relearned" if the candidate lost an earlier id from its lineage
            metrics["earlier_attack"] = 0.5 if earlier <= forgotten else 0.9
        return judge(metrics, VerifyConfig.model_validate(config["verify"]))


def ledger_problems(ledger_path: str | Path) -> list[str]:
    """Every violated invariant of a ledger at rest (empty list: consistent).

    Requests are pending or verified; exactly one model is current; the batches along its lineage forgot disjoint
    id sets (none applied twice) whose union is exactly the ids of the verified requests; the current checkpoint
    verifies and records the same forgotten ids; no half-written checkpoint is left in the models directory.
    """
    from orchestrator.ledger.db import Ledger
    from orchestrator.ledger.versions import verify_model

    problems = []
    with Ledger(ledger_path) as led:
        requests = led.list_requests()
        problems += [f"{r['request_id']} is {r['status']}" for r in requests
                     if r["status"] not in ("pending", "verified")]
        current = [m for m in led.list_models() if m["is_current"]]
        if len(current) != 1:
            return problems + [f"{len(current)} current models"]
        lineage = led.lineage(current[0]["version"])
        base = set(lineage[-1]["forgotten_ids"])
        applied: list[int] = []
        for version in lineage[:-1]:
            applied += led.get_batch(version["batch_id"])["forget_ids"]
        if len(applied) != len(set(applied)):
            problems.append("an id was unlearned by two batches of the lineage")
        verified = {i for r in requests if r["status"] == "verified" for i in r["sample_ids"]}
        if set(applied) | base != verified | base:
            problems.append(f"lineage forgot {sorted(set(applied) | base)}, verified requests ask "
                            f"{sorted(verified | base)}")
        if set(current[0]["forgotten_ids"]) != set(applied) | base:
            problems.append("current version's forgotten_ids differ from its lineage")
        for r in requests:
            if r["status"] == "verified" and led.get_batch(r["batch_id"])["state"] != "done":
                problems.append(f"{r['request_id']} verified by a batch that is not done")
        verify_model(current[0])
        problems += [f"left over {p}" for p in (led.path.parent / "models").glob(".*tmp-*")]
    return problems
