"""The registry of step-based unlearning methods: which split an epoch walks, which other splits a step draws from,
and whether the model's training objective (hence its projection head / classifier) takes part.

``retrain`` is not here: it reruns the pretraining loop (``retrain.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from trainables.unlearning.baselines import (
    alignment_calibration_step,
    finetune_step,
    l1_sparse_step,
    neggrad_plus_step,
    random_labels_step,
)
from trainables.unlearning.penalty_methods import gp_step, memgp_step


@dataclass(frozen=True)
class StepMethod:
    name: str
    primary: str  # the split one epoch walks over: "forget" or "retain"
    step: Callable
    streams: Callable  # job -> other splits a step draws from
    uses_train_objective: Callable  # job -> bool: does any term call model(..., task="loss")?
    supervised_only: bool = False


def _penalty_streams(extra: tuple[str, ...]):
    return lambda job: extra + (("retain",) if job.a > 0 and job.train_term_source == "retain" else ())


STEP_METHODS: dict[str, StepMethod] = {
    m.name: m for m in [
        StepMethod("gp", "forget", gp_step, _penalty_streams(("nonmember_ref",)), lambda job: job.a > 0),
        StepMethod("memgp", "forget", memgp_step, _penalty_streams(()), lambda job: job.a > 0),
        StepMethod("finetune", "retain", finetune_step, lambda job: (), lambda job: True),
        StepMethod("neggrad_plus", "retain", neggrad_plus_step, lambda job: ("forget",), lambda job: True),
        StepMethod("random_labels", "forget", random_labels_step, lambda job: ("retain",), lambda job: True,
                   supervised_only=True),
        StepMethod("l1_sparse", "retain", l1_sparse_step, lambda job: (), lambda job: True),
        StepMethod("alignment_calibration", "forget", alignment_calibration_step, lambda job: ("retain",),
                   lambda job: True),
    ]
}
