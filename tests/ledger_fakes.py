"""Deterministic stand-ins for the ledger / scheduler tests: a tiny real checkpoint and a fake executor.

The fake executor writes real checkpoints (so integrity checks and lineage conventions are exercised) but does not
train: it copies the parent's weights, records the cumulative ``forgotten_ids`` and ``parent`` like the real
unlearning does, and "trains" two epochs whose progress is kept under ``storage_path/<run_name>`` so that a re-run
with the same run name resumes, as Ray Train does. The verification evidence is synthetic and deterministic: per-sample
scores at the normal quantiles, members shifted so that the attack's AUC is ``FAKE_ATTACK`` for the candidate
(default 0.5: forgotten) and ``FAKE_PARENT_ATTACK`` for the parent (default 0.99: detectable before), against 200
synthetic non-members; ``FAKE_NAN=1`` makes one score NaN, ``FAKE_ACCURACY_DROP`` sets the utility drop (default
0.01 on 400 samples), ``FAKE_VERIFY_ERROR`` / ``FAKE_UNLEARN_ERROR`` raise during verification / unlearning.

    --executor tests.ledger_fakes:FakeExecutor
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from orchestrator.ledger.scheduler import crash_point
from orchestrator.ledger.verification import GateScores, VerificationResult, decide

FAKE_NONMEMBERS = 200


def normal_scores(n: int, auc: float) -> np.ndarray:
    """n deterministic scores at the N(d, 1) quantiles, with d such that AUC against N(0, 1) is ``auc``."""
    from scipy.stats import norm

    return np.sqrt(2) * norm.ppf(auc) + norm.ppf((np.arange(n) + 0.5) / max(n, 1))

_OWN_KEYS = ("format_version", "created_at", "model_spec", "packages", "sha256")


def make_base_checkpoint(out: str | Path, *, num_members: int = 60, seed: int | None = None,
                         method: str = "simclr") -> Path:
    """A pretrained-looking checkpoint of a tiny random ``method`` model on digits (16 px), no training. ``seed``: its
    initialisation (default: whatever the global torch generator holds, so two calls may give the same weights)."""
    if seed is not None:
        import torch

        with torch.random.fork_rng():
            torch.manual_seed(seed)
            return make_base_checkpoint(out, num_members=num_members, method=method)
    from tests.conftest import tiny_job
    from trainables.checkpoint import save_checkpoint
    from trainables.jobs.common import checkpoint_meta, load_data, new_model

    job = tiny_job(method, data={"num_members": num_members, "num_nonmembers": num_members},
                   model={"width": 4, "proj_dim": 8, "memory_bank_size": 16})
    source, splits = load_data(job.data)
    model, spec = new_model(job, source, len(splits["member"]))
    meta = checkpoint_meta(job, "pretrain", [{"epoch": 1, "knn_acc": 0.5}])
    return save_checkpoint(out, model, spec=spec, meta=meta, splits=splits)


FAKE_SETTINGS = ("FAKE_ATTACK", "FAKE_PARENT_ATTACK", "FAKE_NAN", "FAKE_ACCURACY_DROP", "FAKE_VERIFY_ERROR",
                 "FAKE_UNLEARN_ERROR")


def registered_ledger(tmp_path: Path, base_ckpt: Path, monkeypatch):
    """A fresh ledger ($UNLEARN_LEDGER) with ``base_ckpt`` registered as version 1 and the fake executor at its
    defaults: (ledger path, the base's split manifest)."""
    from orchestrator.cli import main
    from trainables.data.splits import Splits

    path = tmp_path / "ledger" / "ledger.sqlite"
    monkeypatch.setenv("UNLEARN_LEDGER", str(path))
    for var in FAKE_SETTINGS:
        monkeypatch.delenv(var, raising=False)
    assert main(["models", "register", str(base_ckpt)]) == 0
    return path, Splits.load(base_ckpt / "splits.parquet")


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

        if os.environ.get("FAKE_VERIFY_ERROR"):
            raise OSError(os.environ["FAKE_VERIFY_ERROR"])
        forgotten = set(read_meta(candidate)["forgotten_ids"])
        batch = np.array(sorted(batch_ids), dtype=np.int64)
        earlier = np.array(sorted(set(all_forgotten_ids) - set(batch_ids)), dtype=np.int64)
        nonmembers = (np.arange(FAKE_NONMEMBERS) + 100_000, normal_scores(FAKE_NONMEMBERS, 0.5))
        candidate_scores = normal_scores(len(batch), float(os.environ.get("FAKE_ATTACK", "0.5")))
        if os.environ.get("FAKE_NAN"):
            candidate_scores[0] = np.nan
        cand = {"forget": (batch, candidate_scores), "nonmember": nonmembers}
        if len(earlier):  # "relearned" if the candidate lost an earlier id from its lineage
            cand["earlier"] = (earlier, normal_scores(len(earlier), 0.5 if set(earlier) <= forgotten else 0.999))
        parent = {"forget": (batch, normal_scores(len(batch), float(os.environ.get("FAKE_PARENT_ATTACK", "0.99")))),
                  "nonmember": nonmembers}
        drop = float(os.environ.get("FAKE_ACCURACY_DROP", "0.01"))
        before = (np.arange(400) < 320).astype(float)  # 0.80
        after = (np.arange(400) < 320 - round(drop * 400)).astype(float)
        return decide(GateScores("fake", cand, parent, before, after, "knn_acc"),
                      VerifyConfig.model_validate(config["verify"]))


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
