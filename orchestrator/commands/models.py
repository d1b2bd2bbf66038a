"""`unlearn models register|list|current|rollback`: the model versions the ledger serves.

    unlearn models register runs/pretrained      # the first version (becomes current)
    unlearn models register runs/retrained --promote --force --reason "full retrain, ticket 123"   # unverified
    unlearn models list
    unlearn models current                       # verifies the checkpoint (exit 2 if tampered)
    unlearn models rollback 3                    # back to an ancestor; its later requests are re-queued
"""

from __future__ import annotations

from orchestrator.ledger import add_ledger_arg


def register(sub) -> None:
    p = sub.add_parser("models", help="register, list and roll back model versions (the ledger)",
                       description="Model versions in the ledger: exactly one is current (the served model). "
                                   "See docs/ledger.md.")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)

    reg = actions.add_parser("register", help="register a checkpoint as a model version",
                             description="Verify a checkpoint (sha256 of every file) and record it. The first "
                                         "version becomes current. Replacing the current version by an outside "
                                         "checkpoint bypasses the verification gate (its claims about itself "
                                         "cannot be checked here), so --promote needs --force --reason TEXT: the "
                                         "version is marked 'promoted unverified' and an audit event is written; it "
                                         "must still forget every verified request. Deletion batches are promoted "
                                         "by `unlearn schedule run`, through the gate. Creates the ledger if needed.")
    reg.add_argument("checkpoint", help="checkpoint directory (with splits.parquet)")
    reg.add_argument("--promote", action="store_true", help="make it the current version (with --force --reason)")
    reg.add_argument("--force", action="store_true", help="promote without the verification gate (audited)")
    reg.add_argument("--reason", metavar="TEXT", help="why the gate is bypassed (required with --force)")
    reg.add_argument("--lock-timeout", type=float, default=600.0, help="scheduler lock timeout, seconds")
    add_ledger_arg(reg)
    reg.set_defaults(func=run_register)

    ls = actions.add_parser("list", help="list model versions")
    ls.add_argument("--json", action="store_true")
    add_ledger_arg(ls)
    ls.set_defaults(func=run_list)

    cur = actions.add_parser("current", help="show (and verify) the current version")
    cur.add_argument("--json", action="store_true")
    add_ledger_arg(cur)
    cur.set_defaults(func=run_current)

    rb = actions.add_parser("rollback", help="make an earlier version current again",
                            description="Make an ancestor of the current version current again. Later versions "
                                        "are retired and every verified request the target does not forget goes "
                                        "back to pending, to be unlearned again by the next scheduled run.")
    rb.add_argument("version", type=int)
    rb.add_argument("--lock-timeout", type=float, default=600.0, help="scheduler lock timeout, seconds")
    add_ledger_arg(rb)
    rb.set_defaults(func=run_rollback)


def run_register(args) -> int:
    from orchestrator.lease import Lease
    from orchestrator.ledger import Ledger, resolve_ledger_path
    from orchestrator.model_store import checkpoint_digest, register_checkpoint
    from trainables.errors import UserError

    if args.force and not args.promote:
        raise UserError("--force only applies to --promote")
    reason = (args.reason or "").strip()
    if args.force and not reason:
        raise UserError("--force needs --reason TEXT: why this version is promoted without verification (audited)")
    path = resolve_ledger_path(args.ledger)
    checkpoint_digest(args.checkpoint)  # a bad checkpoint must not create an empty ledger
    with Ledger(path, create=True) as ledger:
        if args.promote and ledger.current_model() is not None:
            if not args.force:
                raise UserError("promoting an outside checkpoint bypasses the verification gate: its forgotten ids "
                                "are only its own claim. Unlearn deletion requests with `unlearn schedule run` "
                                "(verified before promotion), or pass --force --reason TEXT to promote it "
                                "unverified (audited, shown as 'promoted unverified')")
            with Lease(path, timeout_s=args.lock_timeout) as lease:
                version, added = register_checkpoint(ledger, args.checkpoint, promote=True, lease=lease,
                                                     force_reason=reason)
        else:
            version, added = register_checkpoint(ledger, args.checkpoint)
        row = ledger.get_model(version)
    state = "current" if row["is_current"] else "registered (not current)"
    if row["evidence"] == "unverified":
        state += ", PROMOTED UNVERIFIED"
    print(f"model version {version}: {row['uri']} ({state}{'' if added else ', already registered'})")
    print(f"ledger: {path}")
    return 0


def run_list(args) -> int:
    from orchestrator.ledger import Ledger
    from orchestrator.ledger_views import as_json, model_table

    with Ledger.open(args.ledger) as ledger:
        rows = ledger.list_models()
    print(as_json(rows) if args.json else model_table(rows))
    return 0


def run_current(args) -> int:
    from orchestrator.ledger import Ledger
    from orchestrator.ledger_views import as_json, short_ids
    from orchestrator.model_store import require_current, verify_model

    with Ledger.open(args.ledger) as ledger:
        row = require_current(ledger)
        verify_model(row)
        lineage = [r["version"] for r in ledger.lineage(row["version"])]
    if args.json:
        print(as_json({**row, "lineage": lineage}))
        return 0
    print(f"current model version {row['version']}  (checkpoint intact: sha256 matches)")
    print(f"evidence      {evidence_text(row)}")
    print(f"uri           {row['uri']}")
    print(f"lineage       {' <- '.join(map(str, lineage))}")
    print(f"forgotten     {len(row['forgotten_ids'])} ids  {short_ids(row['forgotten_ids'])}")
    print(f"promoted_at   {row['promoted_at']}")
    if row["metrics"]:
        print("metrics       " + ", ".join(f"{k}={v:.4g}" for k, v in row["metrics"].items()
                                            if isinstance(v, (int, float))))
    return 0


def evidence_text(row: dict) -> str:
    """How a version came to be served: the gate's verdict, no-signal, unverified (forced), or a base model."""
    from orchestrator.ledger_views import evidence_label

    label = evidence_label(row)
    v = (row.get("metrics") or {}).get("verification") or {}
    if row.get("evidence") in ("verified", "no-signal") and v:
        label += (f" ({v.get('test')}: p = {v.get('p_value'):.3g}, parent p = {v.get('parent_p_value'):.3g}, "
                  f"alpha {v.get('alpha')}, {v.get('n_forget')} ids, attack {v.get('attack')}, "
                  f"K = {v.get('reference_k', 0)})")
    return label


def run_rollback(args) -> int:
    from orchestrator.lease import Lease
    from orchestrator.ledger import Ledger
    from orchestrator.model_store import verify_model
    from orchestrator.transitions import rollback
    from trainables.errors import UserError

    with Ledger.open(args.ledger) as ledger:
        target = ledger.get_model(args.version)
        if target is None:
            raise UserError(f"no model version {args.version}; see `unlearn models list`")
        verify_model(target)  # never roll back onto a tampered checkpoint
        with Lease(ledger.path, timeout_s=args.lock_timeout) as lease:
            result = rollback(ledger, lease, args.version)
    print(f"model version {args.version} is current again; retired versions: "
          f"{', '.join(map(str, result['retired']))}")
    if result["requeued"]:
        print(f"{len(result['requeued'])} verified request(s) are pending again (the rolled-back versions had "
              f"forgotten them): {', '.join(result['requeued'][:10])}{' ...' if len(result['requeued']) > 10 else ''}")
    return 0
