"""Verify-before-promote: the pass/fail rule for an unlearned candidate, separate from how metrics are measured.

A candidate passes when all of these hold (each failure is named in ``reason``):

1. **forgotten**: the membership-inference score on this batch's ids (forget set vs held-out non-members) is within
   ``attack_tolerance`` of chance (0.5), or of a retrained reference model's score when ``reference`` is set;
2. **utility**: the accuracy drop from the parent is at most ``max_accuracy_drop``;
3. **no relearning**: the same attack on every id forgotten by *earlier* batches is still within tolerance.

Small batches give noisy attack scores (a 10-sample forget set has a standard error near 0.1 in accuracy): pick the
tolerance for the batch sizes you run, or set ``min_batch`` in the schedule. See docs/ledger.md.

    result = judge({"forget_attack": 0.52, "accuracy_parent": 0.80, "accuracy_candidate": 0.78}, VerifyConfig())
    result.passed, result.reason
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from pydantic import Field

from trainables.config import StrictModel

CHANCE = 0.5


class VerifyConfig(StrictModel):
    """The verification thresholds (``unlearn schedule run --attack-tolerance ... --max-accuracy-drop ...``)."""

    attack_metric: Literal["accuracy", "auc"] = Field("accuracy", description="primary attack's metric to judge")
    attack_tolerance: float = Field(0.1, gt=0, le=0.5, description="max |attack score - target|")
    reference: str | None = Field(None, description="retrained reference checkpoint: its score becomes the target")
    max_accuracy_drop: float = Field(0.05, ge=0, le=1, description="max utility drop from the parent")
    check_earlier: bool = Field(True, description="re-attack ids forgotten by earlier batches (relearning)")
    attack: dict = Field(default_factory=lambda: {"bootstrap": 0},
                         description="AttackConfig fields for the evaluation, e.g. {n_views: 6, max_fit: 500}")


@dataclass
class VerificationResult:
    passed: bool
    metrics: dict[str, float] = field(default_factory=dict)
    reason: str = ""


def judge(metrics: dict[str, float], cfg: VerifyConfig) -> VerificationResult:
    """Apply the rule to measured metrics.

    Keys: ``forget_attack`` (required), ``reference_attack`` (the target when a reference is configured),
    ``earlier_attack`` (absent when there are no earlier ids), ``accuracy_parent`` / ``accuracy_candidate``.
    """
    failures = []
    target = metrics.get("reference_attack", CHANCE) if cfg.reference else CHANCE
    what = "the retrained reference" if cfg.reference else "chance"
    tol = cfg.attack_tolerance
    gap = abs(metrics["forget_attack"] - target)
    if gap > tol:
        failures.append(f"forget-set attack {cfg.attack_metric} {metrics['forget_attack']:.3f} is {gap:.3f} from "
                        f"{what} ({target:.3f}); tolerance {tol}")
    if "accuracy_parent" in metrics and "accuracy_candidate" in metrics:
        drop = metrics["accuracy_parent"] - metrics["accuracy_candidate"]
        if drop > cfg.max_accuracy_drop:
            failures.append(f"accuracy dropped {drop:.3f} ({metrics['accuracy_parent']:.3f} -> "
                            f"{metrics['accuracy_candidate']:.3f}); cap {cfg.max_accuracy_drop}")
    if cfg.check_earlier and "earlier_attack" in metrics:
        gap = abs(metrics["earlier_attack"] - CHANCE)
        if gap > tol:
            failures.append(f"earlier batches relearned: attack {cfg.attack_metric} on previously forgotten ids "
                            f"{metrics['earlier_attack']:.3f} is {gap:.3f} from chance; tolerance {tol}")
    return VerificationResult(not failures, dict(metrics), "; ".join(failures))
