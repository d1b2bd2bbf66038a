"""Which model output the gradient penalty differentiates (``UnlearnJob.penalty_output``).

The paper's Algorithms 1 and 2 penalise ``d sum_j D(x)_j / d x``, the gradient of the *summed* output. On an
encoder that output is the embedding; on a classifier it is the logits (``embed``, the default), and there the sum
is a poor target: softmax is unchanged when every logit moves by the same amount, so ``sum_j z_j`` can be flat in
``x`` while the predicted probabilities, which the confidence attack reads, are not. The label-aware outputs
penalise what the attack sees instead:

- ``embed``:          ``model(x)``, what ``embed_output`` selects (features / projection / logits), (B, D).
- ``label_logprob``:  ``log softmax(z(x))_{y}``, the log-probability of the sample's own label, (B, 1).
- ``sample_loss``:    the per-sample cross-entropy ``-log softmax(z(x))_{y}``, (B, 1). Its input gradient is the
  negative of ``label_logprob``'s, so every penalty form (a function of the gradient norm) takes the same value and
  parameter gradient: the two names are one penalty, kept because users think of it either way.

For Eq. 2 the penalty is taken at interpolates between a forget sample and a reference non-member; the label is the
forget sample's (the interpolate is a path away from it). Both label-aware outputs need a classifier.

Example:
    >>> output = penalised_output(model, "label_logprob", labels)      # labels (B,) on the model's device
    >>> penalty = member_gradient_penalty(model, x, "squared", output=output)
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

PENALTY_OUTPUTS: tuple[str, ...] = ("embed", "label_logprob", "sample_loss")
LABEL_OUTPUTS: tuple[str, ...] = ("label_logprob", "sample_loss")


def label_logprob(model: nn.Module, x: Tensor, labels: Tensor) -> Tensor:
    """log p(y_i | x_i) from the classifier's logits: x (B, ...), labels (B,) -> (B, 1)."""
    logits = model(x, task="head")
    logits = logits.float() if logits.dtype in (torch.float16, torch.bfloat16) else logits  # a stable log-softmax
    return F.log_softmax(logits, dim=1).gather(1, labels.long().view(-1, 1))


def penalised_output(model: nn.Module, output: str, labels: Tensor | None) -> Callable[[Tensor], Tensor] | None:
    """The function ``x -> (B, D)`` whose summed input gradient is penalised; None for ``embed`` (the penalties
    then call ``model(x)`` as before)."""
    if output == "embed":
        return None
    if output not in LABEL_OUTPUTS:
        raise ValueError(f"unknown penalty output {output!r}; choose one of: {', '.join(PENALTY_OUTPUTS)}")
    if labels is None:
        raise ValueError(f"penalty_output={output} needs the samples' labels")
    sign = 1.0 if output == "label_logprob" else -1.0
    return lambda x: sign * label_logprob(model, x, labels)
