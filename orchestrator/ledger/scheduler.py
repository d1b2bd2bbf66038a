"""Scheduled unlearning: batch the pending deletion requests, unlearn, verify, and only then promote.

One run (``unlearn schedule run``) under the ledger lease:

1. resume the unfinished batch if there is one (a crash left it in ``batched``, ``trained`` or ``verified``);
   otherwise, if the trigger is met (``min_batch`` pending requests, or the oldest older than ``max_age_hours``),
   move every pending request into a new batch (one transaction);
2. unlearn the batch's new ids from the batch's parent version into ``models_dir/<run name>`` (the run name is
   derived from the batch id, so Ray Train resumes the same run after a crash; a checkpoint already written there
   by a crashed attempt is verified and adopted, never overwritten). The executor writes into a staging directory
   named after the lease generation, renamed into place only while the lease is still held
   (:mod:`orchestrator.ledger.fencing`): a holder that was frozen and taken over cannot write there;
3. verify the candidate (:mod:`orchestrator.ledger.verification`), writing the per-sample evidence file first
   (:mod:`orchestrator.ledger.evidence`); ``verified`` -> register + promote it and mark the requests verified in one
   transaction (re-checking the candidate's sha256 inside it); ``failed`` -> no promotion, the batch is failed with
   the reason, its requests go back to pending with retry_count + 1, and requests reaching ``escalate_after``
   failures are escalated (status failed, exit 3); ``no-signal`` -> the ``on_no_signal`` policy: ``hold`` puts the
   requests back to pending without using a retry and waits until the pending ids are :data:`HOLD_GROWTH` times as
   many (or the hold's age / size limit is reached: then they escalate), ``promote`` promotes with the evidence
   "not detectable before or after". A configuration error or an infrastructure fault (an exception in unlearning
   or verification, a changed candidate) fails the batch without using a retry.

Every phase ends in a committed transition (:mod:`orchestrator.ledger.transitions`); ``UNLEARN_CRASH_AT=<phase>`` kills the
process with ``os._exit`` at that point (for the crash tests). Exit codes: 0 done or nothing to do, 1 batch failed
(requests re-queued), 2 user error, 3 escalation, 75 another run holds the lock.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.ledger.db import Ledger, parse_time
from orchestrator.ledger.executors import Executor
from orchestrator.ledger.fencing import install_candidate, remove_stale_staging, staging_dir
from orchestrator.ledger.lease import Lease, LeaseLost
from orchestrator.ledger.safe_text import printable
from orchestrator.ledger.transitions import (
    CandidateChanged,
    create_batch,
    fail_batch,
    hold_batch,
    promote_batch,
    record_trained,
    record_verified,
    run_name_for,
)
from orchestrator.ledger.verification import VerifyConfig
from orchestrator.ledger.versions import checkpoint_digest, forgotten_ids, require_current, verify_model
from trainables.errors import UserError

CRASH_ENV = "UNLEARN_CRASH_AT"
# after_training: the checkpoint is written but not recorded (a re-run adopts it); before_verification: recorded as
# trained; after_promotion: inside the promotion transaction, before the requests are marked (rolled back on crash).
CRASH_PHASES = ("after_batching", "during_training", "after_training", "before_verification", "after_verification",
                "after_promotion")
CRASH_EXIT = 137  # what a SIGKILL looks like to the caller
EXIT_OK, EXIT_BATCH_FAILED, EXIT_ESCALATED = 0, 1, 3
HOLD_GROWTH = 2  # after a no-signal batch of n ids, the next batch waits for at least HOLD_GROWTH * n ids


def crash_point(phase: str) -> None:
    """Die here, without cleanup, if ``$UNLEARN_CRASH_AT`` names this phase (fault injection for tests)."""
    if os.environ.get(CRASH_ENV) == phase:
        print(f"crash injected at {phase}", file=sys.stderr, flush=True)
        os._exit(CRASH_EXIT)


@dataclass
class ScheduleOptions:
    min_batch: int = 1
    max_age_hours: float | None = None
    escalate_after: int = 3
    models_dir: Path | None = None  # default: <ledger dir>/models
    lock_timeout_s: float = 600.0
    config_file: str | None = None
    overrides: list[str] = field(default_factory=list)
    verify: VerifyConfig = field(default_factory=VerifyConfig)
    results: str | None = None  # results store: one scheduled-batch row per promoted / failed batch
    storage: str | None = None  # Ray Train run storage (retention deletes failed batches' run directories there)
    keep_failed: int = 3        # failed batches whose files (candidate, Ray run directory) are kept


@dataclass
class Failure:
    """Why a batch is not promoted. ``count``: a verification failure (uses one retry of each request); a
    configuration error or an infrastructure fault does not. ``hold``: verdict no-signal under the hold policy."""

    reason: str
    metrics: dict = field(default_factory=dict)
    count: bool = False
    evidence_sha256: str | None = None
    hold: bool = False


@dataclass
class Outcome:
    code: int
    message: str
    batch_id: int | None = None
    version: int | None = None


def hold(ledger: Ledger, pending: list[dict[str, Any]], opts: ScheduleOptions,
         now: float | None = None) -> tuple[bool, str]:
    """Are the pending requests held after a no-signal batch? (held, explanation). The hold lasts until the
    pending ids are :data:`HOLD_GROWTH` times the last no-signal batch, or its oldest request is older than
    ``hold_max_age_hours`` (then one more batch is tried; no signal again escalates)."""
    batches = ledger.list_batches()
    last = batches[-1] if batches else None
    if not pending or last is None or last["state"] != "failed" or last.get("verdict") != "no-signal":
        return False, ""
    current = ledger.current_model()
    new_ids = {i for r in pending for i in r["sample_ids"]} - set(current["forgotten_ids"] if current else [])
    need = HOLD_GROWTH * len(last["forget_ids"])
    now = time.time() if now is None else now
    age_h = (now - min(parse_time(r["received_at"]) for r in pending)) / 3600
    if len(new_ids) >= need:
        return False, ""
    if age_h >= opts.verify.hold_max_age_hours:
        return False, ""
    return True, (f"holding {len(pending)} requests: batch {last['batch_id']} ({len(last['forget_ids'])} ids) showed "
                  f"no membership signal even before unlearning; waiting for >= {need} ids (now {len(new_ids)}) "
                  f"or until the oldest is {opts.verify.hold_max_age_hours:g} h old (now {age_h:.1f} h)")


def trigger(pending: list[dict[str, Any]], opts: ScheduleOptions, now: float | None = None) -> tuple[bool, str]:
    """Is a batch due? (met, explanation)."""
    if not pending:
        return False, "no pending requests"
    now = time.time() if now is None else now
    age_h = (now - min(parse_time(r["received_at"]) for r in pending)) / 3600
    if len(pending) >= opts.min_batch:
        return True, f"{len(pending)} pending requests >= min-batch {opts.min_batch}"
    if opts.max_age_hours is not None and age_h >= opts.max_age_hours:
        return True, f"oldest pending request is {age_h:.1f} h old >= max-age {opts.max_age_hours} h"
    age = f", oldest {age_h:.1f} h" + (f" (< max-age {opts.max_age_hours} h)" if opts.max_age_hours else "")
    return False, f"{len(pending)} pending requests (< min-batch {opts.min_batch}){age}"


def with_kind_default(config: dict[str, Any], parent: dict[str, Any] | None) -> dict[str, Any]:
    """The batch config with the parent's default method (its family's or kind's) when the job names none, so that
    the frozen config (and the certificate) says which method ran."""
    job = config.get("job")
    if parent is None or not isinstance(job, dict) or "method" in job:
        return config
    from trainables.checkpoint import read_meta
    from trainables.unlearning.config import UnlearnJob, with_default_method
    from trainables.unlearning.registry import default_key

    resolved = with_default_method(UnlearnJob.model_validate(job), default_key(read_meta(parent["uri"])))
    return {**config, "job": resolved.model_dump(mode="json")}


class Scheduler:
    """One scheduling run against the ledger at ``ledger_path``."""

    def __init__(self, ledger_path: str | Path, executor: Executor, opts: ScheduleOptions,
                 log: Callable[[str], None] = print):
        self.ledger = Ledger(ledger_path)
        self.executor, self.opts, self.log = executor, opts, log
        self.models_dir = Path(opts.models_dir or self.ledger.path.parent / "models")
        self.lease: Lease | None = None

    # ------------------------------------------------------------------------------------------- entry
    def plan(self) -> Outcome:
        """``--dry-run``: say what a run would do; write nothing."""
        current = require_current(self.ledger)
        verify_model(current)
        batch = self.ledger.unfinished_batch()
        if batch is not None:
            return Outcome(EXIT_OK, f"would resume batch {batch['batch_id']} ({batch['state']}, run "
                                    f"{batch['run_name']}) from version {batch['parent_version']}", batch["batch_id"])
        pending = self.ledger.list_requests(status=["pending"])
        held, why = hold(self.ledger, pending, self.opts)
        met, why = (False, why) if held else trigger(pending, self.opts)
        if not met:
            return Outcome(EXIT_OK, f"nothing to do: {why}")
        ids = {i for r in pending for i in r["sample_ids"]} - set(current["forgotten_ids"])
        next_id = len(self.ledger.list_batches()) + 1
        return Outcome(EXIT_OK, f"would batch {len(pending)} requests ({len(ids)} new sample ids) as batch {next_id} "
                                f"(run {run_name_for(self.ledger.ledger_id, next_id)}), unlearned from version "
                                f"{current['version']} into {self.models_dir} ({why})")

    def run(self) -> Outcome:
        verify_model(require_current(self.ledger))  # a tampered served model stops everything (exit 2)
        outcome = Outcome(EXIT_OK, "nothing to do")
        with Lease(self.ledger.path, timeout_s=self.opts.lock_timeout_s) as self.lease:
            for _ in range(2):  # a resumed batch first, if any, then at most one new batch
                batch = self.ledger.unfinished_batch()
                resumed = batch is not None
                if resumed:
                    self.log(f"resuming batch {batch['batch_id']} from state {batch['state']} "
                             f"(run {batch['run_name']})")
                else:
                    batch, outcome = self._new_batch(outcome)
                    if batch is None:
                        break
                    crash_point("after_batching")
                outcome = self._drive(batch)
                if outcome.code != EXIT_OK or not resumed:
                    break
            self._retain()
        escalated = self.ledger.list_requests(status=["failed"])
        if escalated and outcome.code == EXIT_OK:
            outcome = Outcome(EXIT_ESCALATED, escalation_message(escalated), outcome.batch_id, outcome.version)
        return outcome

    def _new_batch(self, outcome: Outcome) -> tuple[dict[str, Any] | None, Outcome]:
        """Batch the pending requests if the trigger is met; (batch to drive or None, outcome so far)."""
        pending = self.ledger.list_requests(status=["pending"])
        held, why = hold(self.ledger, pending, self.opts)
        met, why = (False, why) if held else trigger(pending, self.opts)
        if not met:
            return None, outcome if outcome.batch_id is not None else Outcome(EXIT_OK, f"nothing to do: {why}")
        config = with_kind_default(self.executor.resolve_config(self.opts.config_file, self.opts.overrides,
                                                                self.opts.verify), self.ledger.current_model())
        batch = create_batch(self.ledger, self.lease, config=config)
        if batch is None:
            return None, outcome
        n = len(self.ledger.list_requests(batch_id=batch["batch_id"]))
        self.log(f"batch {batch['batch_id']}: {n} requests, {len(batch['forget_ids'])} new sample ids, from version "
                 f"{batch['parent_version']}, run {batch['run_name']} ({why})")
        if batch["state"] == "done":  # nothing new to unlearn: verified by the current model at once
            return None, Outcome(EXIT_OK, f"batch {batch['batch_id']}: every id was already forgotten by version "
                                          f"{batch['parent_version']}; requests verified", batch["batch_id"],
                                 batch["parent_version"])
        return batch, outcome

    # ------------------------------------------------------------------------------------------ phases
    def _drive(self, batch: dict[str, Any]) -> Outcome:
        batch_id = batch["batch_id"]
        while True:
            batch = self.ledger.get_batch(batch_id)
            state = batch["state"]
            if state == "batched":
                failure = self._train(batch)
            elif state == "trained":
                failure = self._verify(batch)
            elif state == "verified":
                try:
                    version = promote_batch(self.ledger, self.lease, batch_id,
                                            before_commit=lambda: crash_point("after_promotion"))
                except CandidateChanged as exc:
                    failure = Failure(str(exc))
                else:
                    self._record(batch_id, version)
                    verdict = self.ledger.get_batch(batch_id).get("verdict") or "verified"
                    how = ("verified" if verdict != "no-signal" else
                           "promoted with no-signal evidence (not detectable before or after)")
                    return Outcome(EXIT_OK, f"batch {batch_id} {how}; model version {version} is now current",
                                   batch_id, version)
            else:  # done / failed / rolled_back: nothing left to do
                return Outcome(EXIT_OK, f"batch {batch_id} is {state}", batch_id)
            if failure is not None:
                return self._fail(batch, failure)

    def _train(self, batch: dict[str, Any]) -> Failure | None:
        parent = self.ledger.get_model(batch["parent_version"])
        parent_meta = verify_model(parent)
        out = self.models_dir / batch["run_name"]
        if out.is_dir() and any(out.iterdir()):
            self.log(f"batch {batch['batch_id']}: adopting the checkpoint a crashed attempt wrote at {out}")
        else:
            for partial in self.models_dir.glob(f".{out.name}.tmp-*"):  # a crash inside save_checkpoint
                shutil.rmtree(partial, ignore_errors=True)
            remove_stale_staging(self.models_dir, out.name, self.lease.generation)
            # Written under this lease's generation, moved to `out` only while the lease is still ours.
            staging = staging_dir(self.models_dir, out.name, self.lease.generation)
            self.log(f"batch {batch['batch_id']}: unlearning {len(batch['forget_ids'])} ids from version "
                     f"{parent['version']} -> {out}")
            try:
                written = self.executor.unlearn(Path(parent["uri"]), batch["forget_ids"], batch["config"], staging,
                                                batch["run_name"])
            except Exception as exc:  # noqa: BLE001  any failure of the job fails the batch, with its reason
                return Failure(f"unlearning failed: {type(exc).__name__}: {exc}")  # not the requests' fault
            if Path(written).resolve() != staging.resolve():
                return Failure(f"the executor wrote {written}, not the expected {staging}")
            try:
                install_candidate(self.ledger, self.lease, staging, out)  # LeaseLost if taken over meanwhile
            except LeaseLost:
                raise
            except (OSError, RuntimeError) as exc:
                return Failure(f"the candidate could not be put in place at {out}: {exc}")
            crash_point("after_training")
        try:
            digest, meta = checkpoint_digest(out)
        except UserError as exc:
            return Failure(f"candidate checkpoint unusable: {exc}")
        expected = set(parent["forgotten_ids"]) | set(batch["forget_ids"])
        if forgotten_ids(meta) != expected:
            return Failure(f"candidate {out} records {len(forgotten_ids(meta))} forgotten ids, the lineage needs "
                           f"{len(expected)}")
        parent_sha = (meta.get("parent") or {}).get("sha256")
        if parent_sha is not None and parent_sha != parent_meta["sha256"]["model.pt"]:
            return Failure(f"candidate {out} was not unlearned from version {parent['version']}")
        record_trained(self.ledger, self.lease, batch["batch_id"], str(out.resolve()), digest)
        crash_point("before_verification")
        return None

    def _verify(self, batch: dict[str, Any]) -> Failure | None:
        from orchestrator.ledger.evidence import write_evidence

        parent = self.ledger.get_model(batch["parent_version"])
        verify_model(parent)
        try:
            digest, _ = checkpoint_digest(batch["candidate_uri"])
        except UserError as exc:
            return Failure(f"candidate checkpoint unusable: {exc}")
        if digest != batch["candidate_sha256"]:
            return Failure(f"candidate {batch['candidate_uri']} was modified after training")
        all_forgotten = sorted(set(parent["forgotten_ids"]) | set(batch["forget_ids"]))
        self.log(f"batch {batch['batch_id']}: verifying {batch['candidate_uri']}")
        try:
            result = self.executor.verify(Path(batch["candidate_uri"]), Path(parent["uri"]), batch["forget_ids"],
                                          all_forgotten, batch["config"])
            _, sha = write_evidence(self.ledger.path, batch["batch_id"], result.evidence)
        except Exception as exc:  # noqa: BLE001  a fault of the machinery, not evidence against the candidate
            return Failure(f"verification could not run: {type(exc).__name__}: {exc}")
        self.log(f"batch {batch['batch_id']}: {describe_verdict(result.verification)}")
        policy = VerifyConfig.model_validate(batch["config"].get("verify") or {})
        if result.verdict == "failed":
            return Failure(f"verification failed: {result.reason}", result.metrics, count=True, evidence_sha256=sha)
        if result.verdict == "no-signal" and policy.on_no_signal == "hold":
            return Failure(result.reason, result.metrics, evidence_sha256=sha, hold=True)
        record_verified(self.ledger, self.lease, batch["batch_id"], result.metrics, evidence_sha256=sha)
        crash_point("after_verification")
        return None

    def _retain(self) -> None:
        """Remove the files of failed batches beyond ``keep_failed`` (a failure here is only a warning)."""
        from orchestrator.ledger.retention import clean_failed_batches

        try:
            cleaned = clean_failed_batches(self.ledger, self.lease, self.models_dir, self.opts.storage,
                                           keep=self.opts.keep_failed)
        except (OSError, UserError) as exc:
            self.log(f"warning: retention: could not remove failed batches' files: {exc}")
            return
        if cleaned:
            self.log(f"retention: removed the files of failed batch(es) {', '.join(map(str, cleaned))} "
                     f"(keeping the newest {self.opts.keep_failed})")

    def _record(self, batch_id: int, version: int | None) -> None:
        """Append the batch's results row (after the ledger committed; a failure to write it is only a warning:
        the ledger is the source of truth)."""
        if not self.opts.results:
            return
        from orchestrator.results.batch_rows import batch_row
        from orchestrator.results.store import append

        try:
            append(self.opts.results, [batch_row(self.ledger, batch_id, version)])
        except Exception as exc:  # noqa: BLE001
            self.log(f"warning: batch {batch_id}: results row not written to {self.opts.results}: {exc}")

    def _fail(self, batch: dict[str, Any], failure: Failure) -> Outcome:
        if failure.hold:
            return self._hold(batch, failure)
        reason = failure.reason
        escalated = fail_batch(self.ledger, self.lease, batch["batch_id"], reason, metrics=failure.metrics or None,
                               max_failures=self.opts.escalate_after, count_retry=failure.count,
                               evidence_sha256=failure.evidence_sha256)
        self._record(batch["batch_id"], None)
        if not failure.count:
            reason += " (a fault, not a verification failure: no retry was used)"
        message = (f"batch {batch['batch_id']} failed, nothing promoted (version {batch['parent_version']} stays "
                   f"current): {reason}")
        if escalated:
            rows = [self.ledger.get_request(r) for r in escalated]
            return Outcome(EXIT_ESCALATED, message + "\n" + escalation_message(rows), batch["batch_id"])
        return Outcome(EXIT_BATCH_FAILED, message + "; its requests are pending again and retried next run",
                       batch["batch_id"])


    def _hold(self, batch: dict[str, Any], failure: Failure) -> Outcome:
        """Verdict no-signal under the hold policy: requeue without a retry, or escalate past the limits."""
        policy = VerifyConfig.model_validate(batch["config"].get("verify") or {})
        requests = self.ledger.list_requests(batch_id=batch["batch_id"])
        age_h = (time.time() - min(parse_time(r["received_at"]) for r in requests)) / 3600 if requests else 0.0
        n = len(batch["forget_ids"])
        limit = (f"the batch has {n} ids >= the hold's size limit {policy.hold_max_size}" if n >= policy.hold_max_size
                 else f"its oldest request is {age_h:.1f} h old >= the hold's age limit {policy.hold_max_age_hours:g} h"
                 if age_h >= policy.hold_max_age_hours else None)
        reason = failure.reason + (f"; {limit}: escalated" if limit else
                                   f"; held: batched again once >= {HOLD_GROWTH * n} ids are pending")
        escalated = hold_batch(self.ledger, self.lease, batch["batch_id"], reason, metrics=failure.metrics,
                               evidence_sha256=failure.evidence_sha256, escalate=limit is not None)
        self._record(batch["batch_id"], None)
        message = (f"batch {batch['batch_id']}: no-signal, nothing promoted (version {batch['parent_version']} stays "
                   f"current): {reason}")
        if escalated:
            rows = [self.ledger.get_request(r) for r in escalated]
            return Outcome(EXIT_ESCALATED, message + "\n" + escalation_message(rows) + " (or accept the weaker "
                           "evidence with `schedule run --on-no-signal promote`)", batch["batch_id"])
        return Outcome(EXIT_OK, message + "; the requests are pending again (no retry used)", batch["batch_id"])


def describe_verdict(record: dict[str, Any]) -> str:
    """One line: verdict, test statistic and p-values, sizes, utility."""
    if not record:
        return "no verdict recorded"
    def num(v):
        return "-" if v is None else f"{v:.3g}"
    util = record.get("utility") or {}
    text = (f"verdict {record['verdict']}: {record['test']} U = {num(record.get('statistic'))}, "
            f"p = {num(record.get('p_value'))} (alpha {record['alpha']}); parent p = {num(record.get('parent_p_value'))}"
            f" (power check {'passed' if record.get('parent_rejects') else 'not passed'}); {record['n_forget']} ids vs "
            f"{record['n_nonmember']} non-members, attack {record['attack']}, K = {record.get('reference_k', 0)}")
    if util:
        text += (f"; utility {num(util.get('parent'))} -> {num(util.get('candidate'))} (drop {num(util.get('drop'))}, "
                 f"[{num(util.get('ci_low'))}, {num(util.get('ci_high'))}])")
    return text


def escalation_message(rows: list[dict[str, Any]]) -> str:
    shown = ", ".join(printable(r["request_id"]) for r in rows[:10]) + (" ..." if len(rows) > 10 else "")
    last = printable(rows[0].get("reason") or "see `unlearn requests show`")
    failed = f"failed {rows[0]['retry_count']} batches and " if rows[0]["retry_count"] else ""
    return (f"ESCALATION: {len(rows)} deletion requests {failed}need a human ({shown}); last reason: {last}. "
            f"Fix the cause, then `unlearn requests retry --failed`.")
