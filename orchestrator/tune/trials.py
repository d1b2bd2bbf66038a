"""What one Ray Tune trial runs (the trial side of ``unlearn tune``).

The pretrained checkpoint and data are loaded once by the driver into a :class:`~trainables.tuning.base.SearchBase`,
put in the object store, and reached here through a :class:`SharedBase` handle (``tune.with_parameters``); a trial
process keeps what it fetched, so reused actors fetch it once.

- 1 worker per trial (the default): :func:`in_process_trial` unlearns inside the trial process (no TorchTrainer
  start-up), with per-epoch reports when ASHA is on.
- N > 1 workers: :func:`distributed_trial` makes the trial a Ray Train driver (the Train-inside-Tune pattern of
  Ray's docs): :func:`~orchestrator.run.driver.run_distributed` runs a forget task whose workers take the
  model from the same object-store copy, then the trial scores the exported model and reports once. (Not
  ``TuneReportCallback``: the workers' per-epoch reports carry no objective, which Tune's searcher requires.)

Example:
    >>> handle = SharedBase(ray.put(base), space, TrialSettings(name="tune-memgp"))
    >>> trainable = tune.with_parameters(in_process_trial, handle=handle)
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from orchestrator.tune.portfolio import PortfolioSpace
from orchestrator.tune.space import SearchSpace
from trainables.jobs.task import Setup, TrainTask
from trainables.tuning.base import SearchBase

_FETCHED: dict[str, SearchBase] = {}  # per trial process: object ref -> the fetched base


@dataclass(frozen=True)
class TrialSettings:
    name: str                          # the search (experiment) name: Train run names derive from it
    asha: bool = False                 # report every epoch (ASHA decides after each)
    threads: int = 1                   # torch threads of an in-process trial
    models_dir: str | None = None      # keep each trial's unlearned checkpoint here (None: discard)
    workers: int = 1                   # Ray Train workers per trial (> 1: Train-inside-Tune)
    cpus_per_worker: float = 1.0
    use_gpu: bool = False
    train_storage: str | None = None   # where the trials' Ray Train runs live (workers > 1)


@dataclass(frozen=True)
class SharedBase:
    """A picklable handle on the search's shared state in the object store."""

    ref: Any                           # ray.ObjectRef of a SearchBase
    space: SearchSpace | PortfolioSpace
    settings: TrialSettings = field(default_factory=lambda: TrialSettings(name="tune"))

    def get(self) -> SearchBase:
        import ray

        key = self.ref.hex()
        if key not in _FETCHED:
            _FETCHED.clear()  # one search per process at a time
            # a private, writable copy: the object store hands out read-only (zero-copy) numpy arrays
            _FETCHED[key] = copy.deepcopy(ray.get(self.ref))
        return _FETCHED[key]


def reportable(result: dict[str, Any]) -> dict[str, Any]:
    """Tune's report: numbers, flags and strings (anything else dropped); always an ``objective``."""
    out = {k: v for k, v in result.items() if v is None or isinstance(v, (bool, int, float, str))}
    out.setdefault("objective", math.nan)
    return out


def in_process_trial(config: dict[str, Any], handle: SharedBase) -> None:
    """A 1-worker trial: unlearn and score in this process; report each epoch (ASHA) and the final result."""
    import torch
    from ray import tune

    from trainables.loops.context import LoopContext, resolve_device
    from trainables.tuning.trial import run_trial

    base, settings = handle.get(), handle.settings
    job = handle.space.job(config)
    torch.set_num_threads(job.runtime.num_threads or settings.threads)
    ctx = LoopContext(device=resolve_device(job.runtime.device), progress=False, log=lambda message: None)
    per_epoch = (lambda result: tune.report(reportable(result))) if settings.asha else None
    model_out = partial(_save_model, settings=settings) if settings.models_dir else None
    tune.report(reportable(run_trial(base, job, ctx, per_epoch=per_epoch, model_out=model_out)))


def _save_model(run, model, history, spec, *, settings: TrialSettings) -> str:
    from ray import tune

    from trainables.jobs.unlearn import save_unlearned

    out = Path(settings.models_dir) / tune.get_context().get_trial_id()
    if out.exists():  # a resumed trial that saved before the interruption: keep the first copy
        return str(out)
    return str(save_unlearned(run, model, history, spec, out, wall_time_s=0.0))


def distributed_trial(config: dict[str, Any], handle: SharedBase) -> None:
    """An N-worker trial: this trial drives a Ray Train run (named after the search and the trial, so a resumed
    search resumes it too), then scores the exported model here."""
    import time

    from ray import tune

    from orchestrator.run.driver import run_distributed
    from orchestrator.run.options import RayOptions
    from trainables.checkpoint import load_checkpoint
    from trainables.tuning.trial import trial_result

    base, settings = handle.get(), handle.settings
    job = handle.space.job(config)
    trial_id = tune.get_context().get_trial_id()
    out = Path(settings.models_dir) / trial_id
    t0 = time.perf_counter()
    if not (out / "meta.json").exists():
        options = RayOptions(workers=settings.workers, use_gpu=settings.use_gpu,
                             cpus_per_worker=settings.cpus_per_worker, storage=settings.train_storage,
                             run_name=f"{settings.name}-{trial_id}")
        run_distributed(shared_forget_task(handle, job), out, options)
    unlearn_s = time.perf_counter() - t0
    model = load_checkpoint(out).model
    t1 = time.perf_counter()
    metrics = base.evaluate(model, "cpu")
    result = trial_result(base, metrics, epochs_run=job.epochs, unlearn_time_s=unlearn_s,
                          eval_time_s=time.perf_counter() - t1)
    result.update(checkpoint_path=str(out), trial_time_s=time.perf_counter() - t0)
    tune.report(reportable(result))


def shared_forget_task(handle: SharedBase, job) -> TrainTask:
    """The ``forget`` Train task of ``trainables/jobs/unlearn.py``, set up from the shared base instead of
    re-reading the checkpoint on every worker."""
    from trainables.jobs.unlearn import forget_train, unlearned_task_meta

    base = handle.get()
    identity = {"parent_sha256": base.parent_sha256, "forget_ids": [int(i) for i in base.plan.forget_ids]}
    return TrainTask("forget", job, job.epochs, partial(_shared_setup, handle=handle), forget_train,
                     meta=unlearned_task_meta,
                     identity=identity)


def _shared_setup(job, *, handle: SharedBase) -> Setup:
    run = handle.get().unlearn_run(job)
    splits = run.plan.output_splits(run.checkpoint.splits)
    return Setup(run.checkpoint.model, run.checkpoint.meta["model_spec"], run.source, splits, state=run)
