"""`unlearn inspect DIR`: verify a checkpoint's sha256 and print its metadata."""

from __future__ import annotations

import json


def register(sub) -> None:
    p = sub.add_parser("inspect", help="verify a checkpoint and print its metadata",
                       description="Verify every file of a checkpoint against the sha256 in meta.json (exit 2 if "
                                   "tampered or corrupt) and print what it is.")
    p.add_argument("checkpoint", help="checkpoint directory")
    p.add_argument("--json", action="store_true", help="print the whole meta.json")
    p.add_argument("--history", action="store_true", help="print every epoch's metrics of the run that wrote it "
                                                          "(one line per epoch, also when progress lines were off)")
    p.set_defaults(func=run)


def run(args) -> int:
    from trainables.checkpoint import MANIFEST, verify_checkpoint
    from trainables.data.splits import Splits

    meta = verify_checkpoint(args.checkpoint)
    if args.json:
        print(json.dumps(meta, indent=2, sort_keys=True))
        return 0
    if args.history:
        from trainables.loops.progress import format_metrics, throughput

        history = meta.get("history") or []
        for metrics in history:
            print(f"epoch {metrics.get('epoch', '?')} {format_metrics(metrics)}  {throughput(metrics)}".rstrip())
        from pathlib import Path

        print(f"{len(history)} epoch(s) in {Path(args.checkpoint) / 'meta.json'}")
        return 0
    print(f"checkpoint   {args.checkpoint}  (verified: sha256 matches)")
    for key in ("kind", "method", "backbone", "dataset", "split_seed", "created_at", "parent"):
        if key in meta:
            print(f"{key:<12} {meta[key]}")
    print(f"{'weights':<12} sha256 {meta['sha256']['model.pt']}")
    from pathlib import Path

    if (Path(args.checkpoint) / MANIFEST).is_file():
        sizes = Splits.load(Path(args.checkpoint) / MANIFEST).sizes()
        print(f"{'splits':<12} " + ", ".join(f"{k}={v}" for k, v in sizes.items() if v))
    metrics = meta.get("metrics") or {}
    if metrics:
        print(f"{'metrics':<12} " + ", ".join(f"{k}={v:.4g}" for k, v in metrics.items()))
    pk = meta.get("packages", {})
    print(f"{'packages':<12} " + ", ".join(f"{k} {v}" for k, v in pk.items()))
    return 0
