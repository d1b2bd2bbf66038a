"""``sync_batchnorm=true``: BatchNorm layers become ``nn.SyncBatchNorm`` for the run under DDP, and plain
BatchNorm again afterwards (the saved model and its ``model_spec`` keep ``norm=batch``).

``SyncBatchNorm`` has no double backward, so a penalty method may use it only with
``gp_estimator=finite_difference`` (``UnlearnJob`` refuses the other combination). It synchronises batch
statistics only in train mode; in eval mode (the penalty methods' default ``model_mode``) it is plain BatchNorm on
running statistics. PyTorch's DDP refuses it on CPU ("SyncBatchNorm layers only work with GPU modules"), so it
needs an accelerator (``--gpu``) and is refused on CPU before any work. Parameters and buffers are shared
with the original layers, so the updates of the run land in them.

Example:
    >>> with synced_batchnorm(model, enabled=job.sync_batchnorm and ctx.world_size > 1):
    ...     model = ctx.prepare_model(model)
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn

from trainables.errors import UserError


@contextmanager
def synced_batchnorm(model: nn.Module, *, enabled: bool, device_type: str = "cpu") -> Iterator[nn.Module]:
    """Swap every BatchNorm child of ``model`` for a SyncBatchNorm sharing its parameters and buffers, inside the
    block; yields ``model`` (changed in place), and swaps the originals back on exit."""
    if not enabled:
        yield model
        return
    if device_type not in ("cuda", "xpu", "hpu"):
        raise UserError(f"sync_batchnorm needs an accelerator (PyTorch's DDP refuses SyncBatchNorm on "
                        f"{device_type}); run with --gpu or drop sync_batchnorm")
    originals = [(parent, name, child) for parent in model.modules() for name, child in parent.named_children()
                 if isinstance(child, nn.modules.batchnorm._BatchNorm) and not isinstance(child, nn.SyncBatchNorm)]
    for parent, name, child in originals:
        setattr(parent, name, nn.SyncBatchNorm.convert_sync_batchnorm(child))
    try:
        yield model
    finally:
        for parent, name, child in originals:
            setattr(parent, name, child)
