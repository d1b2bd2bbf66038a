"""Does the estimator (or a lazy penalty) change what memgp achieves? A reduced check on one small model.

Pretrains one model (small CNN, ``--dataset``; a SimCLR encoder, or a classifier with ``--method supervised``),
then per seed runs memgp (Eq. 3, a=1, b=1) with the exact double backward, with
``gp_estimator=finite_difference``, and with the finite difference and ``gp_every=4``, and reports for each: the
primary attack's accuracy on the forget set (EncoderMI for encoders, confidence for classifiers; auditor threat
model, fitted on retain vs nonmember_ref), utility (kNN accuracy; test accuracy for classifiers), and the largest
weight difference to the exact run of the same seed.

Usage (a few minutes on a quiet 2-core machine):
    python benchmarks/gp_outcome.py --dataset digits --seeds 0 1 2 [--json gp_outcome.json]
    python benchmarks/gp_outcome.py --dataset npz:PATH/cifar10_10k.npz --method supervised --pretrain-epochs 40
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

VARIANTS = {"exact": {"gp_estimator": "exact"}, "finite_difference": {"gp_estimator": "finite_difference"},
            "finite_difference_every4": {"gp_estimator": "finite_difference", "gp_every": 4}}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="digits")
    p.add_argument("--method", default="simclr", help="pretraining method (supervised: a classifier)")
    p.add_argument("--width", type=int, default=16, help="small_cnn width")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--pretrain-epochs", type=int, default=20)
    p.add_argument("--epochs", type=int, default=5, help="unlearning epochs")
    p.add_argument("--members", type=int, default=400)
    p.add_argument("--json")
    args = p.parse_args()

    import numpy as np
    import torch

    from trainables.attacks.config import AttackConfig
    from trainables.attacks.protocol import attack_sets
    from trainables.attacks.runner import SignalQuery, run_attacks
    from trainables.config import PretrainJob
    from trainables.jobs.pretrain import pretrain_task
    from trainables.loops.context import LoopContext
    from trainables.unlearning import UnlearnJob, unlearn

    torch.set_num_threads(1)
    pjob = PretrainJob.model_validate({
        "method": args.method, "data": {"dataset": args.dataset, "image_size": 32, "num_members": args.members,
                                      "num_nonmembers": args.members},
        "model": {"backbone": "small_cnn", "width": args.width}, "optim": {"epochs": args.pretrain_epochs, "lr": 3e-3},
        "augment": {"strength": 0.3}, "eval": {"linear_probe": False, "knn_every": 0},
        "runtime": {"progress": False}})
    t0 = time.time()
    base, _, _, source, splits = pretrain_task(pjob, LoopContext(progress=False, log=lambda m: None))
    print(f"pretrained in {time.time() - t0:.0f} s", flush=True)
    primary = "confidence" if args.method == "supervised" else "encodermi_vector"
    utility = "test_acc" if args.method == "supervised" else "knn_acc"
    cfg = AttackConfig.model_validate({"attacks": [primary]})
    query = SignalQuery.for_model(cfg, pjob.model_dump(), source, splits)
    sets = attack_sets(splits, splits["forget"], seed=0)

    def attack_acc(model) -> float:
        results, _ = run_attacks(model, source, sets, query, cfg)
        return results[primary].value("accuracy")

    rows: list[dict] = [{"variant": "original", "attack_acc": attack_acc(base)}]
    print(f"original: attack accuracy {rows[0]['attack_acc']:.3f}", flush=True)
    for seed in args.seeds:
        exact_state = None
        for name, keys in VARIANTS.items():
            job = UnlearnJob(method="memgp", a=1, b=1, epochs=args.epochs, runtime={"seed": seed, "progress": False},
                             **keys)
            t1 = time.time()
            model, history = unlearn(copy.deepcopy(base), source, splits, splits["forget"], job, pretrain_job=pjob,
                                     ctx=LoopContext(progress=False, log=lambda m: None))
            state = {k: v.float() for k, v in model.state_dict().items() if v.is_floating_point()}
            exact_state = exact_state or state
            row = {"variant": name, "seed": seed, "attack_acc": attack_acc(model), "utility": history[-1][utility],
                   "memgp_last": history[-1]["memgp"], "seconds": time.time() - t1,
                   "max_weight_diff_to_exact": max(float((state[k] - exact_state[k]).abs().max()) for k in state)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    summary = {}
    for name in VARIANTS:
        picked = [r for r in rows if r["variant"] == name]
        summary[name] = {m: (statistics.mean(r[m] for r in picked), statistics.pstdev(r[m] for r in picked))
                         for m in ("attack_acc", "utility", "seconds")}
        print(name, " ".join(f"{m} {mu:.3f} ± {sd:.3f}" for m, (mu, sd) in summary[name].items()))
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "summary": summary, "args": vars(args)}, indent=2,
                                              default=lambda o: o.tolist() if isinstance(o, np.ndarray) else str(o)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
