"""Which variant of the paper's gradient-penalty idea ("Machine Unlearning in Contrastive Learning", arXiv
2405.07317) unlearns a supervised classifier? One reproduction cell per variant and seed, audited as Table VII.

    python benchmarks/classifier_variants.py --data digits --members 400 --seeds 0,1,2 --work /tmp/clfvar
    python benchmarks/classifier_variants.py ... --report-only          # the table from the results store

It runs through the reproduction's machinery (``benchmarks/reproduce.py``: the overfit pretraining recipe, a
retrained-from-scratch twin per seed, 20% of the members forgotten, one fresh process per task, resumable through
the results store under ``WORK/results``); the cells are tagged ``experiment=classifier_variants``. The audit is the
classifier's confidence attack (top-k, entropy and loss of the softmax; the auditor threat model, fitted on retain
vs ``nonmember_ref`` and scored on forget vs ``nonmember_eval``).

The variants (:data:`VARIANTS`) change one UnlearnJob setting at a time from the paper's Eq. 3 (``memgp``, a=1,
b=1, penalty on the logits, L_train on the forget set), which stays a reported row whatever it scores:

- the penalised output: the logits (the paper's summed output) or ``penalty_output=label_logprob`` (log p(y|x);
  ``sample_loss`` is the same penalty, so it is not run separately);
- L_train on the forget set (the paper) or on the retain set (``train_term_source=retain``);
- Eq. 2's L_Norm on the logits (``c``), for Eq. 2 itself (``gp``) and added to Eq. 3;
- the penalty form (squared, linear as in Algorithm 2, wgan's pull towards norm 1), the penalty weight, the lr.

Reported per variant (mean ± sd over seeds): the attack accuracy after unlearning and its gap to the retrained
model's, the forget-set accuracy, the test accuracy (held-out non-members) and its drop against the retrained model,
and the forget set's mean top-1 probability (the paper's MTop1).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.repro_plan import Cell, Settings  # noqa: E402

EXPERIMENT = "classifier_variants"
ATTACK = "confidence"
# label -> UnlearnJob keys (the paper's Eq. 3 is {"method": "memgp"}: a=1, b=1, squared, forget, logits)
VARIANTS: dict[str, dict] = {
    "paper-eq3": {"method": "memgp"},
    "paper-eq3-linear": {"method": "memgp", "form": "linear"},
    "paper-eq2": {"method": "gp", "a": 1.0, "b": 1.0, "c": 0.1},
    "retain": {"method": "memgp", "train_term_source": "retain"},
    "logprob": {"method": "memgp", "penalty_output": "label_logprob"},
    "logprob-retain": {"method": "memgp", "penalty_output": "label_logprob", "train_term_source": "retain"},
    "logprob-wgan-retain": {"method": "memgp", "penalty_output": "label_logprob", "form": "wgan",
                            "train_term_source": "retain"},
    "logprob-wgan-retain-b10": {"method": "memgp", "penalty_output": "label_logprob", "form": "wgan",
                                "train_term_source": "retain", "b": 10.0},
    "norm-retain": {"method": "memgp", "c": 1.0, "train_term_source": "retain"},
    "norm-retain-lr1e-2": {"method": "memgp", "c": 1.0, "train_term_source": "retain", "lr": 1e-2},
    "logprob-norm-retain": {"method": "memgp", "penalty_output": "label_logprob", "c": 1.0,
                            "train_term_source": "retain"},
    # c=1 collapses the classifier (every logit to ~0, test accuracy to ~0.27 on digits): the paper's c=0.1
    "norm0.1": {"method": "memgp", "c": 0.1},
    "norm0.1-retain": {"method": "memgp", "c": 0.1, "train_term_source": "retain"},
    "logprob-norm0.1-retain": {"method": "memgp", "penalty_output": "label_logprob", "c": 0.1,
                               "train_term_source": "retain"},
}


def _names(text: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in text.split(",") if x.strip())


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="digits", help="data set spec: digits or npz:PATH")
    p.add_argument("--members", type=int, default=400)
    p.add_argument("--seeds", type=lambda t: tuple(int(x) for x in _names(t)), default=(0, 1, 2))
    p.add_argument("--variants", type=_names, default=tuple(VARIANTS), help=f"default: {','.join(VARIANTS)}")
    p.add_argument("--work", required=True, help="work directory (checkpoints, logs, results)")
    p.add_argument("--set", dest="pretrain_set", action="append", default=[], metavar="KEY=VALUE",
                   help="pretraining override (after the overfit recipe), e.g. optim.epochs=100")
    p.add_argument("--jobs", type=int, default=1)
    p.add_argument("--in-process", action="store_true",
                   help="run the tasks one by one in this process (no per-task start-up: faster on a loaded machine)")
    p.add_argument("--report-only", action="store_true", help="print the table from the results store; run nothing")
    return p.parse_args(argv)


def cells(variants: tuple[str, ...], seeds: tuple[int, ...]) -> list[Cell]:
    """Seed-major, so that a bounded run has every variant on its first seeds."""
    return [Cell(EXPERIMENT, "supervised", seed, label, dict(VARIANTS[label]), tags={"variant": label})
            for seed in seeds for label in variants]


def summary_table(results: str) -> str:
    """The variants table (markdown) from the results store's ``classifier_variants`` confidence-attack rows."""
    import json

    from orchestrator.results.store import load

    df = load(results, kinds=["evaluate"])
    df = df[(df["experiment"] == EXPERIMENT) & (df["attack"] == ATTACK)].copy()
    if df.empty:
        return "(no classifier_variants rows yet)"
    df["variant"] = [json.loads(x).get("variant") for x in df["extra_json"]]
    df["gap"] = df["after_mia_accuracy"] - df["retrain_mia_accuracy"]
    df["drop"] = df["retrain_test_acc"] - df["after_test_acc"]

    def cell(values) -> str:
        values = values.dropna()
        return f"{values.mean():.3f} ± {values.std(ddof=0):.3f}" if len(values) else "-"

    cols = [("attack after", "after_mia_accuracy"), ("gap to retrain", "gap"), ("forget acc", "after_forget_acc"),
            ("test acc", "after_test_acc"), ("drop vs retrain", "drop"), ("forget top-1", "after_forget_top1")]
    lines = ["| variant | UnlearnJob keys | " + " | ".join(c for c, _ in cols) + " | seeds |",
             "|" + "---|" * (len(cols) + 3)]
    first = df.drop_duplicates("hp_seed")
    ref = {"original": ("before_mia_accuracy", "before_forget_acc", "before_test_acc", "before_forget_top1"),
           "retrained": ("retrain_mia_accuracy", "retrain_forget_acc", "retrain_test_acc", "retrain_forget_top1")}
    for name, (att, fa, ta, top) in ref.items():
        lines.append(f"| *{name}* | | {cell(first[att])} | | {cell(first[fa])} | {cell(first[ta])} | | "
                     f"{cell(first[top])} | {len(first)} |")
    for label in [v for v in VARIANTS if v in set(df["variant"])]:
        rows = df[df["variant"] == label].drop_duplicates("hp_seed", keep="last")
        keys = ", ".join(f"{k}={v}" for k, v in VARIANTS[label].items())
        lines.append(f"| {label} | {keys} | " + " | ".join(cell(rows[c]) for _, c in cols) + f" | {len(rows)} |")
    return "\n".join(lines)


def gradient_diagnostic(checkpoint: str | Path, n: int = 200) -> dict[str, float]:
    """Why a penalty can or cannot tell members from non-members: the mean per-sample input-gradient norm of each
    penalised output (the summed logits, the paper's; log p(y|x)) on the forget set and on held-out non-members,
    and their mean top-1 probability. ``n`` samples of each, eval mode."""
    import torch

    from trainables.checkpoint import load_checkpoint
    from trainables.config import DataConfig
    from trainables.data.augment import normalize
    from trainables.jobs.common import load_data
    from trainables.losses import input_gradient_norms, penalised_output

    ck = load_checkpoint(checkpoint)
    source, splits = load_data(DataConfig.model_validate(ck.meta["config"]["data"]), ck.splits)
    model = ck.model.eval()
    model.embed_output = "logits"
    out: dict[str, float] = {}
    for split in ("forget", "nonmember_eval"):
        ids = torch.from_numpy(splits[split][:n])
        x, y = normalize(source.images[ids]), torch.from_numpy(source.labels[ids.numpy()]).long()
        out[f"{split}_logits_grad"] = float(input_gradient_norms(model, x).detach().mean())
        logprob = penalised_output(model, "label_logprob", y)
        out[f"{split}_logprob_grad"] = float(input_gradient_norms(model, x, output=logprob).detach().mean())
        with torch.no_grad():
            out[f"{split}_top1"] = float(model(x, task="head").softmax(1).max(1).values.mean())
    return out


def diagnostic_table(work: Path) -> str:
    """:func:`gradient_diagnostic` of every original and retrained model under ``work`` (mean over seeds)."""
    import statistics

    lines = ["| model | seeds | forget / non-member: ‖∇ Σ logits‖ | ‖∇ log p(y\\|x)‖ | top-1 |",
             "|---|---|---|---|---|"]
    for kind in ("pretrain", "retrain"):
        found = [gradient_diagnostic(d) for d in sorted((work / kind).glob("supervised-*")) if (d / "meta.json").is_file()]
        if not found:
            continue
        m = {k: statistics.mean(f[k] for f in found) for k in found[0]}
        lines.append(f"| {'original' if kind == 'pretrain' else 'retrained'} | {len(found)} | "
                     f"{m['forget_logits_grad']:.3g} / {m['nonmember_eval_logits_grad']:.3g} | "
                     f"{m['forget_logprob_grad']:.3g} / {m['nonmember_eval_logprob_grad']:.3g} | "
                     f"{m['forget_top1']:.3f} / {m['nonmember_eval_top1']:.3f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from benchmarks.repro_tasks import build_tasks
    from benchmarks.reproduce import pending_tasks, run_all
    from trainables.errors import UserError

    args = parse_args(argv)
    work = Path(args.work).resolve()
    results = str(work / "results")
    try:
        unknown = [v for v in args.variants if v not in VARIANTS]
        if unknown:
            raise UserError(f"unknown variant(s) {unknown}; choose from: {', '.join(VARIANTS)}")
        if args.report_only:
            print(summary_table(results) + "\n\n" + diagnostic_table(work))
            return 0
        settings = Settings(data=args.data, members=args.members, seeds=args.seeds, tables=("supervised",),
                            models=(), pretrain_overrides=tuple(args.pretrain_set), probe_every=0,
                            attack_overrides=(f"attack.attacks=[{ATTACK}]",))
        tasks = build_tasks(cells(args.variants, args.seeds), settings, work)  # every job validated here
        pending = pending_tasks(tasks, results) if (work / "results").exists() else tasks
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{sum(t.kind == 'cell' for t in tasks)} cells; {len(pending)} tasks to run", flush=True)
    work.mkdir(parents=True, exist_ok=True)
    status = run_all(pending, results=results, work=work, jobs=args.jobs, in_process=args.in_process)
    print(summary_table(results) + "\n\n" + diagnostic_table(work))
    return status


if __name__ == "__main__":
    sys.exit(main())
