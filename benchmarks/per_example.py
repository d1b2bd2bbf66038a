"""The per-example attack (reference-calibrated LiRA) before and after unlearning, for cells of the reproduction.

    python benchmarks/per_example.py --data npz:cifar10_10k.npz --members 1000 --work /work/repro_runs/cifar \
        --models "" --tables supervised,methods --cells methods/memgp,methods/neggrad_plus --k 2

Population attacks (one rule for every sample) can hide the worst-case examples; LiRA scores each sample against
reference models that never trained on it (docs/evaluation.md). Per (model, seed) this registers the original
checkpoint in a ledger of its own (``WORK/per_example/``), builds K reference models with its recipe on halves of its
data pool (``unlearn models references build``), then audits each named cell's unlearned model, with its original
and retrained twins, with the ``lira`` attack (``unlearn evaluate``; the same auditor protocol as the other
attacks) and appends the rows to the results store tagged ``experiment=per_example``. The cells, pretrainings and
retrainings must have run: pass the reproduction's own flags (``--data``, ``--members``, ``--set``, ``--tables``,
``--attack-set``, ...), which name the same cells. Resumable: a reference set or an audit on disk is reused.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trainables.errors import UserError  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from benchmarks.reproduce import _names, build_parser

    p = build_parser(__doc__)
    p.add_argument("--cells", type=_names, required=True,
                   help="EXPERIMENT/LABEL of the cells to audit, e.g. methods/salun,supervised/memgp")
    p.add_argument("--k", type=int, default=2, help="reference models per original (default 2)")
    return p.parse_args(argv)


def cell_tasks(args: argparse.Namespace) -> list:
    """The reproduction's cell tasks named by ``--cells`` (with their original / retrained checkpoints)."""
    from benchmarks.repro_plan import build_plan
    from benchmarks.repro_tasks import build_tasks
    from benchmarks.reproduce import settings_from

    settings = settings_from(args)
    tasks = build_tasks(build_plan(settings), settings, Path(args.work).resolve())
    wanted = [t for t in tasks if t.kind == "cell" and f"{t.payload['experiment']}/{t.payload['label']}" in args.cells]
    if not wanted:
        raise UserError(f"no cell of the plan matches --cells {','.join(args.cells)} (EXPERIMENT/LABEL, with the "
                        f"reproduction's --tables / --models / --seeds)")
    missing = [t.name for t in wanted if not Path(t.out).is_dir()]
    if missing:
        raise UserError(f"these cells have not run yet: {', '.join(missing)} (run benchmarks/reproduce.py first)")
    return wanted


def run(argv: list[str] | None = None) -> int:
    from orchestrator.cli import main as unlearn

    args = parse_args(argv)
    if args.k < 2:
        raise UserError(f"--k must be at least 2, got {args.k}")
    work = Path(args.work).resolve()
    results = args.results or str(work / "results")
    tasks = cell_tasks(args)
    root = work / "per_example"
    root.mkdir(parents=True, exist_ok=True)
    references: dict[str, Path] = {}
    for task in tasks:
        p = task.payload
        original = p["pretrain"]
        if original not in references:
            name = Path(original).name
            ledger, refs = root / f"{name}.sqlite", root / f"{name}-refs-k{args.k}"
            if not refs.is_dir():
                if not ledger.is_file() and unlearn(["models", "register", original, "--ledger", str(ledger)]):
                    raise UserError(f"could not register {original}")
                if unlearn(["models", "references", "build", "--k", str(args.k), "--workers", "0",
                            "--ledger", str(ledger), "--out", str(refs)]):
                    raise UserError(f"could not build the reference set of {original}")
            references[original] = refs
        out = root / f"eval-{Path(task.out).name}-k{args.k}"
        if (out / "metrics.json").is_file():
            print(f"done already: {task.name} ({out})", flush=True)
            continue
        code = unlearn(["evaluate", "--checkpoint", task.out, "--original", original, "--retrained", p["retrain"],
                        "--out", str(out), "--no-plots", "--set", "attack.attacks=[lira]",
                        "--set", f"attack.reference_set={references[original]}", "--set", "runtime.num_threads=1",
                        *[x for item in args.attack_set for x in ("--set", item)],
                        "--results", results, "--experiment", "per_example", "--tag", f"model={p['model']}",
                        "--tag", f"label={p['label']}", "--tag", f"cell={p['experiment']}/{p['label']}",
                        "--tag", f"seed={p['seed']}", "--tag", f"k={args.k}"])
        if code:
            raise UserError(f"the audit of {task.name} failed (exit {code})")
    return 0


def main(argv: list[str] | None = None) -> int:
    try:
        return run(argv)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
