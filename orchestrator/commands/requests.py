"""`unlearn requests add|list|show|retry`: record deletion requests in the ledger and follow them.

    unlearn requests add --subject alice --sample-ids 3,17,42
    unlearn requests add --file requests.csv          # columns subject_id, sample_ids[, request_id, received_at]
    unlearn requests list --status pending,failed
    unlearn requests show req-000003
"""

from __future__ import annotations

from orchestrator.ledger import REQUEST_STATES, add_ledger_arg


def register(sub) -> None:
    p = sub.add_parser("requests", help="record and list deletion requests (the ledger)",
                       description="Deletion requests in the ledger: add them (checked against the current model), "
                                   "list them by status, show one with its batches. See docs/ledger.md.")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)

    add = actions.add_parser("add", help="record deletion requests",
                             description="Record one request (--subject and --sample-ids) or every row of a CSV / "
                                         "Parquet file. Ids must be members of the current model and not already "
                                         "forgotten; otherwise nothing is added (exit 2). A repeated --request-id "
                                         "with the same content is skipped, so re-imports are idempotent.")
    add.add_argument("--subject", help="the data subject who asked (an id, not personal data)")
    add.add_argument("--sample-ids", help="comma-separated sample ids, e.g. 1,2,3")
    add.add_argument("--request-id", help="an external request id (default: req-NNNNNN)")
    add.add_argument("--received-at", help="ISO-8601 time the request was received (default: now)")
    add.add_argument("--file", help="a .csv or .parquet file: subject_id, sample_ids[, request_id, received_at]")
    add_ledger_arg(add)
    add.set_defaults(func=run_add)

    ls = actions.add_parser("list", help="list requests", description="List requests, oldest first.")
    ls.add_argument("--status", help=f"comma-separated filter: {', '.join(REQUEST_STATES)}")
    ls.add_argument("--json", action="store_true", help="print JSON rows")
    add_ledger_arg(ls)
    ls.set_defaults(func=run_list)

    show = actions.add_parser("show", help="show one request and its batches")
    show.add_argument("request_id")
    show.add_argument("--json", action="store_true")
    add_ledger_arg(show)
    show.set_defaults(func=run_show)

    retry = actions.add_parser("retry", help="re-queue escalated (failed) requests",
                               description="Put escalated requests back to pending with a fresh retry count, after "
                                           "the cause of the failures was fixed.")
    retry.add_argument("request_ids", nargs="*", help="request ids (or --failed for all)")
    retry.add_argument("--failed", action="store_true", help="every request in status failed")
    add_ledger_arg(retry)
    retry.set_defaults(func=run_retry)


def run_add(args) -> int:
    from orchestrator.intake import check_members, make_request, read_request_file, reject_forgotten
    from orchestrator.ledger import Ledger
    from orchestrator.model_store import member_ids, require_current
    from trainables.errors import UserError

    if args.file and (args.subject or args.sample_ids or args.request_id):
        raise UserError("give either --file or --subject/--sample-ids, not both")
    if args.file:
        new = read_request_file(args.file)
    elif args.subject is None or args.sample_ids is None:
        raise UserError("requests add needs --subject and --sample-ids (or --file)")
    else:
        new = [make_request(args.subject, args.sample_ids, request_id=args.request_id,
                            received_at=args.received_at)]
    with Ledger.open(args.ledger) as ledger:
        check_members(new, member_ids(require_current(ledger)))  # verifies the checkpoint first
        result = ledger.add_requests(new, check=reject_forgotten)
    added = [rid for rid, ok in result if ok]
    from trainables import console

    for rid, ok in result:
        console.info(f"{rid}  {'added (pending)' if ok else 'already recorded, skipped'}")
    print(f"{len(added)} request(s) added, {len(result) - len(added)} already present")
    return 0


def run_list(args) -> int:
    from orchestrator.ledger import Ledger
    from orchestrator.ledger_views import as_json, request_table

    status = [s.strip() for s in args.status.split(",") if s.strip()] if args.status else None
    with Ledger.open(args.ledger) as ledger:
        rows = ledger.list_requests(status=status)
    print(as_json(rows) if args.json else request_table(rows))
    return 0


def run_show(args) -> int:
    from orchestrator.ledger import Ledger
    from orchestrator.ledger_views import as_json, batch_table
    from trainables.errors import UserError

    with Ledger.open(args.ledger) as ledger:
        row = ledger.get_request(args.request_id)
        if row is None:
            raise UserError(f"no request {args.request_id!r} in {ledger.path}")
        batches = ledger.request_batches(args.request_id)
        version = ledger.conn.execute("SELECT version FROM model_versions WHERE batch_id = ?",
                                      (row["batch_id"],)).fetchone() if row["status"] == "verified" else None
    if args.json:
        print(as_json({**row, "batches": batches, "verified_by_version": version[0] if version else None}))
        return 0
    for key in ("request_id", "subject_id", "status", "received_at", "updated_at", "retry_count", "batch_id",
                "reason"):
        print(f"{key:<14}{row[key] if row[key] is not None else '-'}")
    print(f"{'sample_ids':<14}{', '.join(map(str, row['sample_ids']))}")
    if version:
        print(f"{'forgotten by':<14}model version {version[0]}")
    print("batches:")
    print(batch_table(batches))
    return 0


def run_retry(args) -> int:
    from orchestrator.ledger import Ledger
    from trainables.errors import UserError

    if bool(args.failed) == bool(args.request_ids):
        raise UserError("name request ids or pass --failed (not both)")
    with Ledger.open(args.ledger) as ledger:
        done = ledger.retry_failed(None if args.failed else args.request_ids)
    print(f"{len(done)} request(s) pending again" + (f": {', '.join(done)}" if done else ""))
    return 0
