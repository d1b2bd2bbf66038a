"""What Ray Train costs over a plain PyTorch loop, and what a gradient-penalty step costs over a plain step.

Same job (SimCLR, small CNN, digits at 32 px) both ways, with the same number of CPU threads:

1. Steady-state epoch throughput: the plain loop in this process vs Ray Train with 1 worker, from the interval
   between consecutive epoch ends after the first (the Ray side includes its per-epoch metric merge, checkpoint
   and ``ray.train.report``). Target: Ray / plain >= 0.95.
2. Fixed start-up: everything but the steady-state epochs (worker start, process group, data and model set-up,
   first-epoch warm-up), Ray minus plain; ``ray.init`` of a local cluster is reported separately. Target <= 15 s.
3. GP step: one optimiser step of ``loss(views) + member_gradient_penalty(model, x)`` (input-gradient norms with
   ``create_graph=True``, then one backward: double backward) vs one plain ``loss(views)`` step; also the
   penalty-only step (Eq. 3 with a=0). Target <= 2.5x.

Usage (numbers on a shared 2-core machine are noisy: rerun on a quiet one):
    python benchmarks/ray_overhead.py --epochs 6 --members 1024 --threads 1 [--json results.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from trainables.config import PretrainJob  # noqa: E402
from trainables.loops.context import LoopContext  # noqa: E402

try:  # the paper's Eq. 3 term (the unlearning package)
    from trainables.losses.member_gradient_penalty import member_gradient_penalty
except ImportError:  # until that lands: the same computation, locally
    member_gradient_penalty = None


def bench_job(args) -> PretrainJob:
    return PretrainJob.model_validate({
        "method": "simclr",
        "data": {"dataset": "digits", "image_size": 32, "num_members": args.members, "num_nonmembers": 400},
        "model": {"backbone": "small_cnn", "width": args.width},
        "optim": {"epochs": args.epochs, "batch_size": args.batch_size},
        "augment": {"strength": 0.5},
        "eval": {"knn_every": 0, "linear_probe": False},  # one kNN monitor at the end, same both ways
        "runtime": {"device": "cpu", "num_threads": args.threads, "progress": False},
    })


def steady_interval(epoch_ends: list[float]) -> float:
    """Median seconds per epoch after the first one (warm-up)."""
    return statistics.median(b - a for a, b in zip(epoch_ends[1:], epoch_ends[2:], strict=False))


def plain_loop(job) -> dict:
    from trainables.jobs.pretrain import pretrain_task

    torch.set_num_threads(job.runtime.num_threads)
    ends: list[float] = []
    ctx = LoopContext(on_epoch_end=lambda epoch, metrics, state: ends.append(time.time()), progress=False,
                      log=lambda message: None)
    t0 = time.time()
    pretrain_task(job, ctx)
    total = time.time() - t0
    interval = steady_interval(ends)
    return {"total_s": total, "epoch_s": interval, "fixed_s": total - len(ends) * interval}


def plain_loop_subprocess(args) -> dict:
    """The plain loop in a fresh process with the environment a Ray worker gets (OMP_NUM_THREADS), so that both
    sides start from the same state."""
    import subprocess

    with tempfile.NamedTemporaryFile(suffix=".json") as f:
        argv = [sys.executable, __file__, "--plain-only", f.name, "--epochs", str(args.epochs), "--members",
                str(args.members), "--batch-size", str(args.batch_size), "--width", str(args.width), "--threads",
                str(args.threads)]
        subprocess.run(argv, check=True, env={**os.environ, "OMP_NUM_THREADS": str(args.threads)})
        return json.loads(Path(f.name).read_text())


def ray_train(job, storage: str) -> dict:
    from orchestrator.run.driver import build_trainer, connect_ray
    from orchestrator.run.names import claim_run, plan_run
    from orchestrator.run.options import RayOptions
    from orchestrator.run.storage import open_storage
    from trainables.jobs.pretrain import pretrain_train_task

    t0 = time.time()
    connect_ray(None)
    init_s = time.time() - t0
    out = Path(storage) / "out"
    plan = plan_run(open_storage(storage), "pretrain", job, out)
    claim_run(plan, job, out)
    options = RayOptions(workers=1, cpus_per_worker=job.runtime.num_threads, storage=storage)
    t1 = time.time()
    result = build_trainer(pretrain_train_task(job), plan, options).fit()
    total = time.time() - t1
    value = result.return_value
    ends = [t for _, t in value["reports"]]
    interval = steady_interval(ends)
    out = {"ray_init_s": init_s, "total_s": total, "epoch_s": interval, "fixed_s": total - len(ends) * interval,
           "until_worker_fn_s": value["started_at"] - t1}
    if value.get("process_started_at"):  # where the time before the worker function goes
        out["startup"] = {"fit_to_worker_process_s": value["process_started_at"] - t1,
                          "process_to_worker_module_imported_s": value["imported_at"] - value["process_started_at"],
                          "imported_to_worker_fn_s": value["started_at"] - value["imported_at"]}
    return out


def _local_member_gradient_penalty(model, x):
    x = x.detach().requires_grad_(True)
    out = model(x, task="embed")
    (grad,) = torch.autograd.grad(out, x, grad_outputs=torch.ones_like(out), create_graph=True)
    norms = grad.flatten(1).norm(2, dim=1)
    return ((norms - 1) ** 2).mean()


def gp_step_ratio(job, steps: int = 15, warmup: int = 3) -> dict:
    """Median times on the same batch of: a plain training step, a training + gradient-penalty step (Eq. 3 with
    both terms) and a penalty-only step (Eq. 3 with a=0)."""
    from trainables.data.augment import ViewMaker
    from trainables.jobs.common import load_data, new_model
    from trainables.loops.context import build_optimizer

    torch.set_num_threads(job.runtime.num_threads)
    source, splits = load_data(job.data)
    model, _ = new_model(job, source, len(splits["member"]))
    optimizer = build_optimizer(model.parameters(), job.optim)
    images = source.images[torch.from_numpy(splits["member"][: job.optim.batch_size])]
    views = ViewMaker(job.augment, images.shape[-1])(images, "cpu", 2)
    penalty_fn = member_gradient_penalty or _local_member_gradient_penalty

    def step(train_term: bool, penalty_term: bool) -> float:
        t0 = time.perf_counter()
        loss = model(views, task="loss") if train_term else 0.0
        if penalty_term:
            penalty = penalty_fn(model, views[0])
            loss = loss + (penalty.loss if hasattr(penalty, "loss") else penalty)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return time.perf_counter() - t0

    kinds = {"plain_step_s": (True, False), "gp_step_s": (True, True), "gp_only_step_s": (False, True)}
    model.train()
    for _ in range(warmup):
        for terms in kinds.values():
            step(*terms)
    times: dict[str, list[float]] = {k: [] for k in kinds}
    for _ in range(steps):  # interleaved, so background load hits all alike
        for name, terms in kinds.items():
            times[name].append(step(*terms))
    return {**{k: statistics.median(v) for k, v in times.items()},
            "penalty": "trainables.losses" if member_gradient_penalty else "local double backward"}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--members", type=int, default=1024)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--width", type=int, default=32)
    p.add_argument("--threads", type=int, default=1, help="torch threads = CPUs per Ray worker")
    p.add_argument("--json", help="also write the figures here")
    p.add_argument("--no-gp-step", action="store_true", help="skip part 3 (benchmarks/gp_step.py times it per model)")
    p.add_argument("--plain-only", metavar="JSON", help=argparse.SUPPRESS)  # internal: one plain run
    args = p.parse_args()
    from orchestrator.fenced.ray_internals import workers_use_this_interpreter

    workers_use_this_interpreter()
    job = bench_job(args)
    if args.plain_only:
        Path(args.plain_only).write_text(json.dumps(plain_loop(job)))
        return 0

    before = plain_loop_subprocess(args)
    with tempfile.TemporaryDirectory(prefix="ray-overhead-") as storage:
        ray = ray_train(job, storage)
    after = plain_loop_subprocess(args)  # before and after Ray; the faster one counts (conservative ratio)
    plain = min(before, after, key=lambda r: r["epoch_s"])
    gp = None if args.no_gp_step else gp_step_ratio(job)
    figures = {
        "throughput_ratio": plain["epoch_s"] / ray["epoch_s"],
        "startup_overhead_s": ray["fixed_s"] - plain["fixed_s"],
        "ray_init_s": ray["ray_init_s"],
        "gp_step_ratio": gp["gp_step_s"] / gp["plain_step_s"] if gp else None,
        "gp_only_step_ratio": gp["gp_only_step_s"] / gp["plain_step_s"] if gp else None,
        "plain": plain, "plain_runs_epoch_s": [before["epoch_s"], after["epoch_s"]], "ray": ray, "gp": gp,
        "args": vars(args),
    }
    print(f"epoch (steady state): plain {plain['epoch_s']:.3f} s (runs: {before['epoch_s']:.3f}, "
          f"{after['epoch_s']:.3f}), Ray Train 1 worker {ray['epoch_s']:.3f} s "
          f"-> throughput ratio {figures['throughput_ratio']:.3f} (target >= 0.95)")
    print(f"fixed start-up: Ray {ray['fixed_s']:.1f} s - plain {plain['fixed_s']:.1f} s = "
          f"{figures['startup_overhead_s']:.1f} s (target <= 15 s); of it {ray['until_worker_fn_s']:.1f} s until the "
          f"worker function starts; ray.init (local cluster) {ray['ray_init_s']:.1f} s")
    if "startup" in ray:
        print("  before the worker function: " + ", ".join(f"{k} {v:.1f} s" for k, v in ray["startup"].items()))
    if gp:
        print(f"GP step (train + penalty): {gp['gp_step_s'] * 1e3:.1f} ms vs plain step "
              f"{gp['plain_step_s'] * 1e3:.1f} ms -> {figures['gp_step_ratio']:.2f}x (target <= 2.5x); penalty only: "
              f"{figures['gp_only_step_ratio']:.2f}x (penalty from {gp['penalty']})")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
