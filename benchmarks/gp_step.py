"""What one gradient-penalty optimiser step costs over a plain training step, by estimator.

For each model (SimCLR, MoCo, BYOL, the supervised classifier; small CNN, 32 px), on one batch of the data set:

- ``plain``: one L_train step (``model(views, task="loss")``, backward, Adam step);
- ``exact``: L_train + the member gradient penalty (Eq. 3, a=1, b=1) with the exact double backward;
- ``finite_difference``: the same with the finite-difference estimator (``gp_estimator=finite_difference``).

As the penalty methods run them: model in eval mode (``model_mode=auto``), the penalty on the clean batch and on
what ``model(x)`` returns by default (backbone features for encoders, logits for the classifier); views drawn once.
Step kinds are interleaved and the median taken, so background load hits all alike. A lazy penalty
(``gp_every=k``) costs ``plain + (gp - plain) / k`` per step on average (printed for k=4, derived, not timed).
Target: finite-difference / plain <= 2.0x on CIFAR 32 px.

``--sweep-step``: instead, the relative error of the finite-difference parameter gradient against the exact one
(float32) over a range of steps with the difference taken with the step, which is how ``gp_fd_step``'s default
was chosen, and on the default path ("default": the bias-free pass where the model allows it).

Usage (timings on a shared 2-core machine are noisy: rerun on a quiet one):
    python benchmarks/gp_step.py --dataset digits --steps 12 [--json gp_step.json]
    python benchmarks/gp_step.py --dataset npz:/path/to/cifar10_10k.npz --steps 12
    python benchmarks/gp_step.py --sweep-step
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from trainables.config import PretrainJob  # noqa: E402

METHODS = ("simclr", "moco", "byol", "supervised")
KINDS = {"plain": None, "exact": "exact", "finite_difference": "finite_difference"}


def bench_job(method: str, args, norm: str = "batch") -> PretrainJob:
    return PretrainJob.model_validate({
        "method": method,
        "data": {"dataset": args.dataset, "image_size": 32, "num_members": args.batch_size * 2,
                 "num_nonmembers": args.batch_size},
        "model": {"backbone": "small_cnn", "width": args.width, "norm": norm},
        "optim": {"batch_size": args.batch_size},
        "runtime": {"device": args.device, "num_threads": args.threads, "progress": False},
    })


def _batch(job: PretrainJob, device: str):
    from trainables.data.augment import ViewMaker, normalize
    from trainables.jobs.common import load_data, new_model

    source, splits = load_data(job.data)
    model, _ = new_model(job, source, len(splits["member"]))
    ids = torch.from_numpy(splits["member"][: job.optim.batch_size])
    images, labels = source.images[ids], torch.from_numpy(source.labels[ids.numpy()]).to(device)
    views = ViewMaker(job.augment, images.shape[-1])(images, device, 2)
    return model.to(device), views, labels, normalize(images.to(device))


def time_steps(method: str, args) -> dict[str, float]:
    """Median seconds of each step kind for one model."""
    from trainables.loops.context import build_optimizer
    from trainables.losses import member_gradient_penalty

    job = bench_job(method, args)
    model, views, labels, x = _batch(job, args.device)
    optimizer = build_optimizer(model.parameters(), job.optim)
    model.eval()  # what gp/memgp run in (model_mode=auto)

    def step(estimator: str | None) -> float:
        if args.device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        loss = model(views, task="loss") if model.is_contrastive else model(views[0], labels, task="loss")
        if estimator is not None:
            loss = loss + member_gradient_penalty(model, x, "squared", estimator=estimator).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if args.device == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t0

    for _ in range(args.warmup):
        for estimator in KINDS.values():
            step(estimator)
    times: dict[str, list[float]] = {k: [] for k in KINDS}
    for _ in range(args.steps):  # interleaved
        for kind, estimator in KINDS.items():
            times[kind].append(step(estimator))
    return {f"{k}_s": statistics.median(v) for k, v in times.items()}


def _penalty_grad(model, x, step: float | None = None, held_linear: bool | None = None) -> torch.Tensor:
    """The parameter gradient of the squared member penalty: exact (step None) or finite-difference."""
    from trainables.losses import input_gradient_penalty
    from trainables.losses.finite_difference import finite_difference_penalty

    model.zero_grad()
    if step is None:
        penalty = input_gradient_penalty(model, x, "squared")
    else:
        penalty = finite_difference_penalty(model, x, "squared", step=step, held_linear=held_linear)
    penalty.loss.backward()
    return torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).flatten() for p in model.parameters()])


def sweep_step(args) -> list[dict]:
    """Relative error and cosine of the FD parameter gradient vs exact, float32, small CNN on 32 samples."""
    rows = []
    for norm, train, embed in (("batch", False, "features"), ("batch", False, "projection"),
                               ("group", True, "features"), ("batch", True, "features")):
        model, _, _, x = _batch(bench_job("simclr", args, norm), args.device)
        model.embed_output = embed
        model.train(train)
        x = x[:32]
        exact = _penalty_grad(model, x)
        for step in [*args.sweep_steps, None]:  # None: the default path (bias-free pass where the model allows)
            fd = _penalty_grad(model, x, step, held_linear=False) if step is not None else _penalty_grad(model, x, 2e-4)
            rows.append({"norm": norm, "mode": "train" if train else "eval", "embed_output": embed,
                         "step": step if step is not None else "default",
                         "cosine": float(torch.nn.functional.cosine_similarity(fd, exact, dim=0)),
                         "rel_error": float((fd - exact).norm() / exact.norm())})
            print(f"{norm:5s} {rows[-1]['mode']:5s} {embed:10s} step {rows[-1]['step']:<7} cosine "
                  f"{rows[-1]['cosine']:.5f} relative error {rows[-1]['rel_error']:.2e}", flush=True)
    return rows


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="digits", help="digits, cifar10 or npz:/path/to/file.npz")
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    p.add_argument("--batch-size", type=int, default=128, help="the unlearning default")
    p.add_argument("--width", type=int, default=32)
    p.add_argument("--steps", type=int, default=12)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--sweep-step", action="store_true", help="measure the FD error over steps instead")
    p.add_argument("--sweep-steps", type=float, nargs="+", default=[5e-5, 1e-4, 2e-4, 5e-4, 1e-3, 1e-2])
    p.add_argument("--json", help="also write the figures here")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if args.sweep_step:
        figures: dict = {"sweep": sweep_step(args), "args": vars(args)}
    else:
        figures = {"models": {}, "args": vars(args)}
        print(f"{args.dataset}, 32 px, small CNN width {args.width}, batch {args.batch_size}, {args.threads} "
              f"thread(s), {args.device}; median of {args.steps} interleaved steps")
        print(f"{'model':11s} {'plain ms':>9s} {'exact ms':>9s} {'FD ms':>9s} {'exact/plain':>12s} "
              f"{'FD/plain':>9s} {'FD/exact':>9s} {'FD lazy k=4':>12s}")
        for method in args.methods:
            t = time_steps(method, args)
            row = {**t, "exact_ratio": t["exact_s"] / t["plain_s"],
                   "fd_ratio": t["finite_difference_s"] / t["plain_s"],
                   "fd_over_exact": t["finite_difference_s"] / t["exact_s"]}
            row["fd_lazy4_ratio"] = 1 + (row["fd_ratio"] - 1) / 4
            figures["models"][method] = row
            print(f"{method:11s} {t['plain_s'] * 1e3:9.1f} {t['exact_s'] * 1e3:9.1f} "
                  f"{t['finite_difference_s'] * 1e3:9.1f} {row['exact_ratio']:11.2f}x {row['fd_ratio']:8.2f}x "
                  f"{row['fd_over_exact']:8.2f}x {row['fd_lazy4_ratio']:11.2f}x", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
