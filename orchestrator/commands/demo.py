"""`unlearn demo`: the README's first command. Runs the main job end to end on the embedded digits data."""

from __future__ import annotations

import time
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser(
        "demo", help="run the end-to-end demo on the embedded digits data (no network)",
        description="Pretrain an encoder with the overfit recipe on scikit-learn's bundled digits (no network), "
                    "then report its kNN accuracy and where its checkpoint is. Each run writes a new directory.",
    )
    p.add_argument("--out", help="demo directory (default: demo_runs/run-<timestamp>)")
    p.add_argument("--method", default="simclr", choices=["moco", "simclr", "byol", "supervised"])
    p.add_argument("--quick", action="store_true", help="tiny settings for a smoke test (seconds, not minutes)")
    p.set_defaults(func=run)


QUICK = ["data.image_size=16", "data.num_members=120", "model.width=8", "model.proj_dim=16", "optim.epochs=2",
         "optim.batch_size=60", "eval.knn_k=10"]


def run(args) -> int:
    from orchestrator.config import load_job
    from orchestrator.jobs import check_out_dir, run_pretrain
    from trainables.config import PretrainJob

    out = Path(args.out or f"demo_runs/run-{time.strftime('%Y%m%d-%H%M%S')}")
    check_out_dir(out)
    job = load_job(PretrainJob, preset="demo", overrides=QUICK if args.quick else [],
                   cli_values={"method": args.method})
    print(f"[1/1] pretraining a {job.method} encoder on digits ({job.data.num_members} members, "
          f"{job.optim.epochs} epochs, augmentation strength {job.augment.strength}: the overfit recipe)", flush=True)
    t0 = time.perf_counter()
    ckpt, metrics = run_pretrain(job, out / "pretrained")
    print(f"\nencoder kNN accuracy on held-out digits: {metrics['knn_acc']:.3f}"
          + (f" (linear probe {metrics['linear_acc']:.3f})" if "linear_acc" in metrics else ""))
    print(f"checkpoint: {ckpt}   ({time.perf_counter() - t0:.0f} s)")
    print(f"inspect it with: unlearn inspect {ckpt}")
    return 0
