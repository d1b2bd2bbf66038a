"""`unlearn pretrain`: train an encoder (MoCo / SimCLR / BYOL) or a supervised classifier; write a checkpoint."""

from __future__ import annotations

from orchestrator.cli import add_config_args
from orchestrator.config import load_job
from trainables.config import PretrainJob


def register(sub) -> None:
    p = sub.add_parser(
        "pretrain", help="pretrain an encoder or classifier and write a checkpoint",
        description="Pretrain a model on the members of a data set and write a verified checkpoint directory "
                    "(model.pt, meta.json, splits.parquet). Prints per-epoch loss and kNN accuracy.",
    )
    p.add_argument("--method", choices=["moco", "simclr", "byol", "supervised"], help="default: simclr")
    p.add_argument("--dataset", help="digits | cifar10 | cifar100 | svhn | npz:PATH | imagefolder:PATH")
    p.add_argument("--epochs", type=int, help="pretraining epochs")
    p.add_argument("--out", required=True, help="checkpoint directory to create (must not exist)")
    p.add_argument("--workers", type=int, default=0, help="Ray Train workers (0: in this process)")
    p.add_argument("--gpu", action="store_true", help="one GPU per Ray Train worker")
    add_config_args(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from orchestrator.jobs import run_pretrain

    job = load_job(PretrainJob, config_file=args.config, preset=args.preset, overrides=args.overrides,
                   cli_values={"method": args.method, "data.dataset": args.dataset, "optim.epochs": args.epochs})
    out, metrics = run_pretrain(job, args.out, workers=args.workers, use_gpu=args.gpu)
    acc = metrics.get("knn_acc")
    print(f"checkpoint: {out}")
    if acc is not None:
        print(f"kNN accuracy (held-out non-members): {acc:.4f}"
              + (f", linear probe: {metrics['linear_acc']:.4f}" if "linear_acc" in metrics else ""))
    return 0
