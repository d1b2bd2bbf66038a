"""L_Norm of Eq. 2: the mean L2 norm of the model output, which lowers the output "confidence" of the data.

The paper computes it on the member data being forgotten. On a classifier the output is its logits (the default
``embed_output``): shrinking them flattens the softmax, which is how L_Norm lowers the top-1 confidence. Alone it collapses the model (Table IV, row 3); it is
meant as a small third term beside the training loss and the gradient penalty.

Example:
    >>> loss = output_norm(model, x_forget)     # x (B, 3, S, S) -> scalar
"""

from __future__ import annotations

from torch import Tensor, nn


def output_norm(model: nn.Module, x: Tensor) -> Tensor:
    """mean_i ||model(x)_i||_2 over the batch (the encoder output, ``task="embed"``)."""
    out = model(x, task="embed")
    return out.reshape(out.shape[0], -1).norm(2, dim=1).mean()
