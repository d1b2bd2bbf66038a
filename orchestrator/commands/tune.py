"""`unlearn tune`: search unlearning hyperparameters (Ray Tune + Optuna constrained TPE) for the lowest
membership-inference leakage of the forget set within an accuracy-drop cap. Docs: docs/tuning.md.

    unlearn tune --checkpoint runs/base --space memgp --samples 40 --cap 0.10 --objective mia_distance \\
                 --results runs/results --out runs/tune-memgp
    unlearn tune ... --out runs/tune-memgp --resume          # continue an interrupted search
    unlearn tune --checkpoint runs/base --space portfolio --methods finetune,neggrad_plus --out runs/tune-all
    unlearn forget --checkpoint runs/base --config runs/tune-memgp/best.yaml --out runs/forgot
"""

from __future__ import annotations

import argparse

EXIT_NO_FEASIBLE = 1
EXIT_INTERRUPTED = 130


def register(sub) -> None:
    from orchestrator.commands.forget import add_forget_keys_args
    from trainables.tuning.objective import ACCURACY_METRICS, OBJECTIVES

    p = sub.add_parser(
        "tune", help="search unlearning hyperparameters under an accuracy-drop cap (Ray Tune + Optuna)",
        description="Search the hyperparameters of an unlearning method (a search space: --space) for the lowest "
                    "membership-inference leakage of the forget set (--objective), keeping the accuracy drop "
                    "within --cap. Trials are scored on a validation protocol that never reads nonmember_eval "
                    "(kept for the final audit). Every trial becomes a row in the results store; the best "
                    "feasible configuration is written to OUT/best.yaml for `unlearn forget --config` and "
                    "`unlearn schedule run --config`.",
        epilog="Spaces: memgp, gp, finetune, neggrad_plus, l1_sparse, alignment_calibration, random_labels, a "
               "YAML file, or portfolio: one search across every method that fits the checkpoint's model kind "
               "(docs/tuning.md). Exit codes: 0 best found, 1 no feasible trial, 2 bad input, "
               "130 interrupted (resume with --resume).",
    )
    p.add_argument("--checkpoint", required=True, help="the pretrained checkpoint every trial starts from")
    p.add_argument("--space", required=True, metavar="NAME|FILE",
                   help="a shipped search space, a YAML file, or portfolio (the method is searched too)")
    p.add_argument("--methods", metavar="M1,M2", help="--space portfolio: only these methods (default: every "
                                                      "registered method with a search space that fits the model)")
    p.add_argument("--samples", type=int, default=20, metavar="N", help="number of trials (default 20)")
    p.add_argument("--cap", type=float, default=0.10,
                   help="largest allowed accuracy drop, a fraction in (0, 1) (default 0.10 = 10 points)")
    p.add_argument("--objective", default="mia_distance", choices=OBJECTIVES,
                   help="minimised: mia_distance = |attack accuracy - 0.5| (default), mia_accuracy, or "
                        "gap_to_retrain or target_distance = the larger of |attack - 0.5| and |attack - retrained's| "
                        "(both need --retrained)")
    p.add_argument("--accuracy", default="auto", choices=["auto", *ACCURACY_METRICS],
                   help="the accuracy the cap applies to (auto: kNN for encoders, test accuracy for classifiers)")
    p.add_argument("--retrained", metavar="DIR", help="the model retrained without the forget set (reference)")
    p.add_argument("--results", metavar="PATH|URI",
                   help="results store, one row per trial (default: $UNLEARN_RESULTS, else ./results)")
    p.add_argument("--out", required=True, metavar="DIR", help="where best.yaml, summary.json and the search "
                                                              "state go (new, or the search to --resume)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="fix an UnlearnJob key for every trial (removes it from the search), e.g. --set epochs=5")
    p.add_argument("--attack", dest="attack_overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="attack setting of the trials' evaluation, e.g. --attack n_views=6 (default bootstrap=0)")
    p.add_argument("--forget-ids", metavar="IDS|FILE", help="ids to forget (default: the checkpoint's forget split)")
    add_forget_keys_args(p)
    p.add_argument("--asha", action="store_true", help="ASHA early stopping over unlearning epochs (each trial "
                                                       "reports its objective after every epoch)")
    p.add_argument("--grace-period", type=int, default=1, metavar="E", help="ASHA: epochs before a trial may stop")
    p.add_argument("--seed", type=int, default=0, help="TPE sampler seed (default 0)")
    p.add_argument("--resume", action="store_true", help="continue the interrupted search in --out")
    p.add_argument("--keep-models", action="store_true", help="keep every trial's unlearned checkpoint in OUT/trials")
    g = p.add_argument_group("Ray (see docs/tuning.md)")
    g.add_argument("--workers-per-trial", type=int, default=1, metavar="N",
                   help="1 (default): unlearn inside the trial process; N > 1: each trial drives a Ray Train run")
    g.add_argument("--cpus-per-trial", type=float, default=1.0, metavar="C",
                   help="CPUs per trial (1 worker) or per Train worker (N workers)")
    g.add_argument("--gpu", action="store_true", help="one GPU per trial (or per Train worker)")
    g.add_argument("--max-concurrent", type=int, metavar="K", help="at most K trials at once (default: as many as "
                                                                   "the cluster holds)")
    g.add_argument("--storage", metavar="PATH|URI", help="Tune experiment storage (default OUT/ray)")
    g.add_argument("--name", help="experiment name (default: tune-SPACE-<hash of --out>)")
    g.add_argument("--address", metavar="ADDR", help="join a Ray cluster (default: $RAY_ADDRESS, else local)")
    g.add_argument("--interrupt-after", type=int, help=argparse.SUPPRESS)  # testing: Ctrl+C after K trials
    p.set_defaults(func=run)


def settings_from_args(args):

    from orchestrator.commands.forget import forget_ids_arg
    from orchestrator.config import parse_overrides
    from orchestrator.results.run_rows import results_path
    from orchestrator.tune.search import SearchSettings

    forget_ids = forget_ids_arg(args)  # --forget-ids, or record keys resolved against the checkpoint's manifest
    attack = {"bootstrap": 0, **parse_overrides(args.attack_overrides)}
    return SearchSettings(
        checkpoint=args.checkpoint, space=args.space, samples=args.samples, out=args.out,
        results=results_path(args.results),
        objective=args.objective, cap=args.cap, accuracy=args.accuracy, retrained=args.retrained,
        overrides=tuple(args.overrides), attack=attack, forget_ids=tuple(forget_ids) if forget_ids else None,
        asha=args.asha, grace_period=args.grace_period, seed=args.seed, resume=args.resume, storage=args.storage,
        name=args.name, workers=args.workers_per_trial, cpus=args.cpus_per_trial, gpu=args.gpu,
        max_concurrent=args.max_concurrent, keep_models=args.keep_models, address=args.address,
        interrupt_after=args.interrupt_after,
        methods=None if args.methods is None else tuple(args.methods.split(",")))


def run(args) -> int:
    import sys

    from orchestrator.tune.search import run_search

    settings = settings_from_args(args)
    outcome = run_search(settings)
    finished, feasible = outcome.finished, outcome.feasible
    print(f"search {outcome.name}: {len(finished)}/{outcome.samples} trials finished, {len(feasible)} feasible")
    from trainables import console

    if len(outcome.per_method) > 1:  # a portfolio: each method's best feasible trial
        from orchestrator.tune.per_method import per_method_lines

        print("per method (best feasible trial):")
        for line in per_method_lines(outcome.per_method, outcome.accuracy_metric):
            print(f"  {line}")
    console.info(f"results: {settings.results} (kind tune-trial, experiment {outcome.name}); summary: "
                 f"{outcome.summary_path}")
    if outcome.interrupted:
        print("interrupted: resume with the same command plus --resume (finished trials are not re-run)",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    if outcome.best is None:
        errors = sum(t.status != "ok" for t in finished)
        print(f"error: no feasible trial: every finished trial exceeded the accuracy-drop cap {args.cap:g}"
              + (f" or failed ({errors} diverged/errored)" if errors else "")
              + "; raise --cap, narrow the space (e.g. lower learning rates), or add --samples", file=sys.stderr)
        return EXIT_NO_FEASIBLE
    from orchestrator.tune.trial_lines import flat_items, format_value

    r = outcome.best.result
    print(f"best feasible trial {outcome.best.trial_id}: objective {r['objective']:.4f}, attack accuracy "
          f"{r.get('mia_accuracy', float('nan')):.4f}, accuracy drop {r.get('accuracy_drop', float('nan')):.4f}")
    if console.is_quiet():
        print(f"best config: {outcome.best_config_path} ("
              + " ".join(f"{k}={format_value(v)}" for k, v in flat_items(outcome.best_config)) + ")")
        return 0
    for key, value in outcome.best_config.items():
        print(f"  {key:<20} {value}")
    print(f"best config: {outcome.best_config_path}")
    return 0
