"""``unlearn tune``, the driver: a Ray Tune search over unlearning hyperparameters with Optuna's constrained TPE.

Flow (:func:`run_search`): every input is checked and the checkpoint loaded once (nothing is written before
that); the shared :class:`~trainables.tuning.base.SearchBase` goes into the object store; a ``Tuner`` runs
``samples`` trials (``OptunaSearch`` with a seeded ``TPESampler`` whose ``constraints_func`` reads each trial's
accuracy-drop constraint, optional ASHA over unlearning epochs), with trial resources and ``max_concurrent_trials``
planned from the cluster so trials never wait on each other's CPUs; finally every finished trial becomes a row in
the results store and the best *feasible* trial's config is written as ``best.yaml`` (``orchestrator/tune/outcome.py``).
An interrupted search resumes with ``Tuner.restore`` (``resume=True``); finished trials are not re-run.

Example:
    >>> outcome = run_search(SearchSettings(checkpoint="runs/base", space="memgp", samples=20, out="runs/tune",
    ...                                     results="runs/results"))
    >>> outcome.best["trial_id"], outcome.best_config_path
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.fenced.ray_internals import classic_tune_output
from orchestrator.run.storage import open_storage
from orchestrator.tune.outcome import SearchOutcome, collect_trials, finish_search
from orchestrator.tune.portfolio import PORTFOLIO, PortfolioSpace, load_portfolio
from orchestrator.tune.space import SearchSpace, load_space
from trainables.errors import UserError
from trainables.tuning.objective import Scoring, require_retrained, resolve_accuracy
from trainables.unlearning.registry import meta_kind

TRIAL_DRIVER_CPU = 0.5  # a Train-inside-Tune trial only drives its workers (and scores the result at the end)
STATE_FILE = "search.json"
# What defines a search: resuming with other values would mix two searches in one experiment.
_IDENTITY_KEYS = ("space_definition", "samples", "objective", "cap", "accuracy", "retrained", "asha", "grace_period",
                  "seed", "attack", "forget_ids", "parent_sha256", "workers")


@dataclass(frozen=True)
class SearchSettings:
    checkpoint: str
    space: str                          # a shipped space name, a YAML file, or "portfolio" (every method)
    samples: int
    out: str                            # best.yaml, summary.json, search.json, the Tune experiment by default
    results: str                        # the results store (local path or URI)
    objective: str = "mia_distance"
    cap: float = 0.10
    accuracy: str = "auto"              # auto | knn | linear | test | retain
    retrained: str | None = None
    overrides: tuple[str, ...] = ()     # --set KEY=VALUE: fix UnlearnJob keys
    attack: dict[str, Any] = field(default_factory=lambda: {"bootstrap": 0})
    forget_ids: tuple[int, ...] | None = None
    asha: bool = False
    grace_period: int = 1
    seed: int = 0
    resume: bool = False
    storage: str | None = None          # Tune experiment storage (default <out>/ray)
    name: str | None = None             # experiment name (default tune-<space>-<hash of out>)
    workers: int = 1                    # per trial; > 1: Train-inside-Tune
    cpus: float = 1.0                   # per trial (1 worker) or per Train worker
    gpu: bool = False
    max_concurrent: int | None = None
    keep_models: bool = False
    address: str | None = None
    interrupt_after: int | None = None  # testing: SIGINT the driver once this many trials have finished
    methods: tuple[str, ...] | None = None  # portfolio: only these methods (default: all that fit the model)


@dataclass(frozen=True)
class ResourcePlan:
    trial: dict[str, float]             # tune.with_resources of one trial
    per_trial_cpu: float                # the trial plus its Train workers
    max_concurrent: int

    def describe(self) -> str:
        return (f"{self.max_concurrent} trial(s) at a time, {self.per_trial_cpu:g} CPU each"
                + (f" ({self.trial.get('gpu', 0):g} GPU)" if self.trial.get("gpu") else ""))


def plan_resources(cluster: Mapping[str, float], *, workers: int, cpus: float, gpu: bool, samples: int,
                   limit: int | None = None, joined: bool = False) -> ResourcePlan:
    """Trial resources and how many trials may run at once so that every running trial (and its Train workers)
    fits the cluster together: nothing waits on resources another running trial holds."""
    if workers <= 1:
        trial = {"cpu": cpus, **({"gpu": 1.0} if gpu else {})}
        need_cpu, need_gpu = cpus, 1.0 if gpu else 0.0
    else:  # the trial drives its Train workers, which Ray schedules separately
        trial = {"cpu": TRIAL_DRIVER_CPU}
        need_cpu, need_gpu = TRIAL_DRIVER_CPU + workers * cpus, float(workers) if gpu else 0.0
    have_cpu, have_gpu = float(cluster.get("CPU", 0)), float(cluster.get("GPU", 0))
    fits = [have_cpu / need_cpu]
    if need_gpu:
        fits.append(have_gpu / need_gpu)
    concurrent = math.floor(min(fits) + 1e-9)
    if concurrent < 1:
        message = (f"one trial needs {need_cpu:g} CPUs{f' and {need_gpu:g} GPUs' if need_gpu else ''}; the cluster "
                   f"has {have_cpu:g} CPUs{f' and {have_gpu:g} GPUs' if need_gpu else ''}")
        if not joined:
            raise UserError(f"{message}: use fewer --workers-per-trial or a smaller --cpus-per-trial")
        concurrent = 1  # an autoscaling cluster may still grow
    concurrent = min(concurrent, samples, limit or concurrent)
    return ResourcePlan(trial, need_cpu, max(1, concurrent))


def check_settings(settings: SearchSettings) -> tuple[SearchSpace | PortfolioSpace, Path]:
    """Everything that can be checked without loading the checkpoint; nothing is written."""
    if settings.samples < 1:
        raise UserError(f"--samples must be at least 1, got {settings.samples}")
    Scoring(settings.objective, settings.cap)  # objective name and cap range
    require_retrained(settings.objective, settings.retrained)
    if settings.grace_period < 1:
        raise UserError(f"--grace-period must be at least 1 epoch, got {settings.grace_period}")
    if settings.asha and settings.workers > 1:
        raise UserError("--asha reports every epoch from the trial process; it needs --workers-per-trial 1")
    if settings.max_concurrent is not None and settings.max_concurrent < 1:
        raise UserError(f"--max-concurrent must be at least 1, got {settings.max_concurrent}")
    if settings.workers < 1 or settings.cpus <= 0:
        raise UserError("--workers-per-trial must be at least 1 and --cpus-per-trial positive")
    if settings.space == PORTFOLIO:
        from trainables.checkpoint import read_meta

        space = load_portfolio(meta_kind(read_meta(settings.checkpoint)), settings.methods, list(settings.overrides))
    elif settings.methods is not None:
        raise UserError(f"--methods chooses the methods of --space {PORTFOLIO}; --space {settings.space} runs one "
                        f"method (drop --methods, or use --space {PORTFOLIO})")
    else:
        space = load_space(settings.space, list(settings.overrides))
    if space.method == "retrain":
        raise UserError("a search tunes an unlearning method; retrain is the reference (pass it as --retrained)")
    out = Path(settings.out)
    if settings.resume:
        if not (out / STATE_FILE).is_file():
            raise UserError(f"--resume: {out} holds no search to resume ({STATE_FILE} is missing)")
    elif out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"{out} already exists and is not empty; pass --resume to continue the search there, or "
                        f"choose another --out")
    results = Path(settings.results)
    if "://" not in settings.results and results.exists() and not results.is_dir():
        raise UserError(f"--results {results} is a file; the results store is a directory (or a URI)")
    from orchestrator.outputs import check_writable_dir

    check_writable_dir(out, "--out")  # every output place, before any trial runs
    if "://" not in settings.results:
        check_writable_dir(results, "--results")
    return space, out


def run_search(settings: SearchSettings, log=None) -> SearchOutcome:
    """Run (or resume) a search; returns its trials, the best feasible one and where everything was written."""
    from trainables import console
    from trainables.checkpoint import read_meta
    from trainables.tuning.base import prepare_search_base

    log = log or console.status
    space, out = check_settings(settings)
    if not settings.gpu and "runtime.device" not in space.fixed:
        space = space.with_runtime(device="cpu")  # trials hold no GPU: never touch one
    meta = read_meta(settings.checkpoint)
    accuracy = resolve_accuracy(settings.accuracy, meta.get("method") != "supervised")
    scoring = Scoring(settings.objective, settings.cap, accuracy)
    probe, *others = space.probe_jobs()
    base = prepare_search_base(settings.checkpoint, probe, scoring=scoring, attack=settings.attack,
                               forget_ids=settings.forget_ids, retrained=settings.retrained, log=log)
    if others:  # a portfolio: every method must fit this model and these splits, before any trial
        from trainables.unlearning.api import check_compatible

        for job in others:
            check_compatible(job, base.model(), base.plan.split_ids(base.splits))
    state = search_state(settings, space, base)
    if settings.resume:
        _check_resume(out, state)

    from orchestrator.run.driver import connect_ray

    started = connect_ray(settings.address)
    try:
        import ray

        plan = plan_resources(ray.cluster_resources(), workers=settings.workers, cpus=settings.cpus,
                              gpu=settings.gpu, samples=settings.samples, limit=settings.max_concurrent,
                              joined=bool(settings.address or os.environ.get("RAY_ADDRESS")))
        _check_experiment(state, resume=settings.resume)
        log(space.summary())
        log(f"{settings.samples} trials, objective {scoring.objective} (minimised), feasible when "
            f"{scoring.accuracy} drops by <= {scoring.cap:g}; {plan.describe()}; Tune experiment: "
            f"{state['storage'].rstrip('/')}/{state['name']}")
        out.mkdir(parents=True, exist_ok=True)
        if not settings.resume:
            _write_json(out / STATE_FILE, state)
        t0 = time.perf_counter()
        grid = _fit(settings, space, base, state, plan, ray.put(base))
        fit_wall_s = time.perf_counter() - t0
        trials = collect_trials(grid)
    finally:
        if started:
            import ray

            ray.shutdown()
    outcome = finish_search(trials, base=base, space=space, settings=settings, state=state, log=log)
    outcome.extra.update(fit_wall_s=fit_wall_s, setup_s=base.setup_time_s, max_concurrent=plan.max_concurrent)
    return outcome


def search_state(settings: SearchSettings, space: SearchSpace | PortfolioSpace, base) -> dict[str, Any]:
    name = settings.name or f"tune-{space.name}-{_short_hash(str(Path(settings.out).resolve()))}"
    storage = settings.storage or str((Path(settings.out) / "ray").resolve())
    return {"name": name, "storage": storage, "space": space.name, "space_definition": space.definition(),
            "samples": settings.samples, "objective": settings.objective, "cap": settings.cap,
            "accuracy": base.scoring.accuracy, "retrained": base.retrained_path, "asha": settings.asha,
            "grace_period": settings.grace_period, "seed": settings.seed, "attack": base.attack.model_dump(mode="json"),
            "forget_ids": [int(i) for i in base.plan.forget_ids], "parent_sha256": base.parent_sha256,
            "checkpoint": base.checkpoint_path, "workers": settings.workers, "results": settings.results}


def _check_resume(out: Path, state: dict[str, Any]) -> None:
    stored = json.loads((out / STATE_FILE).read_text())
    changed = [k for k in _IDENTITY_KEYS if json.dumps(stored.get(k), sort_keys=True, default=str)
               != json.dumps(state.get(k), sort_keys=True, default=str)]
    if changed:
        raise UserError(f"--resume: the search in {out} was started with other settings ({', '.join(changed)}); "
                        f"resume it with the same command it was started with")
    state.update(name=stored["name"], storage=stored["storage"])


def _fit(settings: SearchSettings, space: SearchSpace | PortfolioSpace, base, state: dict[str, Any], plan: ResourcePlan, ref):
    from ray import tune

    from orchestrator.tune.trials import SharedBase, TrialSettings, distributed_trial, in_process_trial

    storage = open_storage(state["storage"])
    models_dir = str((Path(settings.out) / "trials").resolve()) if settings.keep_models or settings.workers > 1 \
        else None
    trial_settings = TrialSettings(name=state["name"], asha=settings.asha, threads=max(1, int(settings.cpus)),
                                   models_dir=models_dir, workers=settings.workers,
                                   cpus_per_worker=settings.cpus, use_gpu=settings.gpu,
                                   train_storage=storage.display(state["name"], "train"))
    function = in_process_trial if settings.workers <= 1 else distributed_trial
    trainable = tune.with_resources(tune.with_parameters(function, handle=SharedBase(ref, space, trial_settings)),
                                    plan.trial)
    # after an interruption, trials that never reported have no result files: expected, not worth a warning
    logging.getLogger("ray.tune.analysis.experiment_analysis").setLevel(logging.ERROR)
    with classic_tune_output():  # the classic table, with the columns chosen in _reporter
        if _experiment_exists(state):
            tuner = tune.Tuner.restore(storage.display(state["name"]), trainable, resume_unfinished=True,
                                       resume_errored=False,
                                       storage_filesystem=storage.fs if storage.via_fsspec else None)
        else:
            tuner = _new_tuner(settings, space, base, state, plan, trainable, storage)
        return tuner.fit()


def _experiment_exists(state: dict[str, Any]) -> bool:
    from ray import tune

    storage = open_storage(state["storage"])
    return tune.Tuner.can_restore(storage.display(state["name"]),
                                  storage_filesystem=storage.fs if storage.via_fsspec else None)


def _check_experiment(state: dict[str, Any], *, resume: bool) -> None:
    """A new search never continues someone else's experiment (same --storage and --name)."""
    if not resume and _experiment_exists(state):
        raise UserError(f"a search named {state['name']} already exists in {state['storage']}; pass --resume to "
                        f"continue it, or choose another --name")


def _new_tuner(settings: SearchSettings, space: SearchSpace | PortfolioSpace, base, state, plan: ResourcePlan, trainable, storage):
    import optuna
    from ray import tune

    from orchestrator.tune.searcher import ConstrainedOptunaSearch, InterruptAfter, tpe_sampler

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    startup = max(2, min(10, settings.samples // 2))  # random trials before TPE models the space
    searcher = ConstrainedOptunaSearch(space=space.optuna_space(), metric="objective", mode="min",
                                       points_to_evaluate=space.start_points() or None,
                                       sampler=tpe_sampler(settings.seed, n_startup_trials=startup))
    scheduler = None
    if settings.asha:
        max_epochs = space.max_epochs()
        scheduler = tune.schedulers.ASHAScheduler(time_attr="training_iteration", max_t=max_epochs,
                                                  grace_period=min(settings.grace_period, max_epochs),
                                                  reduction_factor=2)
    from orchestrator.tune.trial_lines import TrialLines

    callbacks = [TrialLines(space, base.scoring.accuracy, settings.samples)]  # one line per trial, no table
    if settings.interrupt_after is not None:
        callbacks.append(InterruptAfter(settings.interrupt_after, settings.out))
    return tune.Tuner(
        trainable, param_space=space.tune_space(),
        tune_config=tune.TuneConfig(metric="objective", mode="min", search_alg=searcher, scheduler=scheduler,
                                    num_samples=settings.samples, max_concurrent_trials=plan.max_concurrent,
                                    reuse_actors=settings.workers <= 1),
        run_config=tune.RunConfig(name=state["name"], **storage.ray_storage_kwargs(), callbacks=callbacks,
                                  verbose=0,
                                  failure_config=tune.FailureConfig(max_failures=0)),
    )


def _short_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str))
    os.replace(tmp, path)
