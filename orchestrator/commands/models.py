"""`unlearn models register|list|current|rollback`: the model versions the ledger serves.

    unlearn models register runs/pretrained      # the first version (becomes current)
    unlearn models register runs/retrained --promote --force --reason "full retrain, ticket 123"   # unverified
    unlearn models list
    unlearn models current                       # verifies the checkpoint (exit 2 if tampered)
    unlearn models rollback 3                    # back to an ancestor; its later requests are re-queued
    unlearn models references build --k 4        # LiRA reference models of the current version (Ray tasks)
"""

from __future__ import annotations

from orchestrator.ledger.db import add_ledger_arg


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

    refs = actions.add_parser("references", help="reference models of a version (the per-example attack)",
                              description="K reference models trained with a version's own recipe on random "
                                          "halves of its data pool, for the reference-calibrated (LiRA) attack. "
                                          "See docs/evaluation.md.")
    ref_actions = refs.add_subparsers(dest="ref_action", metavar="ACTION", required=True)
    build = ref_actions.add_parser("build", help="train (or reuse) the K reference models of a version",
                                   description="Train K reference models as parallel Ray tasks (one CPU each), "
                                               "store them beside the version's checkpoint with a manifest of "
                                               "sha256 digests, and record them in the ledger. An interrupted "
                                               "build resumes; building the same set again reuses it.")
    build.add_argument("--version", type=int, help="model version (default: the current one)")
    build.add_argument("--k", type=int, default=4, help="number of reference models, >= 2 (default 4)")
    build.add_argument("--workers", type=int, help="reference models trained at once as Ray tasks (default: K; 0: in this "
                                             "process, no Ray)")
    build.add_argument("--seed", type=int, default=0, help="seed of the IN-set design and the models (default 0)")
    build.add_argument("--out", help="directory to create (default: beside the checkpoint, "
                                     "NAME.references-vV-kK-sS)")
    build.add_argument("--address", help="Ray cluster to join (default: $RAY_ADDRESS, else a local instance)")
    add_ledger_arg(build)
    build.set_defaults(func=run_references_build)
    rls = ref_actions.add_parser("list", help="list the recorded reference sets")
    rls.add_argument("--json", action="store_true")
    add_ledger_arg(rls)
    rls.set_defaults(func=run_references_list)


def run_register(args) -> int:
    from orchestrator.ledger.db import resolve_ledger_path
    from trainables import console

    version, row, added = register_version(args)
    state = "current" if row["is_current"] else "registered (not current)"
    if row["evidence"] == "unverified":
        state += ", PROMOTED UNVERIFIED"
    print(f"model version {version}: {row['uri']} ({state}{'' if added else ', already registered'})")
    console.info(f"ledger: {resolve_ledger_path(args.ledger)}")
    return 0


def register_version(args) -> tuple[int, dict, bool]:
    """The work of ``models register`` (the CLI and the Python API's ``Ledger.register``): the version, its
    ledger row, and whether it was added now (False: that checkpoint was already registered)."""
    from orchestrator.ledger.db import Ledger, resolve_ledger_path
    from orchestrator.ledger.lease import Lease
    from orchestrator.ledger.versions import read_registration, register_checkpoint
    from trainables.errors import UserError

    if args.force and not args.promote:
        raise UserError("--force only applies to --promote")
    reason = (args.reason or "").strip()
    if args.force and not reason:
        raise UserError("--force needs --reason TEXT: why this version is promoted without verification (audited)")
    path = resolve_ledger_path(args.ledger)
    read_registration(args.checkpoint)  # a bad checkpoint must not create an empty ledger
    created = not path.exists()
    try:
        with Ledger(path, create=True) as ledger:
            if args.promote and ledger.current_model() is not None:
                if not args.force:
                    raise UserError("promoting an outside checkpoint bypasses the verification gate: its forgotten "
                                    "ids are only its own claim. Unlearn deletion requests with `unlearn schedule "
                                    "run` (verified before promotion), or pass --force --reason TEXT to promote it "
                                    "unverified (audited, shown as 'promoted unverified')")
                with Lease(path, timeout_s=args.lock_timeout) as lease:
                    version, added = register_checkpoint(ledger, args.checkpoint, promote=True, lease=lease,
                                                         force_reason=reason)
            else:
                version, added = register_checkpoint(ledger, args.checkpoint)
            row = ledger.get_model(version)
    except BaseException:
        if created:  # a ledger this call created and could not fill: leave nothing behind
            for leftover in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
                leftover.unlink(missing_ok=True)
        raise
    return version, row, added


def run_list(args) -> int:
    from orchestrator.ledger.db import Ledger
    from orchestrator.ledger.references import reference_k_by_version
    from orchestrator.ledger.views import as_json, model_table

    with Ledger.open(args.ledger) as ledger:
        refs = reference_k_by_version(ledger)
        rows = [{**r, "reference_k": refs.get(r["version"])} for r in ledger.list_models()]
    print(as_json(rows) if args.json else model_table(rows))
    return 0


def run_current(args) -> int:
    from orchestrator.ledger.db import Ledger
    from orchestrator.ledger.versions import require_current, verify_model
    from orchestrator.ledger.views import as_json, short_ids

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
    from orchestrator.ledger.views import evidence_label

    label = evidence_label(row)
    v = (row.get("metrics") or {}).get("verification") or {}
    if row.get("evidence") in ("verified", "no-signal") and v:
        label += (f" ({v.get('test')}: p = {v.get('p_value'):.3g}, parent p = {v.get('parent_p_value'):.3g}, "
                  f"alpha {v.get('alpha')}, {v.get('n_forget')} ids, attack {v.get('attack')}, "
                  f"K = {v.get('reference_k', 0)})")
    return label


def run_rollback(args) -> int:
    from orchestrator.ledger.db import Ledger
    from orchestrator.ledger.lease import Lease
    from orchestrator.ledger.transitions import rollback
    from orchestrator.ledger.versions import verify_model
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


def run_references_build(args) -> int:
    import os

    from orchestrator.ledger.db import Ledger
    from orchestrator.ledger.references import build_reference_set

    with Ledger.open(args.ledger) as ledger:
        set_id, ref, new = build_reference_set(ledger, args.version, k=args.k, workers=args.workers,
                                               seed=args.seed, out=args.out,
                                               address=args.address or os.environ.get("RAY_ADDRESS"))
    print(f"reference set {set_id} of model version {ref.manifest['parent']['version']}: K={ref.k}, {ref.path}"
          f"{'' if new else ' (already built, reused)'}")
    print(f"sha256 {ref.sha256}")
    print(f"use it: unlearn evaluate ... --set attack.attacks=[lira] --set attack.reference_set={ref.path}")
    return 0


def run_references_list(args) -> int:
    from orchestrator.ledger.db import Ledger
    from orchestrator.ledger.references import recorded_sets
    from orchestrator.ledger.views import as_json, format_table

    with Ledger.open(args.ledger) as ledger:
        rows = recorded_sets(ledger)
    print(as_json(rows) if args.json else format_table(
        rows, ["set_id", "version", "k", "seed", "created_at", "uri"],
        ["SET", "VERSION", "K", "SEED", "CREATED_AT", "URI"]))
    return 0
