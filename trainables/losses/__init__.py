"""Loss terms of gradient-penalty unlearning (Eq. 2 and Eq. 3 of "Machine Unlearning in Contrastive Learning").

- :func:`gradient_penalty` (Algorithm 1): penalty on interpolates between members and reference non-members.
- :func:`member_gradient_penalty` (Algorithm 2): the same penalty on the members themselves.
- :func:`output_norm`: mean L2 norm of the model output (L_Norm).
- :func:`reduce_penalty`: the three penalty forms the paper uses (``wgan``, ``squared``, ``linear``).
"""

from trainables.losses.gradient_penalty import gradient_penalty
from trainables.losses.input_gradient import Penalty, input_gradient_norms
from trainables.losses.member_gradient_penalty import member_gradient_penalty
from trainables.losses.output_norm import output_norm
from trainables.losses.penalty_forms import DEFAULT_FORM, FORMS, reduce_penalty

__all__ = ["DEFAULT_FORM", "FORMS", "Penalty", "gradient_penalty", "input_gradient_norms", "member_gradient_penalty",
           "output_norm", "reduce_penalty"]
