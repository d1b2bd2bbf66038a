"""``unlearn tune``'s console: one line per finished trial instead of Ray Tune's status table.

A line names the trial, the values its job will actually run with (a switched-off weight is ``a=0``, never
``a=0.316, a_zero=True``: the same values ``best.yaml`` gets), its objective, what the objective is made of and
whether it met the accuracy-drop cap:

    trial 3/6 7a1c_00002  a=0 b=12.3 form=squared lr=0.0012  objective 0.031  attack acc 0.531  knn_acc drop 0.021  feasible

A portfolio's line starts with the trial's method (``method=neggrad_plus ascent_weight=0.12 ...``).

Example:
    >>> tune.RunConfig(callbacks=[TrialLines(space, "knn_acc", samples=6)], verbose=0)
"""

from __future__ import annotations

import sys
from typing import Any

from ray import tune

from orchestrator.tune.portfolio import PortfolioSpace
from orchestrator.tune.space import SearchSpace


def format_value(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int) or float(value).is_integer():
        return str(int(value))
    return f"{value:.3g}"


def flat_items(config: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """``{"runtime": {"num_threads": 1}}`` -> ``[("runtime.num_threads", 1)]`` (the keys ``--set`` takes)."""
    items: list[tuple[str, Any]] = []
    for key, value in config.items():
        if isinstance(value, dict):
            items += flat_items(value, f"{prefix}{key}.")
        else:
            items.append((f"{prefix}{key}", value))
    return items


def applied_values(space: SearchSpace | PortfolioSpace, config: dict[str, Any]) -> dict[str, Any]:
    """The sampled keys of a trial as its UnlearnJob gets them (switches applied, fixed keys left out)."""
    try:
        return space.shown_values(config)
    except KeyError:  # a trial whose config is incomplete (never started): show what Tune has
        return {k: v for k, v in config.items()}


def trial_line(space: SearchSpace | PortfolioSpace, accuracy: str, config: dict[str, Any],
               result: dict[str, Any], *,
               trial_id: str, done: int, samples: int, error: str | None = None) -> str:
    params = " ".join(f"{k}={format_value(v)}" for k, v in applied_values(space, config).items())
    head = f"trial {done}/{samples} {trial_id}  {params}"
    if error is not None:
        return f"{head}  failed: {error}"
    status = result.get("status")
    if status not in (None, "ok"):
        return f"{head}  {status}: {result.get('error') or 'no objective'}  infeasible"
    parts = [f"objective {format_value(result.get('objective'))}"]
    if isinstance(result.get("mia_accuracy"), (int, float)):
        parts.append(f"attack acc {result['mia_accuracy']:.3f}")
    if isinstance(result.get("accuracy_drop"), (int, float)):
        parts.append(f"{accuracy} drop {result['accuracy_drop']:+.3f}")
    parts.append("feasible" if result.get("feasible") is True else "infeasible (over the cap)")
    return f"{head}  " + "  ".join(parts)


class TrialLines(tune.Callback):
    """Prints :func:`trial_line` for every trial that finishes or fails (on the driver)."""

    def __init__(self, space: SearchSpace | PortfolioSpace, accuracy: str, samples: int):
        self.space, self.accuracy, self.samples = space, accuracy, samples
        self.printed = 0

    def _print(self, trials, trial, error: str | None = None) -> None:
        from trainables import console

        if not console.progress_enabled():
            return
        self.printed += 1  # the trial's own status may not be final yet when Tune calls back
        done = max(self.printed, sum(t.status in ("TERMINATED", "ERROR") and t is not trial for t in trials) + 1)
        line = trial_line(self.space, self.accuracy, dict(trial.config or {}), dict(trial.last_result or {}),
                          trial_id=trial.trial_id, done=min(done, self.samples), samples=self.samples, error=error)
        print(line, file=sys.stdout, flush=True)

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._print(trials, trial)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._print(trials, trial, error=str(getattr(trial, "error_file", None) or "see the trial's error.txt"))
