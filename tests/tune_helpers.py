"""Shared by the tune tests: a tiny pretrained digits checkpoint on disk and small search-space files."""

from __future__ import annotations

from pathlib import Path

import torch
import yaml

from tests.conftest import tiny_job
from trainables.checkpoint import save_checkpoint
from trainables.jobs.common import checkpoint_meta
from trainables.jobs.pretrain import pretrain_task
from trainables.loops.context import LoopContext


def tiny_checkpoint(path: Path, method: str = "simclr", epochs: int = 3) -> Path:
    """A tiny encoder (or classifier) pretrained on 200 digits (16 px, width-8 CNN) saved at ``path``."""
    torch.set_num_threads(1)
    job = tiny_job(method, optim={"epochs": epochs}, eval={"knn_every": 0})
    model, history, spec, _, splits = pretrain_task(job, LoopContext(progress=False, log=lambda m: None))
    return save_checkpoint(path, model, spec=spec, meta=checkpoint_meta(job, "pretrain", history), splits=splits)


def write_space(path: Path, params: dict, *, method: str = "memgp", fixed: dict | None = None,
                start: list | None = None) -> Path:
    data = {"description": "test space", "method": method, "fixed": fixed or {}, "params": params}
    if start is not None:
        data["start"] = start
    path.write_text(yaml.safe_dump(data))
    return path
