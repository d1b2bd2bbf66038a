"""Unlearning: the paper's gradient-penalty methods (``gp``, Eq. 2; ``memgp``, Eq. 3) and the baselines
(``retrain``, ``finetune``, ``neggrad_plus``, ``random_labels``, ``l1_sparse``, ``alignment_calibration``) behind
one interface, :func:`unlearn`. Ray-free; the Ray Train wrapper passes a ``LoopContext``. See docs/unlearning.md.

Names are imported lazily, so reading the config (e.g. for ``unlearn --help``) does not import torch.
"""

from importlib import import_module

_EXPORTS = {
    "METHODS": "registry", "UnlearnJob": "config", "check_compatible": "api", "unlearn": "api",
    "ForgetPlan": "plan", "plan_forget": "plan",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(f"trainables.unlearning.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
