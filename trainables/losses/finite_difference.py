"""The gradient penalty's parameter gradient by a finite difference of the model along the input gradient, instead
of the double backward (after Finlay & Oberman 2019, "Scaleable input gradient regularization for adversarial
robustness", arXiv 1905.11468, and Karakida et al., ICLR 2023, "Understanding gradient regularization in deep
learning: efficient finite-difference computation and implicit bias", arXiv 2210.02720).

Definitions (the same as :func:`~trainables.losses.input_gradient.input_gradient_norms`): for sample i the scalar
``f(x_i) = sum_j model(x_i)_j`` (``grad_outputs=ones`` sums the output dimensions, so a vector output is reduced
the same way as in the paper's Algorithms 1 and 2), ``g_i = d f / d x_i``, ``n_i = ||g_i||_2``, and the penalty
``P = reduce(n, form) = (1/B) sum_i phi(n_i)``.

Derivation. With ``u_i = g_i / n_i`` held fixed (detached), ``n_i = u_i . g_i``, so
``d n_i / d theta = d (u_i . grad_x f(x_i)) / d theta``: the parameter gradient of the directional derivative of
``f`` along ``u_i``. That directional derivative is a forward difference,
``u_i . grad_x f(x_i) = [f(x_i + h_i u_i) - f(x_i)] / h_i + O(h_i)``, and the parameter gradient passes through
it, so

    dP/dtheta = sum_i w_i * d n_i/dtheta ~= d/dtheta sum_i (w_i / h_i) [f(x_i + h_i u_i) - f(x_i)]

with the detached per-sample weights ``w_i = dP/dn_i = phi'(n_i) / B``, one per form:

- ``squared``  phi(n) = n^2        ->  w_i = 2 n_i / B
- ``wgan``     phi(n) = (n - 1)^2  ->  w_i = 2 (n_i - 1) / B
- ``linear``   phi(n) = n - 1      ->  w_i = 1 / B

(computed by autograd on :func:`reduce_penalty` itself, so the weights can never drift from the forms). Eq. 3
(``member_gradient_penalty``) applies this at the members ``x_i``; Eq. 2 (``gradient_penalty``) at the
interpolates ``z_i`` (``eps_i`` drawn before, fixed), so the derivation holds with ``x_i -> z_i``: neither
depends on theta. Cost: one forward and one input-only backward (for ``u_i``, no ``create_graph``), one more
forward (at ``x + h u``, or of ``u`` through the held network, below), and the ordinary backward; no second-order
graph, so any module with a first-order backward works (``SyncBatchNorm``, fused kernels).

ReLU gates are held. The perturbed forward multiplies every ``nn.ReLU`` by its on/off mask recorded at ``x``
(what the double backward does too: ReLU'' = 0; ``held_gates.py``). Without that, each unit whose pre-activation
changes sign between ``x`` and ``x + h u`` adds an O(1/h) term to the parameter gradient, and O(h) of them do so:
an O(1) error for every h (measured on the small CNN, float32: cosine to the exact gradient 0.34 at step 1e-3,
0.57 at 1e-1).

The limit, taken exactly where it can be. With the gates held, a forward that runs only convolutions, linear
layers, average pooling, residual sums and eval-mode BatchNorm (every model here in the penalty methods' default
``model_mode``) is affine in its input, so ``f(x + h u) - f(x) = h * L(u)`` for every h, where ``L`` is the
*bias-free* pass of ``u`` through the held network (weights only, BatchNorm as its scale). The estimator then
takes ``d/dtheta sum_i w_i L(u_i)`` (and checks ``L(u_i) = n_i``): no step, no cancellation, no backward through
the unperturbed graph, and equal to the double backward up to rounding. Any other layer that ran (GroupNorm,
BatchNorm in train mode, an unknown one), or a failed check, selects the plain forward difference with step h.

Per sample needs a per-sample forward: BatchNorm in eval mode (the penalty methods' default ``model_mode``),
GroupNorm, or no normalisation. With BatchNorm in train mode the perturbed batch moves the batch statistics of
every sample at once: the estimator drops some cross-sample terms of the exact (batch-coupled) gradient, and the
extra forward updates the running statistics once more.

Step ``h_i = step * max(||x_i||_2, 1)``: relative to the sample's own scale (a normalised 3x32x32 image has norm
~55), and per sample, so the estimate does not depend on the rest of the batch (2 DDP workers then equal 1 worker
with the same global batch). Default step 2e-4, chosen by measurement (``benchmarks/gp_step.py --sweep-step``;
small CNN on digits 32 px, float32, relative error of the parameter gradient against the exact one, steps
5e-5 / 1e-4 / 2e-4 / 5e-4 / 1e-3, difference taken with the step): BatchNorm eval 1.1 / 0.7 / 0.4 / 0.1 / 0.1 %
(cancellation only; the bias-free pass used there by default: ~1e-7), GroupNorm in train mode
0.2 / 0.5 / 0.9 / 2.4 / 4.7 % (its normalisation is curved: O(h) error), BatchNorm in train mode 1.5 / 1.7 / 2.5 / 5.4 / 10.6 %; cosine >= 0.9988 throughout.

The returned loss has the exact penalty's value (what the loop logs and checks) and the estimator's gradient.

Example:
    >>> penalty = finite_difference_penalty(model, x, "squared")      # x (B, 3, S, S)
    >>> penalty.loss.backward()          # ~= the double-backward gradient of member_gradient_penalty(...).loss
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from trainables.losses.held_gates import (
    dropped_parameters,
    frozen_gates,
    gated_linear,
    is_gated_linear,
    recorded_gates,
)
from trainables.losses.input_gradient import Penalty
from trainables.losses.penalty_forms import DEFAULT_FORM, reduce_penalty

DEFAULT_FD_STEP = 2e-4


def penalty_slopes(grad_norms: Tensor, form: str = DEFAULT_FORM) -> Tensor:
    """dP/dn_i of ``reduce_penalty(n, form)`` at ``grad_norms`` (B,) -> (B,), detached."""
    n = grad_norms.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        (slopes,) = torch.autograd.grad(reduce_penalty(n, form), n)
    return slopes


def _per_sample_sum(out: Tensor) -> Tensor:
    return out.reshape(out.shape[0], -1).sum(1)


def finite_difference_penalty(model: nn.Module, x: Tensor, form: str = DEFAULT_FORM, *,
                              step: float = DEFAULT_FD_STEP, task: str = "embed",
                              held_linear: bool | None = None,
                              output: Callable[[Tensor], Tensor] | None = None) -> Penalty:
    """x (B, ...) -> :class:`Penalty` whose loss has the penalty's value and the finite-difference gradient.

    ``held_linear``: take the difference as the bias-free pass of ``u`` (exact, no step); None = wherever the
    forward allows it (:func:`~trainables.losses.held_gates.is_gated_linear`), False = always ``f(x + h u) - f(x)``.
    ``output``: difference ``output(x)`` instead of ``model(x, task=task)`` (``penalty_outputs.py``); such outputs
    end in a curved function (log-softmax), so they always take the plain difference.
    """
    forward = output if output is not None else (lambda v: model(v, task=task))
    held_linear = False if output is not None else held_linear
    x = x.detach()
    x = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
    with torch.autocast(x.device.type, enabled=False):  # as the exact penalty: float32 input gradients
        leaf = x.clone().requires_grad_(True)
        with recorded_gates(model) as gates:
            f = _per_sample_sum(forward(leaf))
        linear = is_gated_linear(gates) if held_linear is None else held_linear
        (grad,) = torch.autograd.grad(f.sum(), leaf, retain_graph=not linear)  # first order only
        norms = grad.reshape(grad.shape[0], -1).norm(2, dim=1)
        shape = (-1,) + (1,) * (x.dim() - 1)
        u = grad / norms.clamp_min(torch.finfo(norms.dtype).tiny).view(shape)  # n_i = 0: u_i = 0, no gradient
        slopes = penalty_slopes(norms, form)
        if linear:
            with gated_linear(gates):
                along_u = _per_sample_sum(model(u, task=task))  # u_i . g_i = n_i, differentiable in theta
            if not torch.allclose(along_u.detach(), norms, rtol=1e-3, atol=1e-6 * float(norms.max()) + 1e-30):
                # a curved operation the module walk cannot see (a functional call): the plain difference
                return finite_difference_penalty(model, x, form, step=step, task=task, held_linear=False,
                                                 output=output)
            # a zero gradient for the dropped biases, as the double backward gives: DDP waits for every parameter
            surrogate = (slopes * along_u).sum() + 0.0 * sum(b.sum() for b in dropped_parameters(gates))
        else:
            h = step * x.reshape(x.shape[0], -1).norm(2, dim=1).clamp_min(1.0)
            with frozen_gates(gates):
                f_moved = _per_sample_sum(forward(x + h.view(shape) * u))
            surrogate = (slopes / h * (f_moved - f)).sum()
        value = reduce_penalty(norms.detach(), form)
        return Penalty(value + (surrogate - surrogate.detach()), norms.detach())
