"""Per-run state that a method computes ONCE, from the parent model, before its first optimiser step: SalUn's
saliency mask (Fan et al., ICLR 2024), SCRUB's frozen teacher (Kurmanji et al., NeurIPS 2023).

The hook (``MethodInfo.prepare_ref``, "module:function"):

    prepare(model, data: PrepareData, job, saved: dict[str, Tensor] | None) -> RunState

- a fresh run (``saved is None``): ``model`` holds the PARENT's weights (the loop calls it before any step), and
  the state is computed from them;
- a resumed run: ``model`` holds the resumed weights, which must not be used; ``saved`` is the
  :meth:`RunState.tensors` the first attempt saved in its train state (``train_state["prepared"]``), and the state
  is rebuilt from it alone. So a resumed run uses bit for bit the mask / teacher of the uninterrupted one, even
  where recomputing would differ (another device, a non-deterministic kernel).

The loop passes the state to every step (``StepData.state``) and calls :meth:`RunState.after_step` after each
optimiser step (SalUn puts the weights outside its mask back).

Example:
    >>> state = METHODS["salun"].prepare(parent, PrepareData(source, ids, device), job, None)
    >>> state.tensors().keys()      # what train_state.pt keeps for a resume
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from trainables.data.augment import normalize
from trainables.errors import UserError


class RunState:
    """What a prepare hook returns: the per-run state of a method (subclass it)."""

    def tensors(self) -> dict[str, Tensor]:
        """Everything a resumed run needs to rebuild this state exactly (saved in the train state)."""
        return {}

    def after_step(self, model: nn.Module) -> None:
        """Called after every optimiser step (e.g. to undo updates the method does not allow)."""


@dataclass(frozen=True)
class PrepareData:
    """The run's data for a prepare hook: the source, the planned id sets, and the device."""

    source: object                   # ImageSource
    ids: dict[str, np.ndarray]       # forget, retain, nonmember_ref, nonmember_eval
    device: torch.device
    batch_size: int = 128

    def clean_batches(self, split: str):
        """(normalised images (B, 3, S, S) on the device, labels (B,)) over ``split`` in id order, no
        augmentation: what a deterministic per-run statistic (a saliency) is computed on."""
        ids = np.asarray(self.ids[split], dtype=np.int64)
        for start in range(0, len(ids), self.batch_size):
            chunk = torch.from_numpy(ids[start:start + self.batch_size])
            images = normalize(self.source.images[chunk].to(self.device))
            yield images, torch.from_numpy(self.source.labels[chunk.numpy()]).long().to(self.device)


def saved_tensors(saved: dict[str, Tensor], prefix: str, method: str) -> dict[str, Tensor]:
    """The saved tensors under ``prefix`` ("mask." -> {name: tensor}); a UserError if a resume state lacks them."""
    out = {k[len(prefix):]: v for k, v in saved.items() if k.startswith(prefix)}
    if not out:
        raise UserError(f"{method}: the resume state holds no prepared state ({prefix}*); the run cannot resume "
                        f"exactly. Start it again under a new --out")
    return out
