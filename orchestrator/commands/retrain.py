"""`unlearn retrain`: the gold standard. Retrain from scratch without the forget set, with the parent's recipe.

    unlearn retrain --checkpoint runs/base --out runs/retrained
    unlearn retrain --checkpoint runs/base --forget-ids ids.txt --set retrain_epochs=50 --out runs/retrained
"""

from __future__ import annotations

from orchestrator.commands.forget import (
    add_unlearn_config_args,
    forget_ids_arg,
    load_unlearn_job,
    print_summary,
)

RETRAIN_KEYS = ("retrain_epochs", "runtime")  # the rest is the parent checkpoint's own recipe


def register(sub) -> None:
    p = sub.add_parser(
        "retrain", help="retrain from scratch without the forget set (the reference for every audit)",
        description="Pretrain a fresh model on members - forget - already forgotten, with the parent checkpoint's "
                    "own pretraining recipe (meta.json config), and write it as a checkpoint of kind 'retrain'. "
                    "Only runtime.* and retrain_epochs of --config/--set apply.",
    )
    p.add_argument("--checkpoint", required=True, help="the parent checkpoint (its recipe and splits)")
    p.add_argument("--out", required=True, help="checkpoint directory to create (must not exist)")
    add_unlearn_config_args(p, example="--set retrain_epochs=50 --set runtime.num_threads=2")
    p.set_defaults(func=run)


def run(args) -> int:
    import time

    from orchestrator.results.run_rows import append_from_args, parse_tags, rerun_note, results_path
    from orchestrator.run.jobs import run_retrain
    from orchestrator.run.options import ray_options_from_args

    results = results_path(args.results)  # checked before any work
    parse_tags(args.tags)
    options = ray_options_from_args(args)
    job = load_unlearn_job(args, method="retrain", allowed=RETRAIN_KEYS)
    from orchestrator.results.finished_runs import finished_unlearning

    if finished_unlearning(args.out, job, args.checkpoint, forget_ids_arg(args)):  # its results row was lost
        rerun_note(args.out)
        append_from_args(args, args.out, results)
        return 0
    t0 = time.perf_counter()
    out, summary = run_retrain(args.checkpoint, args.out, forget_ids_arg(args), job=job, workers=options.workers,
                               use_gpu=options.use_gpu, ray_options=options)
    print_summary(out, summary)
    append_from_args(args, out, results, summary=summary, wall_time_s=time.perf_counter() - t0)
    return 0
