"""Measured error rates of the verification gate: verdict rates over random sub-batches of a forget set.

Three candidates are judged on the same sub-batches: the **parent** itself (must never be ``verified``), the model
**retrained** without the forget set (every sub-batch is truly forgotten: should be ``verified``), and the
**unlearned** model (the demo's memgp recipe on the whole forget set). For each attack (the population attack the
gate uses today, and the reference-calibrated LiRA attack) and batch size n, the table shows the old rule's pass
rate (|attack accuracy - 0.5| <= 0.1) beside the new gate's verdict rates. Nothing is trained beyond the parent,
the retrained and unlearned models and the K reference models; every step is cached in --out (a rerun resumes).

    python benchmarks/verification_power.py --data digits --out /tmp/power --json /tmp/power.json
    python benchmarks/verification_power.py --data npz:PATH/cifar10_10k.npz --preset overfit --members 1000 \\
        --forget 200 --epochs 150 --k 4 --out /tmp/power-cifar
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from benchmarks.power_rates import Scores, gate_functions, judge_targets, sub_batches, verdict_rates  # noqa: E402

DEMO_UNLEARNING = ["method=memgp", "a=1", "b=1", "epochs=10", "lr=0.0003"]  # orchestrator.demo's batch recipe
CANDIDATES = ("parent", "retrained", "unlearned")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="digits", help="digits (the demo's model) or npz:PATH")
    p.add_argument("--method", default="simclr", help="pretraining method (supervised: a classifier)")
    p.add_argument("--preset", default="demo", help="pretraining preset (demo; overfit for CIFAR)")
    p.add_argument("--members", type=int, default=400)
    p.add_argument("--forget", type=int, default=200, help="forget-set size (sub-batches are drawn from it)")
    p.add_argument("--epochs", type=int, help="pretraining epochs (default: the preset's)")
    p.add_argument("--set", dest="overrides", action="append", default=[], help="more pretraining KEY=VALUE")
    p.add_argument("--unlearn", action="append", help=f"unlearning KEY=VALUE (default {' '.join(DEMO_UNLEARNING)})")
    p.add_argument("--k", type=int, default=4, help="reference models (default 4)")
    p.add_argument("--workers", type=int, default=2, help="reference models trained at once (Ray tasks)")
    p.add_argument("--sizes", default="10,25,50,100,200")
    p.add_argument("--batches", type=int, default=20, help="random sub-batches per n (default 20)")
    p.add_argument("--alpha", type=float, default=0.05)
    p.add_argument("--n-views", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="working directory (models, ledger; reused on a rerun)")
    p.add_argument("--json", help="write the rates and the judged targets here")
    return p.parse_args(argv)


def cli(argv: list[str]) -> None:
    from orchestrator.cli import main

    print("$ unlearn " + " ".join(argv), flush=True)
    code = main(argv)
    if code != 0:
        raise SystemExit(f"`unlearn {argv[0]}` exited with {code}")


def train_models(args, out: Path) -> dict[str, float]:
    """Parent, retrained and unlearned checkpoints (skipped when present); their wall times."""
    times = {}
    one = ["--set", "runtime.num_threads=1", "--set", "runtime.progress=false"]
    steps = {
        "parent": ["pretrain", "--preset", args.preset, "--method", args.method, "--dataset", args.data,
                   "--set", f"data.num_members={args.members}", "--set", f"data.forget_count={args.forget}",
                   *(["--epochs", str(args.epochs)] if args.epochs else []),
                   *[a for o in args.overrides for a in ("--set", o)], *one, "--out", str(out / "parent")],
        "retrained": ["retrain", "--checkpoint", str(out / "parent"), *one, "--out", str(out / "retrained")],
        "unlearned": ["forget", "--checkpoint", str(out / "parent"),
                      *[a for o in (args.unlearn or DEMO_UNLEARNING) for a in ("--set", o)], *one,
                      "--out", str(out / "unlearned")],
    }
    for name, argv in steps.items():
        if (out / name / "meta.json").is_file():
            continue
        t0 = time.perf_counter()
        cli(argv)
        times[name] = time.perf_counter() - t0
    return times


def build_references(args, out: Path):
    from orchestrator.ledger.db import Ledger
    from orchestrator.ledger.references import build_reference_set
    from orchestrator.ledger.versions import register_checkpoint

    t0 = time.perf_counter()
    with Ledger(out / "ledger.sqlite", create=True) as ledger:
        register_checkpoint(ledger, out / "parent")
        _, ref, new = build_reference_set(ledger, k=args.k, workers=args.workers, seed=args.seed,
                                          out=out / f"references-k{args.k}")
    return ref, (time.perf_counter() - t0) if new else None


def candidate_scores(args, out: Path, ref) -> tuple[dict[str, dict[str, Scores]], dict]:
    """``{attack: {candidate: Scores}}`` for the population attack and LiRA (one signal query per candidate)."""
    from trainables.attacks.config import AttackConfig
    from trainables.attacks.protocol import attack_sets
    from trainables.attacks.reference import default_signal, sample_signal
    from trainables.attacks.reference_scoring import ReferenceScorer
    from trainables.attacks.runner import SignalQuery, attack_features, fit_attacks
    from trainables.checkpoint import load_checkpoint
    from trainables.config import DataConfig
    from trainables.jobs.common import load_data

    parent = load_checkpoint(out / "parent")
    recipe = parent.meta["config"]
    source, splits = load_data(DataConfig.model_validate(recipe["data"]), parent.splits)
    forget = splits["forget"]
    cfg = AttackConfig(n_views=args.n_views, bootstrap=0, seed=args.seed).for_model(recipe["method"])
    primary = cfg.attacks[0]
    sets = attack_sets(splits, forget, seed=cfg.seed)
    nonmembers = np.setdiff1d(splits["nonmember_eval"], sets.fit_nonmembers)  # never in the attack's fit set
    query = SignalQuery.for_model(cfg, recipe, source, splits)
    scorer = ReferenceScorer(ref, cfg, source=source)
    kinds = ("view_cos", "neg_loss") if recipe["method"] != "supervised" else ("logit_conf",)
    scored = np.concatenate([forget, nonmembers])
    out_scores: dict[str, dict[str, Scores]] = {f"population ({primary})": {}}
    out_scores.update({f"lira ({k})": {} for k in kinds})
    for name in CANDIDATES:
        model = load_checkpoint(out / name).model
        sig = query.signals(model, source, np.concatenate([sets.fit_ids, scored]))
        fitted = fit_attacks(sig.take(sets.fit_ids), sets.fit_labels, cfg.model_copy(update={"attacks": [primary]}))
        p = fitted[primary].predict_proba(attack_features(primary, sig.take(scored)))[:, 1]
        out_scores[f"population ({primary})"][name] = Scores(p[: len(forget)], p[len(forget):], 0.5)
        target = query.signals(model, source, scored)  # the reference models' order: the same views per sample
        for kind in kinds:
            z = scorer.score(scored, sample_signal(target, kind), kind)
            out_scores[f"lira ({kind})"][name] = Scores(z[: len(forget)], z[len(forget):], 0.0)
    info = {"primary": primary, "n_forget": len(forget), "n_nonmember": len(nonmembers),
            "default_lira_signal": default_signal(recipe["method"])}
    return out_scores, info


def format_table(results: dict, sizes: list[int]) -> str:
    head = f"{'attack':<30} {'candidate':<10} " + " ".join(f"{'n=' + str(n):>22}" for n in sizes)
    lines = ["cell: old-rule pass % | new gate verified / failed / no-signal %", head, "-" * len(head)]
    for attack, rates in results.items():
        for i, cand in enumerate(CANDIDATES):
            cells = []
            for n in sizes:
                r = rates[cand].get(n)
                cells.append(f"{'-':>22}" if r is None else
                             f"{100 * r['old_pass']:>4.0f} | {100 * r['verified']:>3.0f}/{100 * r['failed']:>3.0f}/"
                             f"{100 * r['no-signal']:>3.0f}".rjust(22))
            lines.append(f"{attack if i == 0 else '':<30} {cand:<10} " + " ".join(cells))
        power = " ".join(f"{100 * rates['parent'][n]['parent_rejects']:>21.0f}%" if n in rates["parent"] else
                         f"{'-':>22}" for n in sizes)
        lines.append(f"{'':<30} {'parent rej':<10} {power}")
    return "\n".join(lines)


def main(argv=None) -> int:
    args = parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    sizes = [int(s) for s in args.sizes.split(",")]
    t0 = time.perf_counter()
    times = train_models(args, out)
    ref, ref_time = build_references(args, out)
    scores, info = candidate_scores(args, out, ref)
    batches = sub_batches(info["n_forget"], sizes, args.batches, args.seed)
    results, judged = {}, {}
    for attack, by_cand in scores.items():
        results[attack] = verdict_rates(by_cand, by_cand["parent"], batches, alpha=args.alpha, seed=args.seed)
        judged[attack] = judge_targets(results[attack])
    _, _, gate_source = gate_functions()
    print(f"\n{args.data} {args.method}: {args.members} members, {info['n_forget']} forgotten, "
          f"{info['n_nonmember']} held-out non-members; K={args.k}; {args.batches} sub-batches per n "
          f"(n = the whole forget set repeats one batch); alpha {args.alpha}; gate: {gate_source}")
    print(format_table(results, sizes))
    for attack, j in judged.items():
        print(f"{attack}: {j}")
    stamp = {"training_time_s": {k: round(v, 1) for k, v in times.items()},
             "reference_build_s": None if ref_time is None else round(ref_time, 1),
             "reference_train_s": [m.get("train_time_s") for m in ref.manifest["models"]],
             "total_s": round(time.perf_counter() - t0, 1)}
    print(f"times: {stamp}")
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "info": info, "gate": gate_source,
                                               "rates": {a: {c: {str(n): r for n, r in v.items()}
                                                             for c, v in rs.items()} for a, rs in results.items()},
                                               "targets": judged, "times": stamp}, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
