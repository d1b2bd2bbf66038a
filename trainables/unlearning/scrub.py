"""SCRUB (Kurmanji et al., NeurIPS 2023, "Towards Unbounded Machine Unlearning"): the student (the model being
unlearned, initialised from the parent) is pulled away from a frozen copy of the parent (the teacher) on the forget
set and towards it on the retain set.

    d(x) = T^2 * KL( softmax(teacher(x) / T) || softmax(student(x) / T) )          (T = scrub_temperature)
    max step, on a forget batch:   minimise  -d(x)                                   (student leaves the teacher)
    min step, on a retain batch:   minimise  scrub_alpha * d(x) + scrub_gamma * CE(student(x), y)

Schedule (the reference code's): in each of the first ``scrub_msteps`` epochs a pass of max steps over the forget
set, then a pass of min steps over the retain set; later epochs are min passes only (``MethodInfo.phases``).
The teacher is in eval mode, the student in train mode, both see the same augmented view. With BatchNorm the two
differ from the first step (batch vs running statistics), so the first max step already has a gradient; a model
without BatchNorm starts at d = 0, a stationary point of the max step, and leaves it through the min steps.

The teacher is the parent's weights, taken once per run by the prepare hook (prepared.py) and kept in the train
state, so a resumed run distils from the parent, never from the resumed student. Classifiers only (the KL is on
class posteriors; docs/unlearning.md says what an encoder variant would need).
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from trainables.models.base import unwrap
from trainables.unlearning.prepared import PrepareData, RunState, saved_tensors
from trainables.unlearning.step_data import StepData

_PREFIX = "teacher."


def distill_kl(student_logits: Tensor, teacher_logits: Tensor, temperature: float) -> Tensor:
    """T^2 * mean_i KL(softmax(t_i / T) || softmax(s_i / T)) over a batch of logits (B, C)."""
    t = temperature
    return F.kl_div(F.log_softmax(student_logits / t, dim=1), F.log_softmax(teacher_logits / t, dim=1),
                    log_target=True, reduction="batchmean") * t * t


class Teacher(RunState):
    """A frozen, eval-mode copy of the parent."""

    def __init__(self, model: nn.Module, state: dict[str, Tensor] | None = None):
        self.module = copy.deepcopy(unwrap(model))
        if state is not None:
            self.module.load_state_dict(state)
        self.module.eval()
        self.module.requires_grad_(False)

    def tensors(self) -> dict[str, Tensor]:
        return {_PREFIX + k: v.detach().cpu().clone() for k, v in self.module.state_dict().items()}

    @torch.no_grad()
    def logits(self, x: Tensor) -> Tensor:
        return self.module(x, task="head")


def prepare(model: nn.Module, data: PrepareData, job, saved: dict[str, Tensor] | None) -> Teacher:
    """The prepare hook (prepared.py): the parent as teacher, or the teacher a resumed run saved."""
    return Teacher(model, None if saved is None else saved_tensors(saved, _PREFIX, "scrub"))


def scrub_step(model: nn.Module, data: StepData, job) -> dict[str, Tensor]:
    """A max step on a forget batch, a min step on a retain batch (``data.split``)."""
    x = data.augmented(data.images, 1)[0]
    student = model(x, task="head")
    divergence = distill_kl(student, data.state.logits(x), job.scrub_temperature)
    if data.split == "forget":
        return {"loss": -divergence, "forget_kl": divergence}
    ce = F.cross_entropy(student, data.labels.to(data.device))
    return {"loss": job.scrub_alpha * divergence + job.scrub_gamma * ce, "retain_kl": divergence, "retain_ce": ce}
