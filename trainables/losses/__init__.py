"""Loss terms of gradient-penalty unlearning (Eq. 2 and Eq. 3 of "Machine Unlearning in Contrastive Learning").

- :func:`gradient_penalty` (Algorithm 1): penalty on interpolates between members and reference non-members.
- :func:`member_gradient_penalty` (Algorithm 2): the same penalty on the members themselves.
- :func:`output_norm`: mean L2 norm of the model output (L_Norm).
- :func:`reduce_penalty`: the three penalty forms the paper uses (``wgan``, ``squared``, ``linear``).
- ``output=``: which output is penalised (:mod:`trainables.losses.penalty_outputs`: the embedding / logits, or the
  label's log-probability on a classifier).
- ``estimator=``: ``exact`` (double backward) or ``finite_difference`` (:mod:`trainables.losses.finite_difference`).
"""

from trainables.losses.finite_difference import DEFAULT_FD_STEP, finite_difference_penalty
from trainables.losses.gradient_penalty import gradient_penalty
from trainables.losses.input_gradient import Penalty, input_gradient_norms
from trainables.losses.member_gradient_penalty import member_gradient_penalty
from trainables.losses.output_norm import output_norm
from trainables.losses.penalty_estimators import DEFAULT_ESTIMATOR, ESTIMATORS, input_gradient_penalty
from trainables.losses.penalty_forms import DEFAULT_FORM, FORMS, reduce_penalty
from trainables.losses.penalty_outputs import PENALTY_OUTPUTS, penalised_output

__all__ = ["DEFAULT_ESTIMATOR", "DEFAULT_FD_STEP", "DEFAULT_FORM", "ESTIMATORS", "FORMS", "PENALTY_OUTPUTS", "Penalty",
           "finite_difference_penalty", "gradient_penalty", "input_gradient_norms", "input_gradient_penalty",
           "member_gradient_penalty", "output_norm", "penalised_output", "reduce_penalty"]
