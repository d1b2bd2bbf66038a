"""Ray Tune pieces that subclass Ray's own classes: Optuna's constrained TPE fed from Tune results, and a test hook.

Ray passes no constraint values to Optuna, so :class:`ConstrainedOptunaSearch` copies each
trial's ``constraint`` (accuracy drop minus cap; feasible when <= 0) into the Optuna trial just before the trial is
told to the study. Optuna >= 5 reads it with ``Trial.set_constraint`` (its TPE then always models feasibility;
``constraints_func`` is deprecated there); older releases get it as a user attribute that :func:`constraint_of`,
the sampler's ``constraints_func``, reads back (:func:`tpe_sampler` picks the right one). It touches
``OptunaSearch._ot_trials`` (a private attribute; checked with ray 2.60).

Example:
    >>> searcher = ConstrainedOptunaSearch(metric="objective", mode="min", sampler=tpe_sampler(seed=0))
"""

from __future__ import annotations

import math
import os
import signal
from pathlib import Path

import optuna
from ray import tune
from ray.tune.search.optuna import OptunaSearch

CONSTRAINT_ATTR = "constraint"
HAS_SET_CONSTRAINT = hasattr(optuna.trial.Trial, "set_constraint")  # optuna >= 5


def tpe_sampler(seed: int, n_startup_trials: int = 10) -> optuna.samplers.TPESampler:
    """A seeded TPE sampler that models the accuracy-drop constraint."""
    constraints = {} if HAS_SET_CONSTRAINT else {"constraints_func": constraint_of}
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=n_startup_trials, **constraints)


def constraint_of(trial) -> list[float]:
    """Optuna ``constraints_func``: ``[accuracy_drop - cap]`` (a trial without one, e.g. failed, is infeasible)."""
    value = trial.user_attrs.get(CONSTRAINT_ATTR)
    return [float(value) if value is not None and math.isfinite(value) else 1.0]


class ConstrainedOptunaSearch(OptunaSearch):
    """``OptunaSearch`` that hands each finished trial's ``constraint`` to Optuna's constrained TPE."""

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        ot_trial = self._ot_trials.get(trial_id)
        if ot_trial is not None and trial_id not in self._completed_trials:
            value = (result or {}).get(CONSTRAINT_ATTR)
            value = float(value) if isinstance(value, (int, float)) and math.isfinite(value) else 1.0  # 1: infeasible
            if HAS_SET_CONSTRAINT:
                ot_trial.set_constraint(CONSTRAINT_ATTR, value)
            else:
                ot_trial.set_user_attr(CONSTRAINT_ATTR, value)
        super().on_trial_complete(trial_id, result=result, error=error)


class InterruptAfter(tune.Callback):
    """Testing: SIGINT the driver once ``count`` trials have finished, as Ctrl+C would (Tune saves the experiment
    state and ``fit`` returns). Fires once per search directory: Tune restores callbacks with the experiment."""

    def __init__(self, count: int, out: str):
        self.count, self.done, self.marker = count, 0, str(Path(out) / ".interrupted")

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.done += 1
        if self.done >= self.count and not os.path.exists(self.marker):
            Path(self.marker).write_text(f"interrupted after {self.done} trials\n")
            os.kill(os.getpid(), signal.SIGINT)
