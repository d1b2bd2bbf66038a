"""`unlearn pretrain`: train an encoder (MoCo / SimCLR / BYOL) or a supervised classifier; write a checkpoint."""

from __future__ import annotations

from orchestrator.cli import add_config_args
from orchestrator.config import load_job
from orchestrator.results.run_rows import add_results_args
from orchestrator.run.options import add_ray_args, ray_options_from_args
from trainables.config import PretrainJob


def register(sub) -> None:
    p = sub.add_parser(
        "pretrain", help="pretrain an encoder or classifier and write a checkpoint",
        description="Pretrain a model on the members of a data set and write a verified checkpoint directory "
                    "(model.pt, meta.json, splits.parquet). Shows the loss and kNN accuracy per epoch (afterwards: "
                    "`unlearn inspect OUT --history`).",
    )
    p.add_argument("--method", choices=["moco", "simclr", "byol", "supervised"], help="default: simclr")
    p.add_argument("--dataset", help="digits | cifar10 | cifar100 | svhn | npz:PATH | imagefolder:PATH | manifest:FILE")
    p.add_argument("--epochs", type=int, help="pretraining epochs")
    p.add_argument("--out", required=True, help="checkpoint directory to create (must not exist)")
    add_config_args(p)
    add_ray_args(p)
    add_results_args(p)
    p.set_defaults(func=run)


def run(args) -> int:
    import time

    from orchestrator.results.run_rows import append_from_args, parse_tags, rerun_note, results_path
    from orchestrator.run.jobs import run_pretrain

    results = results_path(args.results)  # checked before any work
    parse_tags(args.tags)
    options = ray_options_from_args(args)
    job = load_job(PretrainJob, config_file=args.config, preset=args.preset, overrides=args.overrides,
                   cli_values={"method": args.method, "data.dataset": args.dataset, "optim.epochs": args.epochs})
    from orchestrator.results.finished_runs import finished_pretrain

    if results and finished_pretrain(args.out, job):  # a rerun after the results row was lost
        rerun_note(args.out)
        append_from_args(args, args.out, results)
        return 0
    t0 = time.perf_counter()
    out, metrics = run_pretrain(job, args.out, workers=options.workers, use_gpu=options.use_gpu,
                                ray_options=options)
    wall = time.perf_counter() - t0
    acc = metrics.get("knn_acc")
    print(f"checkpoint: {out}")
    if acc is not None:
        print(f"kNN accuracy (held-out non-members vs the members): {acc:.4f}"
              + (f", linear probe: {metrics['linear_acc']:.4f}" if "linear_acc" in metrics else ""))
    append_from_args(args, out, results, wall_time_s=wall)
    return 0
