"""Each method's best feasible trial of a search: the per-method rows of ``unlearn tune``'s output and
``summary.json`` (a portfolio compares methods; a one-method search has one row).

A row: ``method``, ``trials`` (finished), ``feasible`` (how many), and, when one is feasible, the best one's
``trial_id``, ``objective``, ``mia_accuracy``, ``accuracy_drop`` and ``config`` (its UnlearnJob keys); ``best`` is
None for a method with no feasible trial. Selection is :func:`~trainables.tuning.objective.select_best`, the rule
that picks the search's own best, so the overall best is the best of these rows.

Example:
    >>> rows = per_method_best(outcome.finished, space)
    >>> print("\\n".join(per_method_lines(rows, "test_acc")))
    finetune      2 trials, 1 feasible  best 7a1c_00001: objective 0.031  attack acc 0.531  test_acc drop +0.021
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from trainables.tuning.objective import select_best


def per_method_best(trials, space, config_of: Callable | None = None) -> list[dict[str, Any]]:
    """One row per method of ``space`` (a portfolio: each of its methods, tried or not), in its order.
    ``config_of(trial)``: the config a row reports (default ``space.best_config(trial.config)``)."""
    config_of = config_of or (lambda trial: space.best_config(trial.config))
    methods = list(getattr(space, "methods", [space.method]))
    by_method: dict[str, list] = {m: [] for m in methods}
    for trial in trials:
        if trial.config:
            by_method.setdefault(space.method_of(trial.config), []).append(trial)
    rows = []
    for method, group in by_method.items():
        view = select_best(t.selection_view() for t in group)
        best = next((t for t in group if view and t.trial_id == view["trial_id"]), None)
        row: dict[str, Any] = {"method": method, "trials": len(group),
                               "feasible": sum(t.selection_view()["feasible"] for t in group), "best": None}
        if best is not None:
            r = best.result
            row["best"] = {"trial_id": best.trial_id, "objective": r.get("objective"),
                           "mia_accuracy": r.get("mia_accuracy"), "accuracy_drop": r.get("accuracy_drop"),
                           "config": config_of(best)}
        rows.append(row)
    return rows


def per_method_lines(rows: list[dict[str, Any]], accuracy: str) -> list[str]:
    """Console lines of :func:`per_method_best`'s rows."""
    width = max([len(r["method"]) for r in rows] + [6])
    lines = []
    for row in rows:
        head = f"{row['method']:<{width}}  {row['trials']} trial(s), {row['feasible']} feasible"
        best = row["best"]
        if best is None:
            lines.append(f"{head}  {'no trial' if not row['trials'] else 'no feasible trial'}")
            continue
        lines.append(f"{head}  best {best['trial_id']}: objective {best['objective']:.4f}  attack acc "
                     f"{_number(best['mia_accuracy'])}  {accuracy} drop {_number(best['accuracy_drop'], '+.3f')}")
    return lines


def _number(value: Any, spec: str = ".3f") -> str:
    return format(value, spec) if isinstance(value, (int, float)) else "–"
