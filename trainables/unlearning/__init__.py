"""Unlearning: the paper's gradient-penalty methods (``gp``, Eq. 2; ``memgp``, Eq. 3) and the baselines
(``retrain``, ``finetune``, ``neggrad_plus``, ``random_labels``, ``l1_sparse``, ``alignment_calibration``) behind
one interface, :func:`unlearn`. Ray-free; the Ray Train wrapper passes a ``LoopContext``. See docs/unlearning.md.
"""

from trainables.unlearning.api import check_compatible, unlearn
from trainables.unlearning.config import METHODS, UnlearnJob
from trainables.unlearning.plan import ForgetPlan, plan_forget

__all__ = ["METHODS", "ForgetPlan", "UnlearnJob", "check_compatible", "plan_forget", "unlearn"]
