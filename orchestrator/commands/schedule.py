"""`unlearn schedule run|status`: unlearn the accumulated deletion requests, verify, then promote.

    unlearn schedule run --min-batch 100 --max-age 24 --config best.yaml      # what cron / RayCronJob calls
    unlearn schedule run --dry-run
    unlearn schedule status

Exit codes: 0 done, nothing to do, or requests held after a no-signal batch; 1 the batch failed (requests
re-queued), 2 user error, 3 escalation (requests failed --escalate-after batches, or a no-signal hold ran out),
75 another run holds the lock (try later).
"""

from __future__ import annotations

from orchestrator.ledger.db import add_ledger_arg


def register(sub) -> None:
    p = sub.add_parser("schedule", help="scheduled unlearning of accumulated deletion requests",
                       description="Batch pending deletion requests, unlearn them from the current model, verify "
                                   "(the batch no longer detectable by a one-sided membership test while the parent's "
                                   "same test detects it, accuracy drop capped, earlier batches still forgotten) and "
                                   "only then promote the new version. Run it from cron or a KubeRay RayCronJob "
                                   "(deploy/); see docs/ledger.md.")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    run_p = actions.add_parser("run", help="run one scheduling pass (resumes an interrupted batch first)",
                               description=__doc__.split("\n\n", 1)[1], formatter_class=_raw())
    trig = run_p.add_argument_group("trigger")
    trig.add_argument("--min-batch", type=int, default=1, help="run when this many requests are pending (default 1)")
    trig.add_argument("--max-age", type=float, metavar="HOURS",
                      help="...or when the oldest pending request is this old")
    run_p.add_argument("--dry-run", action="store_true", help="say what would happen; change nothing")
    run_p.add_argument("--config", metavar="FILE", help="unlearning job YAML (e.g. the tuned best.yaml)")
    run_p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                       help="override one unlearning config key, e.g. --set epochs=5 (repeatable)")
    ver = run_p.add_argument_group("verification")
    ver.add_argument("--alpha", type=float, default=0.05,
                     help="level of the one-sided membership tests (default 0.05)")
    ver.add_argument("--max-accuracy-drop", type=float, default=0.05,
                     help="fail when the utility drop is significantly above this (default 0.05)")
    ver.add_argument("--utility-bootstrap", type=int, default=1000, help="paired bootstrap resamples (default 1000)")
    ver.add_argument("--on-no-signal", choices=["hold", "promote"], default="hold",
                     help="when even the parent shows no membership signal on the batch: hold the requests for a "
                          "larger batch (default), or promote and record 'not detectable before or after'")
    ver.add_argument("--hold-max-age", type=float, default=168.0, metavar="HOURS",
                     help="escalate held requests once the oldest is this old (default 168)")
    ver.add_argument("--hold-max-size", type=int, default=1000, metavar="IDS",
                     help="escalate when a batch of this many ids still shows no signal (default 1000)")
    ver.add_argument("--no-check-earlier", action="store_true", help="skip the relearning check on earlier batches")
    ver.add_argument("--attack-set", dest="attack_overrides", action="append", default=[], metavar="KEY=VALUE",
                     help="attack setting for verification, e.g. --attack-set n_views=6 (repeatable)")
    ops = run_p.add_argument_group("operations")
    ops.add_argument("--escalate-after", type=int, default=3, help="escalate a request after this many failed "
                                                                  "batches (default 3)")
    ops.add_argument("--models-dir", help="where candidate checkpoints go (default: <ledger dir>/models)")
    ops.add_argument("--storage", help="Ray Train storage for resumable runs (default: <ledger dir>/ray_runs; "
                                            "s3://, gs:// or NFS on multi-node clusters)")
    ops.add_argument("--workers", type=int, default=0, help="Ray Train workers (0: in this process)")
    ops.add_argument("--gpu", action="store_true", help="one GPU per Ray Train worker")
    ops.add_argument("--executor", default="ray", help="ray, or MODULE:CALLABLE for a custom executor")
    ops.add_argument("--results", metavar="PATH|URI", help="append a scheduled-batch row per promoted or failed "
                                                           "batch (default: $UNLEARN_RESULTS, else ./results)")
    ops.add_argument("--keep-failed", type=int, default=3, metavar="N",
                     help="keep the candidate checkpoints and Ray Train run directories of the newest N failed "
                          "batches; older ones are deleted at the end of each run (default 3; the ledger keeps "
                          "every batch's row)")
    ops.add_argument("--lock-timeout", type=float, default=600.0,
                     help="seconds without a heartbeat after which another run may take the lock over (default 600)")
    add_ledger_arg(run_p)
    run_p.set_defaults(func=run)

    st = actions.add_parser("status", help="lock, open batch, pending requests and recent batches")
    add_ledger_arg(st)
    st.set_defaults(func=run_status)


def _raw():
    import argparse

    return argparse.RawDescriptionHelpFormatter


def run(args) -> int:
    import sys

    from orchestrator.ledger.lease import EXIT_LOCKED, LeaseHeld, LeaseLost

    try:
        outcome = schedule_pass(args)
    except (LeaseHeld, LeaseLost) as exc:  # LeaseLost: this run was presumed dead and another one took over
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_LOCKED
    stream = sys.stdout if outcome.code == 0 else sys.stderr
    print(("dry run: " if args.dry_run else "") + outcome.message, file=stream, flush=True)
    return outcome.code


def schedule_pass(args):
    """The work of ``schedule run`` (the CLI and the Python API's ``schedule_run()``): one pass (or its plan with
    ``--dry-run``), as the scheduler's Outcome (exit code, message, batch, version). Raises LeaseHeld / LeaseLost
    when another run holds the lock."""
    from pathlib import Path

    from orchestrator.ledger.db import resolve_ledger_path
    from orchestrator.ledger.executors import load_executor
    from orchestrator.ledger.scheduler import ScheduleOptions, Scheduler
    from orchestrator.results.run_rows import results_path
    from trainables.errors import UserError

    if args.min_batch < 1:
        raise UserError(f"--min-batch must be at least 1, got {args.min_batch}")
    if args.max_age is not None and args.max_age < 0:
        raise UserError(f"--max-age must be >= 0 hours, got {args.max_age}")
    if args.escalate_after < 1:
        raise UserError(f"--escalate-after must be at least 1, got {args.escalate_after}")
    if args.keep_failed < 0:
        raise UserError(f"--keep-failed must be 0 or more, got {args.keep_failed}")
    path = resolve_ledger_path(args.ledger)
    results = results_path(args.results)
    if not args.dry_run:  # every place a run writes, checked before the lock is taken or anything trains
        from orchestrator.outputs import check_writable_dir, check_writable_file

        check_writable_file(path, "--ledger")
        check_writable_dir(args.models_dir or path.parent / "models", "--models-dir")
        if "://" not in (args.storage or ""):
            check_writable_dir(args.storage or path.parent / "ray_runs", "--storage")
    try:
        verify = verify_config(args)
    except ValueError as exc:
        raise UserError(f"invalid verification setting: {_first_error(exc)}") from None
    opts = ScheduleOptions(min_batch=args.min_batch, max_age_hours=args.max_age, escalate_after=args.escalate_after,
                           models_dir=Path(args.models_dir) if args.models_dir else None,
                           lock_timeout_s=args.lock_timeout, config_file=args.config, overrides=args.overrides,
                           verify=verify, results=results)
    storage = args.storage or str(path.parent.resolve() / "ray_runs")
    opts.storage, opts.keep_failed = storage, args.keep_failed
    executor = load_executor(args.executor, workers=args.workers, use_gpu=args.gpu, storage_path=storage)
    from trainables import console

    scheduler = Scheduler(path, executor, opts, log=console.info)
    try:
        return scheduler.plan() if args.dry_run else scheduler.run()
    finally:
        scheduler.ledger.close()  # in-process callers (the Python API) keep no connection open


def verify_config(args):
    """The gate's settings from the verification flags (raises ValueError on a bad one)."""
    from orchestrator.config import parse_overrides
    from orchestrator.ledger.verification import VerifyConfig

    return VerifyConfig(alpha=args.alpha, max_accuracy_drop=args.max_accuracy_drop,
                        utility_bootstrap=args.utility_bootstrap, check_earlier=not args.no_check_earlier,
                        on_no_signal=args.on_no_signal, hold_max_age_hours=args.hold_max_age,
                        hold_max_size=args.hold_max_size,
                        attack={"bootstrap": 0, **parse_overrides(args.attack_overrides)})


def _first_error(exc: ValueError) -> str:
    """pydantic's first error as one line: where and what."""
    errors = getattr(exc, "errors", None)
    if callable(errors):
        first = errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        return f"{where}: {first.get('msg')} (got {first.get('input')!r})"
    return str(exc).splitlines()[0]


def run_status(args) -> int:
    from orchestrator.ledger.db import Ledger
    from orchestrator.ledger.lease import describe_lock
    from orchestrator.ledger.views import batch_table

    with Ledger.open(args.ledger) as ledger:
        print(describe_lock(ledger))
        current = ledger.current_model()
        print(f"current model: {'version ' + str(current['version']) if current else 'none'}")
        counts = dict(ledger.conn.execute("SELECT status, COUNT(*) FROM requests GROUP BY status").fetchall())
        print("requests: " + (", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none"))
        open_batch = ledger.unfinished_batch()
        print(f"open batch: {open_batch['batch_id']} ({open_batch['state']})" if open_batch else "open batch: none")
        print(batch_table(ledger.list_batches()[-10:]))
    return 0
