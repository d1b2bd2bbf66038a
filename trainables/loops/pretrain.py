"""Pretraining loop for every method (MoCo, SimCLR, BYOL: two augmented views; supervised: one view + labels).

Plain PyTorch. Each epoch: deterministic reshuffle and augmentation seed, optimiser steps, momentum updates, then a
weighted-kNN monitor on held-out non-members (main rank). A linear probe runs after the last epoch.

Example:
    >>> model, history = pretrain(job, model, source, splits, LoopContext())
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from trainables.data.augment import ViewMaker
from trainables.data.loaders import ImageSubset, make_loader
from trainables.loops.context import (
    LoopContext,
    autocast,
    build_optimizer,
    build_scheduler,
    check_finite,
    epoch_seed,
    place_model,
    set_loader_epoch,
)
from trainables.models.base import unwrap
from trainables.utility.measure import encoder_utility


def monitor(model, source, train_ids, eval_ids, eval_cfg, device, *, linear: bool) -> dict[str, float]:
    """kNN (and optionally linear-probe) accuracy of held-out ``eval_ids`` against the training set."""
    return encoder_utility(unwrap(model), source, train_ids, eval_ids, k=eval_cfg.knn_k,
                           temperature=eval_cfg.knn_temperature, linear_probe=linear, device=device)


def pretrain(job, model, source, splits, ctx: LoopContext | None = None, *, train_ids: np.ndarray | None = None,
             eval_ids: np.ndarray | None = None) -> tuple[torch.nn.Module, list[dict[str, Any]]]:
    """Train ``model`` on ``train_ids`` (default: the members) for ``job.optim.epochs``; return it and the history."""
    ctx = ctx or LoopContext()
    device = ctx.device
    train_ids = splits["member"] if train_ids is None else train_ids
    eval_ids = splits["nonmember_eval"] if eval_ids is None else eval_ids
    n_views = 1 if job.method == "supervised" else 2
    views = ViewMaker(job.augment, source.images.shape[-1])
    dataset = ImageSubset(source, train_ids, transform=views.dataset_transform(n_views))
    batch_size = min(job.optim.batch_size, len(dataset))
    loader = make_loader(dataset, batch_size, shuffle=True, drop_last=True, seed=job.runtime.seed,
                         pin_memory=device.type == "cuda")
    loader = ctx.prepare_loader(loader)

    model = ctx.prepare_model(place_model(model, job.runtime, device))
    epochs = job.optim.epochs
    steps_per_epoch = max(len(loader), 1)
    optimizer = build_optimizer(model.parameters(), job.optim)
    scheduler = build_scheduler(optimizer, job.optim, epochs * steps_per_epoch)
    start_epoch, step, history = 0, 0, []
    if ctx.resume:
        optimizer.load_state_dict(ctx.resume["optimizer"])
        if scheduler is not None and ctx.resume.get("scheduler"):
            scheduler.load_state_dict(ctx.resume["scheduler"])
        start_epoch, step = int(ctx.resume["epoch"]), int(ctx.resume["step"])
        history = list(ctx.resume.get("history", []))

    def train_state() -> dict[str, Any]:
        return {"epoch": epoch + 1, "step": step, "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict() if scheduler is not None else {},
                "model_extra": unwrap(model).extra_state_tensors(), "history": history}

    for epoch in range(start_epoch, epochs):
        t0 = time.perf_counter()
        torch.manual_seed(epoch_seed(job.runtime.seed, epoch, ctx.rank))
        set_loader_epoch(loader, job.runtime.seed, epoch)
        model.train()
        total, count = 0.0, 0
        for images, labels, _ in ctx.batches(loader, epoch=epoch, epochs=epochs, label=f"{job.method} "):
            batch_views = views(images, device, n_views, non_blocking=True)
            if job.runtime.channels_last:
                batch_views = [v.contiguous(memory_format=torch.channels_last) for v in batch_views]
            with autocast(job.runtime, device):
                loss = model(batch_views, labels.to(device), task="loss")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            step += 1
            unwrap(model).momentum_step(step, epochs * steps_per_epoch)
            total += float(loss.detach()) * len(images if not isinstance(images, list) else images[0])
            count += len(images if not isinstance(images, list) else images[0])
        train_time = time.perf_counter() - t0
        metrics: dict[str, Any] = {"epoch": epoch + 1, "loss": total / max(count, 1), "epoch_time_s": train_time,
                                   "images_per_s": count * n_views / max(train_time, 1e-9)}
        check_finite(metrics["loss"], epoch=epoch + 1, term="train")
        last = epoch + 1 == epochs
        every = job.eval.knn_every
        if ctx.is_main and (last or (every and (epoch + 1) % every == 0)):
            metrics.update(monitor(model, source, train_ids, eval_ids, job.eval, device,
                                   linear=last and job.eval.linear_probe))
        ctx.end_epoch(epoch, epochs, metrics, history, train_state)
    return unwrap(model), history
