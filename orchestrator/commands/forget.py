"""`unlearn forget`: make a checkpoint forget samples (gradient-penalty unlearning or a baseline); write a new one.

    unlearn forget --checkpoint runs/base --method memgp --set a=0 --set b=1 --set form=squared --out runs/forgot
    unlearn forget --checkpoint runs/base --config best.yaml --forget-ids 12,40,77 --out runs/forgot2
    unlearn forget --checkpoint runs/base --forget-keys cat/001.png,dog/017.png --out runs/forgot3
"""

from __future__ import annotations

import sys

from orchestrator.results.run_rows import add_results_args
from orchestrator.run.options import add_ray_args, ray_options_from_args
from trainables.unlearning.registry import METHODS, kind_defaults_text


def add_unlearn_config_args(p, *, example: str = "--set b=10 --set form=wgan --set runtime.device=cpu") -> None:
    """--config / --set for an UnlearnJob (flat keys: method, a, b, c, form, lr, epochs, ...; see docs)."""
    p.add_argument("--config", metavar="FILE", help="YAML of UnlearnJob keys (e.g. the best config `unlearn tune` "
                                                    "writes); see docs/unlearning.md")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help=f"override one key, e.g. {example} (repeatable; keys: docs/config.md)")
    p.add_argument("--forget-ids", metavar="IDS|FILE",
                   help="sample ids to forget: a comma list or a file of ids (default: the checkpoint's forget "
                        "split, minus ids it already forgot)")
    add_forget_keys_args(p)
    add_ray_args(p)
    add_results_args(p)


def add_forget_keys_args(p) -> None:
    """--forget-keys / --forget-keys-file: the forget set named by record keys (see :func:`forget_ids_arg`)."""
    p.add_argument("--forget-keys", metavar="KEYS",
                   help="record keys to forget, comma-separated (e.g. cat/001.png,train/17; see docs/data.md)")
    p.add_argument("--forget-keys-file", metavar="FILE",
                   help="record keys to forget: a .csv / .parquet with a 'key' column, or one key per line")


def register(sub) -> None:
    p = sub.add_parser(
        "forget", help="unlearn samples from a checkpoint (gp, memgp, or a baseline)",
        description="Unlearn the forget set from a checkpoint and write a new verified checkpoint (the input is "
                    "never modified). Methods: " + ", ".join(METHODS) + ". Shows every loss component per "
                    "epoch (the gradient-penalty term should fall towards 0) and prints a before/after summary.",
    )
    p.add_argument("--checkpoint", required=True, help="checkpoint directory to unlearn from")
    p.add_argument("--method", help=f"one of: {', '.join(METHODS)} (default: the model kind's, "
                                    f"{kind_defaults_text()})")
    p.add_argument("--epochs", type=int, help="unlearning epochs (default 10, as in the paper)")
    p.add_argument("--out", required=True, help="checkpoint directory to create (must not exist)")
    add_unlearn_config_args(p)
    p.set_defaults(func=run)


def load_unlearn_job(args, *, allowed: tuple[str, ...] | None = None, **cli_values):
    from orchestrator.config import load_job
    from trainables.unlearning.config import UnlearnJob

    return load_job(UnlearnJob, config_file=args.config, overrides=args.overrides, cli_values=cli_values,
                    command=f"unlearn {args.command}", allowed=allowed)


def forget_ids_arg(args):
    """The forget set as sample ids: ``--forget-ids``, or ``--forget-keys`` / ``--forget-keys-file`` resolved against
    the checkpoint's split manifest (each key must name a member); None: the checkpoint's forget split."""
    from trainables.errors import UserError
    from trainables.unlearning.plan import read_forget_ids

    given = [f for f, v in (("--forget-ids", args.forget_ids), ("--forget-keys", args.forget_keys),
                            ("--forget-keys-file", args.forget_keys_file)) if v is not None]
    if len(given) > 1:
        raise UserError(f"give one of {', '.join(given)}, not several")
    if args.forget_ids is not None:
        return read_forget_ids(args.forget_ids)
    if args.forget_keys is None and args.forget_keys_file is None:
        return None
    from pathlib import Path

    from trainables.checkpoint import MANIFEST
    from trainables.data.keys import parse_keys, read_key_file
    from trainables.data.splits import Splits

    keys = parse_keys(args.forget_keys, "--forget-keys") if args.forget_keys is not None else \
        read_key_file(args.forget_keys_file)
    manifest = Path(args.checkpoint) / MANIFEST
    if not manifest.is_file():
        raise UserError(f"{manifest} not found: record keys are resolved against the checkpoint's split manifest")
    return [int(i) for i in Splits.load(manifest).ids_of(keys, members_only=True)]


def print_summary(out, summary: dict) -> None:
    print(f"checkpoint: {out}")
    print(f"{summary['method']} on a {summary['model']} model: forgot {summary['forget']} samples, retained "
          f"{summary['retain']} (already forgotten before: {summary['already_forgotten']}), "
          f"{summary.get('wall_time_s', 0):.1f} s")
    final = summary.get("final") or {}
    terms = {k: v for k, v in final.items() if isinstance(v, float) and not k.endswith(("_time_s", "_per_s"))}
    before = summary.get("before") or {}
    for key, value in terms.items():
        prev = f"{before[key]:.4f} -> " if key in before else ""
        print(f"  {key:<18} {prev}{value:.4f}")


def run(args) -> int:
    import time

    from orchestrator.results.run_rows import append_from_args, parse_tags, rerun_note, results_path
    from orchestrator.run.jobs import run_forget

    results = results_path(args.results)  # checked before any work
    parse_tags(args.tags)
    options = ray_options_from_args(args)
    job = load_unlearn_job(args, method=args.method, epochs=args.epochs)
    from orchestrator.results.finished_runs import finished_unlearning

    if results and finished_unlearning(args.out, job, args.checkpoint, forget_ids_arg(args)):  # the row was lost
        rerun_note(args.out)
        append_from_args(args, args.out, results)
        return 0
    t0 = time.perf_counter()
    out, summary = run_forget(job, args.checkpoint, args.out, forget_ids_arg(args), workers=options.workers,
                              use_gpu=options.use_gpu, ray_options=options)
    print_summary(out, summary)
    append_from_args(args, out, results, summary=summary, wall_time_s=time.perf_counter() - t0)
    sys.stdout.flush()
    return 0
