"""One search trial as a plain function: unlearn a fresh copy of the pretrained model with the trial's job, score it
with the validation protocol, and return a flat result (what Tune reports and the results store records).

Per-epoch scoring (``per_epoch``, for ASHA early stopping over unlearning epochs) evaluates the model after every
epoch and hands each result but the last to the callback; the last one is the return value. A trial whose loss becomes NaN or
explodes is a finding, not a crash: it returns status ``diverged`` with the worst objective and is infeasible.

Times: ``unlearn_time_s`` is the unlearning loop alone, ``eval_time_s`` every evaluation of the trial, and
``trial_time_s`` the whole function (model build included); the search adds Tune's own overhead on top.

Example:
    >>> result = run_trial(base, space.job(config), LoopContext(progress=False))
    >>> result["objective"], result["feasible"], result["accuracy_drop"]
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from trainables.errors import UserError
from trainables.jobs.unlearn import unlearn_task
from trainables.loops.context import LoopContext
from trainables.models.base import unwrap
from trainables.tuning.base import SearchBase
from trainables.unlearning.config import UnlearnJob

Report = Callable[[dict[str, Any]], None]


def trial_result(base: SearchBase, metrics: dict[str, float], *, epochs_run: int, unlearn_time_s: float,
                 eval_time_s: float, status: str = "ok", error: str | None = None) -> dict[str, Any]:
    """The flat result of a trial: validation metrics, score (objective, accuracy_drop, constraint, feasible),
    times, epochs and status."""
    score = base.scoring.score(metrics, original=base.original, reference=base.reference) if status == "ok" \
        else base.scoring.diverged()
    out: dict[str, Any] = {k: float(v) for k, v in metrics.items() if k != "eval_time_s"}
    out.update(score, epochs_run=epochs_run, unlearn_time_s=unlearn_time_s, eval_time_s=eval_time_s, status=status)
    if error:
        out["error"] = error
    return out


def run_trial(base: SearchBase, job: UnlearnJob, ctx: LoopContext, *, per_epoch: Report | None = None,
              model_out: Callable[..., str | None] | None = None) -> dict[str, Any]:
    """Unlearn and score one configuration; returns the final result. ``per_epoch`` gets the result of every
    epoch but the last (else only the final result is computed). ``model_out(run, model, history, spec)`` may
    save the model and return its path."""
    t_start = time.perf_counter()
    run = base.unlearn_run(job)
    eval_s = 0.0
    state: dict[str, Any] = {"epochs": 0, "last": None}

    def score_epoch(epoch: int, epoch_metrics: dict[str, Any], _train_state) -> None:
        nonlocal eval_s
        t0 = time.perf_counter()
        metrics = base.evaluate(unwrap(run.checkpoint.model), ctx.device)
        eval_s += time.perf_counter() - t0
        state["epochs"] = epoch + 1
        elapsed = time.perf_counter() - t_loop
        state["last"] = trial_result(base, metrics, epochs_run=epoch + 1, unlearn_time_s=elapsed - eval_s,
                                     eval_time_s=eval_s)
        state["last"]["trial_time_s"] = time.perf_counter() - t_start
        if epoch + 1 < job.epochs:  # the last epoch's result is the return value
            per_epoch(state["last"])

    if per_epoch is not None:
        ctx.on_epoch_end = score_epoch
    t_loop = time.perf_counter()
    try:
        model, history, spec = unlearn_task(run, ctx)
    except UserError as exc:  # NaN / explosion (inputs were checked on the driver): the region is bad
        diverged = trial_result(base, {}, epochs_run=state["epochs"], eval_time_s=eval_s, status="diverged",
                                unlearn_time_s=time.perf_counter() - t_loop - eval_s, error=str(exc))
        diverged["trial_time_s"] = time.perf_counter() - t_start
        return diverged
    loop_s = time.perf_counter() - t_loop
    if per_epoch is None:
        t0 = time.perf_counter()
        metrics = base.evaluate(model, ctx.device)
        eval_s = time.perf_counter() - t0
        result = trial_result(base, metrics, epochs_run=len(history), unlearn_time_s=loop_s, eval_time_s=eval_s)
    else:
        result = state["last"]
    if model_out is not None:
        result["checkpoint_path"] = model_out(run, model, history, spec)
    result["trial_time_s"] = time.perf_counter() - t_start
    return result
