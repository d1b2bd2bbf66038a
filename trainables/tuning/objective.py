"""What a search minimises and what it must not break: the objective of a trial and its accuracy-drop constraint.

Objectives (all minimised, all in [0, 1], so :data:`WORST` marks a diverged trial):

- ``mia_distance`` (default): ``|mia_accuracy - 0.5|``. An attack far *below* chance also separates members from
  non-members (unlearning evaluations agree, e.g. the NeurIPS 2023 unlearning challenge's metric), so the target is 0.5, not 0.
- ``mia_accuracy``: the primary attack's accuracy on the forget set vs non-members (the paper's stated goal).
- ``gap_to_retrain``: the mean absolute difference to the model retrained without the forget set, over
  ``mia_accuracy``, ``mia_auc`` and the accuracy metric (needs the retrained model's metrics).
- ``target_distance``: ``max(|mia_accuracy - 0.5|, |mia_accuracy - retrained mia_accuracy|)``, the larger of the
  two distances an unlearning target bounds ("within 0.05 of chance and of the retrained model"). A small forget set
  carries its own noise, shared by the validation protocol and the audit (on 50 CIFAR-10 samples a retrained model
  can score 0.45 or 0.39): there ``mia_distance`` alone aims at the wrong point (needs the retrained model).

Constraint: ``accuracy_drop = original - unlearned`` of the accuracy metric (``knn_acc`` for encoders, ``test_acc``
for classifiers by default) must be ``<= cap``. A trial is *feasible* when its objective is finite and the
constraint holds; the best trial of a search is the best feasible one (:func:`select_best`).

Example:
    >>> scoring = Scoring(objective="mia_distance", cap=0.10, accuracy="knn_acc")
    >>> scoring.score({"mia_accuracy": 0.56, "knn_acc": 0.31}, original={"knn_acc": 0.35})
    {'objective': 0.06..., 'accuracy_drop': 0.04..., 'constraint': -0.06..., 'feasible': True}
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from trainables.errors import UserError

OBJECTIVES: tuple[str, ...] = ("mia_distance", "mia_accuracy", "gap_to_retrain", "target_distance")
NEEDS_RETRAINED: tuple[str, ...] = ("gap_to_retrain", "target_distance")
ACCURACY_METRICS: dict[str, str] = {"knn": "knn_acc", "linear": "linear_acc", "test": "test_acc",
                                    "retain": "retain_acc"}
GAP_METRICS: tuple[str, ...] = ("mia_accuracy", "mia_auc")
WORST = 1.0  # every objective is in [0, 1]: a diverged trial reports this


@dataclass(frozen=True)
class Scoring:
    """The objective name, the accuracy-drop cap, and the accuracy metric the cap applies to."""

    objective: str = "mia_distance"
    cap: float = 0.10
    accuracy: str = "knn_acc"

    def __post_init__(self):
        if self.objective not in OBJECTIVES:
            raise UserError(f"unknown objective {self.objective!r}; choose one of: {', '.join(OBJECTIVES)}")
        if not (isinstance(self.cap, (int, float)) and 0 < self.cap < 1):
            raise UserError(f"--cap must be in (0, 1) (a fraction: 0.10 = 10 accuracy points), got {self.cap}")
        if self.accuracy not in ACCURACY_METRICS.values():
            raise UserError(f"unknown accuracy metric {self.accuracy!r}; choose one of: "
                            f"{', '.join(ACCURACY_METRICS)}")

    def objective_value(self, metrics: Mapping[str, float], reference: Mapping[str, float] | None = None) -> float:
        if self.objective == "mia_accuracy":
            return float(metrics["mia_accuracy"])
        if self.objective == "mia_distance":
            return abs(float(metrics["mia_accuracy"]) - 0.5)
        require_retrained(self.objective, reference)
        if self.objective == "target_distance":
            accuracy = float(metrics["mia_accuracy"])
            return max(abs(accuracy - 0.5), abs(accuracy - float(reference["mia_accuracy"])))
        keys = [k for k in (*GAP_METRICS, self.accuracy) if k in metrics and k in reference]
        return sum(abs(float(metrics[k]) - float(reference[k])) for k in keys) / len(keys)

    def score(self, metrics: Mapping[str, float], *, original: Mapping[str, float],
              reference: Mapping[str, float] | None = None) -> dict[str, Any]:
        """``objective``, ``accuracy_drop``, ``constraint`` (= drop - cap; feasible when <= 0), ``feasible``."""
        objective = self.objective_value(metrics, reference)
        drop = float(original[self.accuracy]) - float(metrics[self.accuracy])
        feasible = math.isfinite(objective) and math.isfinite(drop) and drop <= self.cap
        return {"objective": objective, "accuracy_drop": drop, "constraint": drop - self.cap,
                "feasible": bool(feasible)}

    def diverged(self) -> dict[str, Any]:
        """The score of a trial whose loss became NaN or exploded: worst objective, infeasible."""
        return {"objective": WORST, "accuracy_drop": float("nan"), "constraint": WORST, "feasible": False}


def require_retrained(objective: str, retrained: Any) -> None:
    """UserError when ``objective`` compares with the retrained model (:data:`NEEDS_RETRAINED`) and none is given."""
    if objective in NEEDS_RETRAINED and not retrained:
        raise UserError(f"objective {objective} needs the retrained model: pass --retrained DIR")


def resolve_accuracy(choice: str, is_contrastive: bool) -> str:
    """``auto`` -> kNN accuracy for encoders, test accuracy for classifiers; else the named metric, checked."""
    if choice == "auto":
        return "knn_acc" if is_contrastive else "test_acc"
    if choice not in ACCURACY_METRICS:
        raise UserError(f"unknown --accuracy {choice!r}; choose auto or one of: {', '.join(ACCURACY_METRICS)}")
    if is_contrastive and choice in ("test", "retain"):
        raise UserError(f"--accuracy {choice} needs a classifier; this checkpoint is an encoder (use knn or linear)")
    return ACCURACY_METRICS[choice]


def select_best(rows: Iterable[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The feasible row with the lowest finite ``objective`` (ties: the first), or None if no row is feasible.
    A row counts only with ``feasible`` true and ``status`` ok (absent means ok)."""
    best, best_value = None, math.inf
    for row in rows:
        objective = _number(row.get("objective"))
        if row.get("status") in (None, "ok") and _true(row.get("feasible")) and objective < best_value:
            best, best_value = row, objective
    return best


def _true(value: Any) -> bool:
    try:
        return bool(value)
    except TypeError:  # pandas NA
        return False


def _number(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return math.inf
    return number if math.isfinite(number) else math.inf
