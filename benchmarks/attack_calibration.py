"""Calibrate an overfitting recipe: pretrain once, save checkpoints at chosen epochs, attack each of them.

    python benchmarks/attack_calibration.py --preset overfit --epochs 50,100 --out /tmp/calib \
        --set data.dataset=cifar10 --set data.download=true --set data.num_members=1000 \
        --set data.num_nonmembers=1000 --set optim.lr=0.003 [--attack-set n_views=20]

Prints one line per saved epoch: training loss, mean view cosine of members / non-members, and accuracy / AUC
(95% bootstrap interval) of each attack, auditor threat model (the ``unlearn evaluate`` protocol on the
``forget`` split of members; ``--protocol validation`` scores against ``nonmember_ref`` halves instead, so that
choosing a recipe never reads the audit's non-members). Existing checkpoint folders are evaluated again instead of retrained.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from orchestrator.config import load_job, parse_overrides  # noqa: E402
from trainables.attacks.config import AttackConfig  # noqa: E402
from trainables.audit.forgetting import evaluate_forgetting  # noqa: E402
from trainables.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402
from trainables.config import PretrainJob  # noqa: E402
from trainables.data.splits import Splits  # noqa: E402
from trainables.jobs.common import checkpoint_meta, load_data, new_model  # noqa: E402
from trainables.jobs.pretrain import pretrain_task  # noqa: E402
from trainables.loops.context import LoopContext  # noqa: E402


def pretrain_with_snapshots(job: PretrainJob, save_at: list[int], out: Path) -> None:
    source, splits = load_data(job.data)
    model, spec = new_model(job, source, len(splits["member"]))
    t0 = time.perf_counter()

    def on_epoch_end(epoch, metrics, _state):
        if epoch + 1 in save_at:
            meta = checkpoint_meta(job, "pretrain", [metrics], wall_time_s=time.perf_counter() - t0)
            save_checkpoint(out / f"e{epoch + 1}", model, spec=spec, meta=meta, splits=splits)
            print(f"saved e{epoch + 1} after {time.perf_counter() - t0:.0f}s (loss {metrics['loss']:.3f})",
                  flush=True)

    pretrain_task(job, LoopContext(on_epoch_end=on_epoch_end, progress=False, log=lambda m: None),
                  source=source, splits=splits, model=model)


def validation_view(splits: Splits) -> Splits:
    """The splits with ``nonmember_eval`` replaced by ``nonmember_ref``: the attack is fitted on retain vs one half of
    ``nonmember_ref`` and scored on the forget set vs the other half, so a recipe chosen here never saw the
    non-members the final audit scores (the same view as ``unlearn tune``'s validation protocol)."""
    return replace(splits, ids=dict(splits.ids, nonmember_eval=splits["nonmember_ref"].copy()))


def attack_line(path: Path, cfg: AttackConfig, protocol: str = "audit") -> tuple[str, dict]:
    """One snapshot's attack results as a printable line, and its metrics."""
    ck = load_checkpoint(path)
    job = PretrainJob.model_validate(ck.meta["config"])
    source, splits = load_data(job.data, ck.splits)
    if protocol == "validation":
        splits = validation_view(splits)
    m = evaluate_forgetting(ck.model, source, splits, splits["forget"], model_config=ck.meta["config"], config=cfg)
    cells = " ".join(f"{a}: acc {m[f'{a}_accuracy']:.3f} auc {m[f'{a}_auc']:.3f} "
                     f"[{m.get(f'{a}_auc_lo', float('nan')):.2f},{m.get(f'{a}_auc_hi', float('nan')):.2f}]"
                     for a in cfg.attacks)
    return (f"{path.name:>5} loss {ck.meta['metrics'].get('loss', float('nan')):.3f} cos m/n "
            f"{m['forget_cos_mean']:.3f}/{m['nonmember_cos_mean']:.3f} | {cells} ({m['eval_time_s']:.0f}s)"), m


def calibration_row(out: Path, save_at: list[int], metrics: dict[int, dict], protocol: str) -> dict:
    """A ``kind=pretrain`` results row (``experiment=calibration``) holding every snapshot's attack accuracy / AUC,
    so that BENCHMARKS.md's calibration table is generated like the others."""
    from orchestrator.results.store import make_row
    from trainables.checkpoint import read_meta

    meta = read_meta(out / f"e{max(save_at)}")
    probes = {e: {"val_attack_acc": round(m["mia_accuracy"], 4), "val_attack_auc": round(m["mia_auc"], 4)}
              for e, m in metrics.items()}
    return make_row(kind="pretrain", dataset=meta.get("dataset"), model=meta.get("method"),
                    backbone=meta.get("backbone"), method="none", experiment="calibration",
                    checkpoint_uri=str(out.resolve()), wall_time_s=meta.get("wall_time_s"),
                    hyperparameters=meta["config"], extra={f"{protocol}_probes": probes, "protocol": protocol})


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="overfit")
    p.add_argument("--epochs", required=True, help="comma-separated epochs to snapshot, e.g. 50,100")
    p.add_argument("--out", required=True)
    p.add_argument("--set", dest="overrides", action="append", default=[])
    p.add_argument("--attack-set", dest="attack", action="append", default=[], help="AttackConfig key=value")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--results", help="also append the snapshots' attack figures to this results store (one row)")
    p.add_argument("--protocol", choices=("audit", "validation"), default="audit",
                   help="audit: score forget vs nonmember_eval (the unlearn evaluate protocol); validation: "
                        "score against nonmember_ref halves only (choose a recipe without the audit's non-members)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    save_at = sorted(int(e) for e in args.epochs.split(","))
    out = Path(args.out)
    missing = [e for e in save_at if not (out / f"e{e}").exists()]
    if missing:
        job = load_job(PretrainJob, preset=args.preset, overrides=args.overrides + [
            f"optim.epochs={max(save_at)}", "eval.knn_every=0", "eval.linear_probe=false"])
        pretrain_with_snapshots(job, save_at, out)
    cfg = AttackConfig.model_validate({"bootstrap": 500, **parse_overrides(args.attack)})
    metrics = {}
    for e in save_at:
        line, metrics[e] = attack_line(out / f"e{e}", cfg, args.protocol)
        print(line, flush=True)
    if args.results:
        from orchestrator.results.store import append

        append(args.results, [calibration_row(out, save_at, metrics, args.protocol)])
        print(f"calibration row appended to {args.results}")


if __name__ == "__main__":
    main()
