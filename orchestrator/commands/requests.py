"""`unlearn requests add|list|show|retry|certificate`: record deletion requests in the ledger and follow them.

    unlearn requests add --subject alice --keys cat/001.png,dog/017.png   # record keys (docs/data.md)
    unlearn requests add --subject alice --sample-ids 3,17,42               # or internal sample ids
    unlearn requests add --file requests.csv   # subject_id, sample_ids or key[, request_id, received_at]
    unlearn requests list --status pending,failed
    unlearn requests show req-000003
    unlearn requests certificate req-000003 --format html --out cert.html
    unlearn requests certificate --verify cert.html
"""

from __future__ import annotations

from orchestrator.ledger.db import REQUEST_STATES, add_ledger_arg


def register(sub) -> None:
    p = sub.add_parser("requests", help="record and list deletion requests (the ledger)",
                       description="Deletion requests in the ledger: add them (checked against the current model), "
                                   "list them by status, show one with its batches. See docs/ledger.md.")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)

    add = actions.add_parser("add", help="record deletion requests",
                             description="Record one request (--subject and --keys or --sample-ids) or every "
                                         "request of a CSV / Parquet file. Records must be members of the current "
                                         "model and not already forgotten; otherwise nothing is added (exit 2). A "
                                         "repeated --request-id with the same content is skipped, so re-imports "
                                         "are idempotent.")
    add.add_argument("--subject", help="the data subject who asked (an id, not personal data)")
    add.add_argument("--keys", help="comma-separated record keys, e.g. cat/001.png,dog/017.png (docs/data.md)")
    add.add_argument("--sample-ids", help="comma-separated internal sample ids, e.g. 1,2,3")
    add.add_argument("--request-id", help="an external request id (default: req-NNNNNN)")
    add.add_argument("--received-at", help="ISO-8601 time the request was received (default: now)")
    add.add_argument("--file", help="a .csv or .parquet file: subject_id, sample_ids (or key: one record per row)"
                                    "[, request_id, received_at]")
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

    cert = actions.add_parser("certificate", help="issue or verify a verified request's deletion certificate",
                              description="Issue the certificate of a verified request: its records, the batch, "
                                          "parent and promoted model versions (sha256, lineage), method and config, "
                                          "the gate's evidence and the request's own membership scores before and "
                                          "after. Its content sha256 is recorded in the ledger; --verify FILE "
                                          "detects any later edit. See docs/ledger.md, Certificates.")
    cert.add_argument("request_id", nargs="?", help="the verified request")
    cert.add_argument("--format", choices=("json", "md", "html"),
                      help="default: from the --out suffix (.json/.md/.html), else json")
    cert.add_argument("--out", metavar="FILE", help="write here (must not exist; default: print to stdout)")
    cert.add_argument("--verify", metavar="FILE", help="check a certificate file against the ledger instead")
    add_ledger_arg(cert)
    cert.set_defaults(func=run_certificate)


def run_add(args) -> int:
    from orchestrator.ledger.safe_text import printable
    from trainables import console

    result = add_requests(args)
    added = [rid for rid, ok in result if ok]
    for rid, ok in result:
        console.info(f"{printable(rid)}  {'added (pending)' if ok else 'already recorded, skipped'}")
    print(f"{len(added)} request(s) added, {len(result) - len(added)} already present")
    return 0


def add_requests(args) -> list[tuple[str, bool]]:
    """The work of ``requests add`` (the CLI and the Python API's ``Ledger.add_request``): ``(request_id, added)``
    per request, ``added`` False for a repeated request id with the same content."""
    from orchestrator.ledger.db import Ledger
    from orchestrator.ledger.intake import check_members, make_request, read_request_file, reject_forgotten
    from orchestrator.ledger.record_keys import intake_keys, resolve_request_keys
    from orchestrator.ledger.versions import intake_members, require_current
    from trainables.data.keys import parse_keys
    from trainables.errors import UserError

    if args.file and (args.subject or args.sample_ids or args.keys or args.request_id):
        raise UserError("give either --file or --subject with --keys / --sample-ids, not both")
    if args.keys is not None and args.sample_ids is not None:
        raise UserError("give --keys or --sample-ids, not both")
    if args.file:
        new = read_request_file(args.file)
    elif args.subject is None or (args.sample_ids is None and args.keys is None):
        raise UserError("requests add needs --subject and --keys or --sample-ids (or --file)")
    else:
        keys = None if args.keys is None else tuple(parse_keys(args.keys, "--keys"))
        new = [make_request(args.subject, args.sample_ids, request_id=args.request_id,
                            received_at=args.received_at, keys=keys)]
    with Ledger.open(args.ledger) as ledger:
        current = require_current(ledger)
        new = resolve_request_keys(new, intake_keys(ledger, current))  # keys -> ids, and ids -> keys
        check_members(new, intake_members(ledger, current))  # the ledger's copy of the members
        return ledger.add_requests(new, check=reject_forgotten)


def run_list(args) -> int:
    from orchestrator.ledger.db import Ledger
    from orchestrator.ledger.views import as_json, request_table

    status = [s.strip() for s in args.status.split(",") if s.strip()] if args.status else None
    with Ledger.open(args.ledger) as ledger:
        rows = ledger.list_requests(status=status)
    print(as_json(rows) if args.json else request_table(rows))
    return 0


def run_show(args) -> int:
    from orchestrator.ledger.db import Ledger
    from orchestrator.ledger.safe_text import printable
    from orchestrator.ledger.views import as_json, batch_table
    from trainables.errors import UserError

    with Ledger.open(args.ledger) as ledger:
        row = ledger.get_request(args.request_id)
        if row is None:
            raise UserError(f"no request {args.request_id!r} in {ledger.path}")
        batches = ledger.request_batches(args.request_id)
        version = ledger.conn.execute("SELECT version FROM model_versions WHERE batch_id = ?",
                                      (row["batch_id"],)).fetchone() if row["status"] == "verified" else None
        certs = [dict(r) for r in ledger.conn.execute(
            "SELECT certificate_id, content_sha256, format, issued_at, out FROM certificates WHERE request_id = ? "
            "ORDER BY certificate_id", (args.request_id,))]
    if args.json:
        print(as_json({**row, "batches": batches, "verified_by_version": version[0] if version else None,
                       "certificates": certs}))
        return 0
    for key in ("request_id", "subject_id", "status", "received_at", "updated_at", "retry_count", "batch_id",
                "reason"):
        print(f"{key:<14}{printable(row[key]) if row[key] is not None else '-'}")
    print(f"{'sample_ids':<14}{', '.join(map(str, row['sample_ids']))}")
    if row.get("sample_keys"):
        print(f"{'keys':<14}{', '.join(map(printable, row['sample_keys']))}")
    if version:
        print(f"{'forgotten by':<14}model version {version[0]}")
    print("batches:")
    print(batch_table(batches))
    for c in certs:
        print(f"certificate #{c['certificate_id']} issued {c['issued_at']} ({c['format']}, sha256 "
              f"{c['content_sha256'][:16]}...){' -> ' + c['out'] if c['out'] else ''}")
    return 0


def run_retry(args) -> int:
    from orchestrator.ledger.db import Ledger
    from orchestrator.ledger.safe_text import printable
    from trainables.errors import UserError

    if bool(args.failed) == bool(args.request_ids):
        raise UserError("name request ids or pass --failed (not both)")
    with Ledger.open(args.ledger) as ledger:
        done = ledger.retry_failed(None if args.failed else args.request_ids)
    print(f"{len(done)} request(s) pending again" + (f": {', '.join(map(printable, done))}" if done else ""))
    return 0


def run_certificate(args) -> int:
    from orchestrator.ledger.certificate.files import (
        check_out_path,
        format_for,
        issue_certificate,
        verify_certificate,
    )
    from orchestrator.ledger.db import Ledger
    from trainables.errors import UserError

    if args.verify:
        if args.request_id or args.out or args.format:
            raise UserError("--verify FILE takes no request id, --out or --format")
        with Ledger.open(args.ledger) as ledger:
            report = verify_certificate(ledger, args.verify)
        print(f"certificate OK: {report['file']} ({report['format']}) is the certificate #{report['certificate_id']} "
              f"issued {report['issued_at']} for request {report['request_id']}: {report['verdict']} "
              f"({report['evidence']}), model version {report['version']}; content sha256 {report['content_sha256']}")
        return 0
    if not args.request_id:
        raise UserError("name a request id (or --verify FILE)")
    fmt = format_for(args.format, args.out)
    if args.out:
        check_out_path(args.out)  # before opening the ledger: nothing is done for an --out that cannot be written
    with Ledger.open(args.ledger) as ledger:
        text, sha = issue_certificate(ledger, args.request_id, fmt, args.out)
    if args.out:
        print(f"certificate of request {args.request_id} written to {args.out} ({fmt}); content sha256 {sha} "
              f"recorded in the ledger")
    else:
        print(text, end="")
    return 0
