"""Reproduce the paper's tables ("Machine Unlearning in Contrastive Learning", arXiv 2405.07317, Tables II-VII) on real images at a size that fits the machine.

    python benchmarks/reproduce.py --data npz:cifar10_10k.npz --members 1000 \
        --work /work/repro_runs/cifar --jobs 2

The protocol of the paper, scaled: ``--members`` members and as many non-members (half of them the reference
non-members an unlearning method may read, half held out for the audit), 20% of the members forgotten, the overfit
pretraining recipe (``orchestrator/presets/overfit.yaml`` + per-model calibration in ``benchmarks/repro_plan.py``),
10 unlearning epochs, and every unlearned model audited against its original and its retrained-from-scratch twin
with the same attacks (``unlearn evaluate``'s protocol). Tables: see :mod:`benchmarks.repro_plan`.

Resumable: rows go to the results store (``--results``, default ``WORK/results``); a cell whose deterministic key is
already there is skipped, and checkpoints (original, retrained, unlearned) are reused from ``--work``. Kill it and
run the same command again to continue. ``--jobs N`` runs N tasks at once, each in a fresh process with one torch
thread; a pretraining or retraining runs before the cells that need it. Progress: one line per finished task here,
per-epoch lines in ``WORK/logs/<task>.log``.

Then: ``python benchmarks/make_benchmarks_md.py --results WORK/results`` writes the tables.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.repro_exec import is_done, run_task  # noqa: E402
from benchmarks.repro_plan import ENCODERS, FORGET_FRACTIONS, RECIPES, TABLES, Settings, build_plan  # noqa: E402
from benchmarks.repro_tasks import Task, build_tasks  # noqa: E402
from orchestrator.run.options import add_ray_args, ray_options_from_args  # noqa: E402
from trainables.errors import UserError  # noqa: E402


def _ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def _names(text: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in text.split(",") if x.strip())


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = build_parser()
    p.add_argument("--only", type=_names, default=(), metavar="EXPERIMENT/LABEL",
                   help="run only these cells of the plan (and the pretrainings / retrainings they need), e.g. "
                        "methods/default,main/memgp")
    return p.parse_args(argv)


def only_cells(tasks: list[Task], only: tuple[str, ...]) -> list[Task]:
    """The plan's tasks cut down to the cells named ``EXPERIMENT/LABEL`` (every model and seed) and what they
    depend on; every name must match a cell."""
    if not only:
        return tasks
    label = {t.name: f"{t.payload['experiment']}/{t.payload['label']}" for t in tasks if t.kind == "cell"}
    cells = {name for name, el in label.items() if el in only}
    unknown = [o for o in only if o not in label.values()]
    if unknown:
        raise UserError(f"--only names no cell of the plan: {', '.join(unknown)} (EXPERIMENT/LABEL, with the "
                        f"reproduction's --tables / --models / --seeds)")
    keep = cells | needed_by(tasks, cells)
    return [t for t in tasks if t.name in keep]


def needed_by(tasks: list[Task], names: set[str]) -> set[str]:
    """Names of the tasks that the tasks ``names`` depend on, directly or not (a cell's search needs its
    pretraining)."""
    deps = {t.name: t.deps for t in tasks}
    needed: set[str] = set()
    todo = [d for n in names for d in deps[n]]
    while todo:
        name = todo.pop()
        if name not in needed:
            needed.add(name)
            todo.extend(deps[name])
    return needed


def build_parser(description: str | None = None) -> argparse.ArgumentParser:
    """The reproduction's flags (``benchmarks/per_example.py`` takes the same ones, to find the same cells)."""
    p = argparse.ArgumentParser(description=description or __doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="data set spec, e.g. npz:PATH or digits")
    p.add_argument("--members", type=int, default=1000)
    p.add_argument("--nonmembers", type=int, help="default: as many as members")
    p.add_argument("--work", required=True, help="work directory (checkpoints, logs, report cache)")
    p.add_argument("--results", help="results store path or URI (default WORK/results)")
    p.add_argument("--seeds", type=_ints, default=(0, 1, 2), help="seeds of the headline rows (default 0,1,2)")
    p.add_argument("--tables", type=_names, default=TABLES, help=f"default: {','.join(TABLES)}")
    p.add_argument("--models", type=_names, default=ENCODERS, help="encoders of the headline table")
    p.add_argument("--ablation-model", default="simclr")
    p.add_argument("--ablation-seeds", type=_ints, help="ablation / forget-size seeds (default: the first seed)")
    p.add_argument("--baseline-seeds", type=_ints, help="baseline seeds (default: the first seed)")
    p.add_argument("--forget-fractions", type=_floats, default=FORGET_FRACTIONS)
    p.add_argument("--tuned", action="append", default=[], metavar="MODEL=FILE",
                   help="a best-config YAML for MODEL (the 'tuned' table); default: run `unlearn tune` for it")
    p.add_argument("--tune-space", default="memgp",
                   help="search space(s) of the 'tuned' table, comma-separated, e.g. portfolio,neggrad_plus; one "
                        "search each (default memgp)")
    p.add_argument("--tune-samples", type=int, default=16, help="trials per search (default 16)")
    p.add_argument("--set", dest="pretrain_set", action="append", default=[], metavar="KEY=VALUE",
                   help="pretraining override for every model (after the recipe)")
    p.add_argument("--model-set", action="append", default=[], metavar="MODEL:KEY=VALUE",
                   help="pretraining override for one model (after --set), e.g. moco:optim.epochs=800")
    p.add_argument("--unlearn-set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--attack-set", action="append", default=[], metavar="KEY=VALUE", help="EvaluateJob key=value")
    p.add_argument("--probe-every", type=int, default=50,
                   help="measure the attack on the validation protocol every N pretraining epochs (0: off)")
    p.add_argument("--jobs", type=int, default=1, help="tasks run at once, each in its own process")
    p.add_argument("--in-process", action="store_true", help="run tasks in this process, one by one (tests)")
    p.add_argument("--dry-run", action="store_true", help="list the tasks and which are done; run nothing")
    add_ray_args(p)
    return p


def settings_from(args: argparse.Namespace) -> Settings:
    if args.members < 10:
        raise UserError(f"--members must be at least 10, got {args.members}")
    if args.jobs < 1:
        raise UserError(f"--jobs must be at least 1, got {args.jobs}")
    if not args.seeds:
        raise UserError("--seeds is empty")
    bad = [f for f in args.forget_fractions if not 0 < f < 1]
    if bad:
        raise UserError(f"--forget-fractions must lie in (0, 1), got {bad}")
    tuned = {}
    for item in args.tuned:
        model, sep, path = item.partition("=")
        if not sep or not Path(path).is_file():
            raise UserError(f"--tuned expects MODEL=FILE with an existing file, got {item!r}")
        tuned[model] = str(Path(path).resolve())
    return Settings(data=args.data, members=args.members, nonmembers=args.nonmembers, seeds=args.seeds,
                    tables=args.tables, models=args.models, ablation_model=args.ablation_model,
                    ablation_seeds=args.ablation_seeds, baseline_seeds=args.baseline_seeds,
                    forget_fractions=args.forget_fractions, pretrain_overrides=tuple(args.pretrain_set),
                    model_overrides=model_overrides(args.model_set),
                    unlearn_overrides=tuple(args.unlearn_set), attack_overrides=tuple(args.attack_set),
                    tuned_configs=tuned, tune_space=args.tune_space, tune_samples=args.tune_samples,
                    probe_every=args.probe_every if args.workers == 0 else 0, gpu=args.gpu)


def model_overrides(items: list[str]) -> dict[str, tuple[str, ...]]:
    """``--model-set MODEL:KEY=VALUE`` flags as {model: (KEY=VALUE, ...)}, in the order given."""
    out: dict[str, tuple[str, ...]] = {}
    for item in items:
        model, sep, override = item.partition(":")
        if not sep or "=" not in override or model not in RECIPES:
            raise UserError(f"--model-set expects MODEL:KEY=VALUE with MODEL one of {', '.join(RECIPES)}, "
                            f"got {item!r}")
        out[model] = out.get(model, ()) + (override,)
    return out


def finished_cells(results: str) -> set[str]:
    """Keys of cells whose rows are in the store."""
    import json

    from orchestrator.results.store import load

    df = load(results, kinds=["evaluate"])
    return {json.loads(x).get("cell_key") for x in df["extra_json"].dropna()} - {None}


def pending_tasks(tasks: list[Task], results: str) -> list[Task]:
    """Cells not in the store, and the pretrainings / retrainings they need whose checkpoints do not exist."""
    done = finished_cells(results)
    cells = [t for t in tasks if t.kind == "cell" and t.key not in done]
    needed = needed_by(tasks, {t.name for t in cells})
    return [t for t in tasks if (t.kind == "cell" and t in cells) or (t.name in needed and not is_done(t))]


def describe(summary: dict) -> str:
    if "before_acc" not in summary and "original_acc" in summary:
        util = summary["utility"]
        return (f"attack {summary['original_acc']:.3f} -> {summary['unlearned_acc']:.3f} (retrain "
                f"{summary['retrained_acc']:.3f}); {util} {summary[f'original_{util}']:.3f} -> "
                f"{summary[f'unlearned_{util}']:.3f} (retrain {summary[f'retrained_{util}']:.3f}); "
                f"unlearn {summary['unlearn_s']:.0f}s, audit {summary['eval_s']:.0f}s")
    return f"{summary.get('wall_time_s', summary['task_s']):.0f}s"


def run_all(tasks: list[Task], *, results: str, work: Path, jobs: int, in_process: bool,
            ray: dict | None = None) -> int:
    """Run tasks respecting dependencies, at most ``jobs`` at once, in list order among the runnable ones. ``ray``:
    :class:`~orchestrator.run.options.RayOptions` fields for the training steps (empty: in-process loops)."""
    todo = {t.name: t for t in tasks}
    record = {name: {**t.as_dict(), "ray": ray or {}} for name, t in todo.items()}
    names = [t.name for t in tasks]
    done: set[str] = set()
    failed: set[str] = set()
    logs = str(work / "logs")
    t_start = time.perf_counter()
    finished = 0

    def line(msg: str) -> None:
        elapsed = time.perf_counter() - t_start
        print(f"[{finished}/{len(tasks)} {elapsed / 60:5.1f} min] {msg}", flush=True)

    def runnable() -> list[str]:
        return [n for n in names if n in todo and all(d not in todo or d in done for d in todo[n].deps)
                and not any(d in failed for d in todo[n].deps)]

    if in_process:
        for name in list(names):
            if any(d in failed for d in todo[name].deps):
                failed.add(name)
                line(f"skip  {name} (a dependency failed)")
                continue
            line(f"start {name}")
            try:
                summary = run_task(record[name], results=results, work=str(work))
            except Exception as exc:  # noqa: BLE001 - report, keep going with independent tasks
                failed.add(name)
                line(f"FAILED {name}: {type(exc).__name__}: {exc}")
                continue
            finished += 1
            done.add(name)
            line(f"done  {name}: {describe(summary)}")
        return 1 if failed else 0

    ctx = mp.get_context("spawn")
    with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, max_tasks_per_child=1) as pool:
        running = {}
        while True:
            for name in runnable():
                if len(running) >= jobs:
                    break
                if name in running.values():
                    continue
                running[pool.submit(run_task, record[name], results=results, work=str(work),
                                    log_dir=logs)] = name
                line(f"start {name} (log: {logs}/{name.replace('/', '_')}.log)")
            if not running:
                break
            ready, _ = wait(running, return_when=FIRST_COMPLETED)
            for fut in ready:
                name = running.pop(fut)
                try:
                    summary = fut.result()
                except Exception as exc:  # noqa: BLE001
                    failed.add(name)
                    del todo[name]
                    line(f"FAILED {name}: {type(exc).__name__}: {exc} (see its log)")
                    continue
                finished += 1
                done.add(name)
                del todo[name]
                line(f"done  {name}: {describe(summary)}")
            for name in [n for n in todo if n not in done and n not in running.values()]:
                if any(d in failed for d in todo[name].deps):
                    failed.add(name)
                    del todo[name]
                    line(f"skip  {name} (a dependency failed)")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    try:
        args = parse_args(argv)
        settings = settings_from(args)
        ray = ray_options_from_args(args)
        if args.run_name:
            raise UserError("--run-name names one run; the reproduction derives one per task (resumable)")
        work = Path(args.work).resolve()
        results = args.results or str(work / "results")
        from orchestrator.results.store import filesystem

        filesystem(results)  # an unusable results URI fails before any work
        tasks = only_cells(build_tasks(build_plan(settings), settings, work), args.only)  # configs validated here
        pending = pending_tasks(tasks, results)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    cells = [t for t in tasks if t.kind == "cell"]
    print(f"{len(cells)} cells, {len(cells) - sum(t.kind == 'cell' for t in pending)} already in {results}; "
          f"{len(pending)} tasks to run ({sum(t.kind == 'pretrain' for t in pending)} pretrainings, "
          f"{sum(t.kind == 'retrain' for t in pending)} retrainings) with --jobs {args.jobs}", flush=True)
    if args.dry_run:
        for t in tasks:
            print(f"  {'todo' if t in pending else 'done'}  {t.name:<45} {t.out}")
        return 0
    work.mkdir(parents=True, exist_ok=True)
    from dataclasses import asdict

    return run_all(pending, results=results, work=work, jobs=args.jobs, in_process=args.in_process,
                   ray={k: v for k, v in asdict(ray).items() if k != "inject_fault"})


if __name__ == "__main__":
    sys.exit(main())
