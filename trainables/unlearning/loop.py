"""The epoch loop every step-based unlearning method runs (the shape of ``trainables/loops/pretrain.py``).

Per epoch: deterministic seeds (torch RNG, loader shuffle, per-split draws) from ``epoch_seed``, one optimiser step
per primary batch (ONE ``backward`` per step: the penalties use ``autograd.grad`` on the inputs, never
``backward(create_graph=True)``, which is what works under DDP), every loss component checked for NaN/Inf and
explosion before the step is applied, per-epoch means logged, then ``ctx.on_epoch_end`` (Ray reporting /
checkpointing). After the last epoch and before its ``on_epoch_end``: momentum targets synchronised and a kNN
monitor, so the last reported state is the final model.

A method with a prepare hook (SalUn, SCRUB; ``prepared.py``) gets its per-run state computed on the parent's
weights before the first step (or rebuilt from the train state on resume), passed to every step and saved with
every train state; a method with ``phases`` walks several splits per epoch in turn (one loader each).

Parameters that no term reaches (the projection head when only the encoder features are penalised) are frozen
for the run, so DDP never waits for gradients that cannot come.

Example:
    >>> model, history = step_loop(job, model, source, STEP_METHODS["memgp"], {"forget": ids}, LoopContext(),
    ...                            augment=pretrain_job.augment)
"""

from __future__ import annotations

import math
import time
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from torch import nn

from trainables.data.augment import ViewMaker
from trainables.data.loaders import ImageSubset, make_loader
from trainables.errors import UserError
from trainables.loops.context import (
    LoopContext,
    autocast,
    build_optimizer,
    check_finite,
    epoch_seed,
    place_model,
    set_loader_epoch,
)
from trainables.models.base import unwrap
from trainables.unlearning.prepared import PrepareData
from trainables.unlearning.registry import MethodInfo
from trainables.unlearning.step_data import StepData, StreamDrawer
from trainables.unlearning.sync_batchnorm import synced_batchnorm
from trainables.utility.measure import classifier_accuracy, encoder_utility

_STREAM_SEED_OFFSET = {"forget": 1, "retain": 2, "nonmember_ref": 3}


def balanced_batch_size(n: int, batch_size: int, world_size: int = 1) -> int:
    """The batch size that splits a rank's share of ``n`` samples into equal batches of at most ``batch_size``
    (so the last batch is never a lone sample, which BatchNorm in train mode rejects)."""
    per_rank = max(1, math.ceil(n / world_size))
    n_batches = math.ceil(per_rank / batch_size)
    return max(1, math.ceil(per_rank / n_batches))


@contextmanager
def unlearning_setup(model: nn.Module, *, embed_output: str | None, uses_head: bool):
    """Temporarily override what ``model(x)`` returns and freeze parameters outside the backbone that no term
    reaches; both are restored afterwards (neither is part of the saved weights)."""
    base = unwrap(model)
    saved_embed = base.embed_output
    frozen = []
    if embed_output is not None:
        base.embed_output = embed_output
    if not uses_head and base.embed_output == "features":
        for name, p in base.named_parameters():
            if p.requires_grad and not name.startswith("backbone."):
                p.requires_grad_(False)
                frozen.append(p)
    try:
        yield
    finally:
        base.embed_output = saved_embed
        for p in frozen:
            p.requires_grad_(True)


@torch.no_grad()
def sync_momentum_targets(model: nn.Module) -> None:
    """MoCo/BYOL: copy the online weights into the momentum target, which would otherwise still hold the forget
    set (it is saved with the checkpoint)."""
    base = unwrap(model)
    for online, target in (("backbone", "backbone_momentum"), ("projection_head", "projection_head_momentum")):
        if hasattr(base, target):
            for p_t, p_o in zip(getattr(base, target).parameters(), getattr(base, online).parameters(), strict=True):
                p_t.copy_(p_o)
            for b_t, b_o in zip(getattr(base, target).buffers(), getattr(base, online).buffers(), strict=True):
                b_t.copy_(b_o)


def final_metrics(model, source, ids: dict[str, np.ndarray], eval_cfg, device) -> dict[str, float]:
    """Utility after unlearning: kNN accuracy of nonmember_eval and of the forget set against the retain bank
    (plus test / forget accuracy for classifiers)."""
    base = unwrap(model)
    out: dict[str, float] = {}
    k, t = eval_cfg.knn_k, eval_cfg.knn_temperature
    out["knn_acc"] = encoder_utility(base, source, ids["retain"], ids["nonmember_eval"], k=k, temperature=t,
                                     linear_probe=False, device=device)["knn_acc"]
    out["forget_knn_acc"] = encoder_utility(base, source, ids["retain"], ids["forget"], k=k, temperature=t,
                                            linear_probe=False, device=device)["knn_acc"]
    if not base.is_contrastive:
        out["test_acc"] = classifier_accuracy(base, source, ids["nonmember_eval"], device=device)
        out["forget_acc"] = classifier_accuracy(base, source, ids["forget"], device=device)
    return out


class PhasedBatches:
    """One epoch's walk over several splits in turn: yields (split, batch); its length is the sum."""

    def __init__(self, loaders: list[tuple[str, Any]]):
        self.loaders = loaders

    def __len__(self) -> int:
        return sum(len(loader) for _, loader in self.loaders)

    def __iter__(self):
        for split, loader in self.loaders:
            for batch in loader:
                yield split, batch


def _loader_seed(seed: int, split: str, method: MethodInfo) -> int:
    return seed if split == method.primary else seed + 100 * _STREAM_SEED_OFFSET[split]


def step_loop(job, model: nn.Module, source, method: MethodInfo, ids: dict[str, np.ndarray],
              ctx: LoopContext | None = None, *, augment, eval_cfg=None) -> tuple[nn.Module, list[dict[str, Any]]]:
    """Run ``method`` for ``job.epochs`` on the splits in ``ids`` (only ``method.primary`` and the streams the
    method draws from are read; ``nonmember_eval`` only by the final monitor, if ``eval_cfg`` is given)."""
    ctx = ctx or LoopContext()
    device = ctx.device
    views = ViewMaker(augment, source.images.shape[-1])
    loaders = {}
    for split in method.walked_splits(job):
        batch_size = balanced_batch_size(len(ids[split]), job.batch_size, ctx.world_size)
        loaders[split] = ctx.prepare_loader(make_loader(
            ImageSubset(source, ids[split]), batch_size, shuffle=True, drop_last=False,
            seed=_loader_seed(job.runtime.seed, split, method), pin_memory=device.type == "cuda"))
    drawers = {split: StreamDrawer(source, ids[split]) for split in method.streams(job)}

    uses_head = method.uses_train_objective(job)
    sync_bn = synced_batchnorm(model, enabled=job.sync_batchnorm and ctx.world_size > 1, device_type=device.type)
    reaches_head = uses_head or (method.penalty and job.penalty_output != "embed")  # log p(y|x) reads the logits
    with unlearning_setup(model, embed_output=job.embed_output, uses_head=reaches_head), sync_bn:
        model = ctx.prepare_model(place_model(model, job.runtime, device))
        epochs = job.epochs
        total_steps = sum(max(sum(len(loaders[s]) for s in method.epoch_splits(job, e)), 1) for e in range(epochs))
        state = _prepare_state(method, model, source, ids, job, ctx)
        optimizer = build_optimizer(model.parameters(), job.optim)
        start_epoch, step, history = 0, 0, []
        if ctx.resume:
            optimizer.load_state_dict(ctx.resume["optimizer"])
            start_epoch, step = int(ctx.resume["epoch"]), int(ctx.resume["step"])
            history = list(ctx.resume.get("history", []))

        def train_state() -> dict[str, Any]:
            saved = {"epoch": epoch + 1, "step": step, "optimizer": optimizer.state_dict(),
                     "model_extra": unwrap(model).extra_state_tensors(), "history": history}
            return saved if state is None else {**saved, "prepared": state.tensors()}

        for epoch in range(start_epoch, epochs):
            t0 = time.perf_counter()
            torch.manual_seed(epoch_seed(job.runtime.seed, epoch, ctx.rank))
            splits = method.epoch_splits(job, epoch)
            for split in splits:
                set_loader_epoch(loaders[split], _loader_seed(job.runtime.seed, split, method), epoch)
            for split, drawer in drawers.items():
                drawer.reseed(epoch_seed(job.runtime.seed + _STREAM_SEED_OFFSET[split], epoch, ctx.rank))
            model.train(not job.eval_mode)
            sums: dict[str, float] = {}
            counts: dict[str, int] = {}  # per term: a lazy penalty (gp_every > 1) is there on some steps only
            count = 0
            walk = PhasedBatches([(split, loaders[split]) for split in splits])
            for split, (images, labels, sample_ids) in ctx.batches(walk, epoch=epoch, epochs=epochs,
                                                                   label=f"{job.method} "):
                data = StepData(images, labels, sample_ids, device, views, drawers, job.runtime.channels_last,
                                progress=step / max(total_steps, 1), seed=job.runtime.seed, step=step, split=split,
                                state=state)
                with autocast(job.runtime, device):
                    terms = method.step(model, data, job)
                values = {k: float(v.detach()) for k, v in terms.items()}
                for term in sorted(values, key=lambda k: k == "loss"):  # name the culprit before the total
                    check_finite(values[term], epoch=epoch + 1, term="total" if term == "loss" else term,
                                 limit=job.explode_limit)
                optimizer.zero_grad(set_to_none=True)
                terms["loss"].backward()
                optimizer.step()
                if state is not None:
                    state.after_step(model)
                step += 1
                if uses_head:
                    unwrap(model).momentum_step(step, total_steps)
                for term, value in values.items():
                    sums[term] = sums.get(term, 0.0) + value * len(images)
                    counts[term] = counts.get(term, 0) + len(images)
                count += len(images)
            elapsed = time.perf_counter() - t0
            metrics: dict[str, Any] = {"epoch": epoch + 1, **{k: v / counts[k] for k, v in sums.items()},
                                       "epoch_time_s": elapsed, "samples_per_s": count / max(elapsed, 1e-9)}
            if epoch + 1 == epochs:
                if job.sync_momentum_target:
                    sync_momentum_targets(model)
                if ctx.is_main and eval_cfg is not None and job.monitor:
                    metrics.update(final_metrics(model, source, ids, eval_cfg, device))
            ctx.end_epoch(epoch, epochs, metrics, history, train_state, label=f"{job.method} ")
    return unwrap(model), history


def _prepare_state(method: MethodInfo, model: nn.Module, source, ids: dict[str, np.ndarray], job, ctx: LoopContext):
    """The method's per-run state: from the model's (the parent's) weights on a fresh run, from the saved train
    state on a resume (never from the resumed weights); None for a method without a prepare hook."""
    prepare = method.prepare
    if prepare is None:
        return None
    saved = None
    if ctx.resume:
        saved = ctx.resume.get("prepared")
        if saved is None:
            raise UserError(f"{job.method}: the resume state holds no prepared state; the run cannot resume exactly. "
                            f"Start it again under a new --out")
    return prepare(unwrap(model), PrepareData(source, ids, ctx.device, job.batch_size), job, saved)
