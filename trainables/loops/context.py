"""What a loop needs from whoever runs it: device, rank, wrappers, a per-epoch hook, and resume state.

The plain CLI passes the defaults; the Ray Train wrapper passes ``prepare_model`` / ``prepare_loader`` (DDP,
DistributedSampler) and an ``on_epoch_end`` that reports metrics and checkpoints. Loops never import Ray.
"""

from __future__ import annotations

import contextlib
import random
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn


def _identity(x):
    return x


EpochHook = Callable[[int, dict[str, Any], Callable[[], dict[str, Any]]], None]


@dataclass
class LoopContext:
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    rank: int = 0
    world_size: int = 1
    prepare_model: Callable[[nn.Module], nn.Module] = _identity
    prepare_loader: Callable[[Any], Any] = _identity
    # on_epoch_end(epoch, metrics, train_state_fn): train_state_fn() builds the resume state lazily.
    on_epoch_end: EpochHook | None = None
    resume: dict[str, Any] | None = None  # a train_state saved by a previous attempt
    progress: bool = True
    log: Callable[[str], None] = field(default=lambda msg: print(msg, file=sys.stderr, flush=True))
    display: Any = field(default=None, init=False, repr=False)  # the run's RunProgress, made by batches()

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def batches(self, loader, *, epoch: int, epochs: int, label: str = ""):
        """The loader of one epoch, driving the run's progress display (one per run, made at its first epoch)."""
        from trainables.loops.progress import RunProgress

        if self.display is None or self.display.epochs != epochs:
            self.display = RunProgress(label, epochs=epochs, steps_per_epoch=max(len(loader), 1), start_epoch=epoch,
                                       enabled=self.progress and self.is_main, log=self.log)
        return self.display.batches(loader, epoch)

    def end_epoch(self, epoch: int, epochs: int, metrics: dict[str, Any], history: list[dict[str, Any]],
                  train_state: Callable[[], dict[str, Any]], label: str = "") -> None:
        """Record an epoch's metrics, show them (main rank, within the progress budget), and hand them to the
        runner's hook."""
        history.append(metrics)
        if self.display is not None:
            self.display.end_epoch(epoch, metrics)
            if epoch + 1 >= epochs:
                self.display = None  # a next run with this context gets its own display
        if self.on_epoch_end is not None:
            self.on_epoch_end(epoch, metrics, train_state)


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        from trainables.errors import UserError

        raise UserError("runtime.device=cuda but no CUDA device is available; use auto or cpu")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def epoch_seed(seed: int, epoch: int, rank: int = 0) -> int:
    """The RNG seed of one epoch on one rank: a resumed run replays exactly the randomness it would have had."""
    return (seed * 1_000_003 + epoch * 7_919 + rank * 104_729) % (2**31)


def set_loader_epoch(loader, seed: int, epoch: int) -> None:
    """Reshuffle deterministically per epoch (DistributedSampler.set_epoch, or our own generator)."""
    sampler = getattr(loader, "sampler", None)
    if hasattr(sampler, "set_epoch"):
        sampler.set_epoch(epoch)
    gen = getattr(loader, "generator", None)
    if gen is not None:
        gen.manual_seed(epoch_seed(seed, epoch))


def build_optimizer(params, cfg) -> torch.optim.Optimizer:
    params = [p for p in params if p.requires_grad]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def build_scheduler(optimizer, cfg, steps: int):
    if not cfg.cosine_schedule:
        return None
    return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(steps, 1))


def autocast(runtime, device: torch.device):
    if runtime.amp_bf16 and device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def place_model(model: nn.Module, runtime, device: torch.device) -> nn.Module:
    model = model.to(device)
    if runtime.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


def check_finite(value: torch.Tensor | float, *, epoch: int, term: str, limit: float = 1e6) -> None:
    """Stop a run whose loss became NaN/Inf or exploded, naming the epoch and the term."""
    from trainables.errors import UserError

    v = float(value)
    if not np.isfinite(v):
        raise UserError(f"epoch {epoch}: loss term {term!r} became {v}; lower the learning rate or its weight")
    if abs(v) > limit:
        raise UserError(f"epoch {epoch}: loss term {term!r} exploded to {v:.3g} (> {limit:.0g}); lower the "
                        f"learning rate or its weight")
