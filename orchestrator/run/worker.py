"""The function every Ray Train worker runs (``TorchTrainer(train_fn_per_worker, ...)``): a thin wrapper that
gives a Ray-free :class:`TrainTask` its :class:`LoopContext` (with ``orchestrator/run/driver.py`` the only module
that imports Ray).

Per worker: DDP through ``ray.train.torch.prepare_model``, a seeded :func:`shard_loader` (equal batches per rank),
the device from ``ray.train.torch.get_device()``, and after every epoch ``ray.train.report`` on every rank with
the metrics merged over ranks; rank 0 attaches a checkpoint in this project's format (weights, meta.json, split
manifest, ``train_state.pt`` with optimizer / scheduler / momentum-encoder / memory-bank state) every
``checkpoint_every`` epochs and after the last. After a restart (lost worker) or a relaunch (same run name and
storage), ``ray.train.get_checkpoint()`` restores weights and train state, and the loop continues with the next
epoch; per-epoch seeds make the continuation identical to an uninterrupted run.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ray.train
import ray.train.torch
import torch
import torch.distributed as dist

from orchestrator.fenced.ray_internals import CHECKPOINT_MANAGER_SNAPSHOT, quiet_user_error_tracebacks
from orchestrator.run.names import USER_ERROR
from orchestrator.run.options import FaultInjection
from orchestrator.run.storage import Storage
from orchestrator.run.streaming import StreamedLoader, StreamPlan
from trainables import console
from trainables.checkpoint import load_checkpoint, save_checkpoint
from trainables.data.distributed import shard_loader
from trainables.errors import UserError
from trainables.jobs.task import Setup, TrainTask
from trainables.loops.context import LoopContext
from trainables.loops.rank_metrics import merge_rank_metrics
from trainables.models.base import unwrap

_IMPORTED_AT = time.time()  # this module and its imports (torch, lightly, ...) done: start-up breakdown


@dataclass(frozen=True)
class WorkerRun:
    """What a worker needs to know about the run besides the task."""

    storage: Storage
    run_name: str
    checkpoint_every: int
    cwd: str                               # the driver's working directory (relative data paths)
    threads: int = 1                       # torch threads unless runtime.num_threads says otherwise
    inject_fault: FaultInjection | None = None
    console: dict[str, str] = field(default_factory=dict)  # the driver's -q / -v / progress settings
    stream: StreamPlan | None = None       # the training data comes from Ray Data (orchestrator/run/streaming.py)


def checkpoint_dir_name(epoch: int) -> str:
    return f"epoch_{epoch:04d}"


def process_started_at() -> float | None:
    """Wall-clock time this process was created (Linux ``/proc``), for the start-up breakdown; None elsewhere."""
    try:
        ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        boot = next(float(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime"))
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def train_fn_per_worker(config: dict[str, Any]) -> dict[str, Any] | None:
    started_at = time.time()
    task: TrainTask = config["task"]
    run: WorkerRun = config["run"]
    os.environ.update(run.console)  # workers of a joined cluster do not inherit the driver's environment
    # Ray Train logs every report at INFO through a root-level logger: keep the console to our per-epoch lines.
    logging.getLogger().setLevel(logging.WARNING)
    if not console.is_verbose():  # Ray Data logs every epoch's dataset ("execution finished") on its own logger
        logging.getLogger("ray.data").setLevel(logging.WARNING)
    quiet_user_error_tracebacks()  # a bad input is one `error:` line from the driver, not a traceback per attempt
    previous_error = run.storage.read_text(run.storage.join(run.run_name, USER_ERROR))
    if previous_error:  # deterministic (bad input, NaN): don't spend the restarts on it
        raise UserError(previous_error)
    if os.path.isdir(run.cwd):  # Ray moves workers into a scratch dir; relative paths in configs mean the driver's
        os.chdir(run.cwd)
    try:
        return _train(task, run, started_at)
    except UserError as exc:
        run.storage.write_text(run.storage.join(run.run_name, USER_ERROR), str(exc))
        raise


def _train(task: TrainTask, run: WorkerRun, started_at: float) -> dict[str, Any] | None:
    job = task.job
    torch.set_num_threads(job.runtime.num_threads or run.threads)
    context = ray.train.get_context()
    rank, world_size = context.get_world_rank(), context.get_world_size()

    setup = task.setup(job)
    resume = _restore(setup, ray.train.get_checkpoint())
    start_epoch = int(resume["epoch"]) if resume else 0
    reporter = EpochReporter(task, setup, run, rank, world_size, start_epoch)

    def prepare_model(model: torch.nn.Module) -> torch.nn.Module:
        reporter.model = unwrap(model)  # the module whose weights are checkpointed (DDP shares its parameters)
        return ray.train.torch.prepare_model(model, move_to_device=False,
                                             parallel_strategy_kwargs=task.ddp_kwargs or None)

    def prepare_loader(loader):
        sharded = shard_loader(loader, rank=rank, world_size=world_size, seed=job.runtime.seed)
        if run.stream is not None and run.stream.serves(loader):
            return StreamedLoader(sharded, run.stream, rank)
        return sharded

    ctx = LoopContext(
        device=ray.train.torch.get_device(), rank=rank, world_size=world_size, prepare_model=prepare_model,
        prepare_loader=prepare_loader,
        on_epoch_end=reporter, resume=resume, progress=job.runtime.progress, log=_log,
    )
    if rank == 0 and resume:
        ctx.log(f"resuming {task.kind} run {run.run_name} after epoch {start_epoch}/{task.epochs}")
    task.train(job, ctx, setup)
    if rank != 0:
        return None
    return {"resumed_from_epoch": start_epoch, "started_at": started_at, "reports": reporter.reported,
            "process_started_at": process_started_at(), "imported_at": _IMPORTED_AT}


def _log(message: str) -> None:
    # Not print(): Ray Train patches print in workers to log *and* print, which shows every line twice.
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


def _restore(setup: Setup, checkpoint: ray.train.Checkpoint | None) -> dict[str, Any] | None:
    """Load the latest reported checkpoint (sha256-verified) into the fresh model; return its train state."""
    if checkpoint is None:
        return None
    with checkpoint.as_directory() as path:
        restored = load_checkpoint(path, with_train_state=True)
    if not restored.train_state:
        raise UserError(f"checkpoint {checkpoint.path} has no train_state.pt; cannot resume from it")
    setup.model.load_state_dict(restored.model.state_dict())
    setup.model.load_extra_state_tensors(restored.train_state.get("model_extra", {}))
    return restored.train_state


class EpochReporter:
    """``LoopContext.on_epoch_end``: merge metrics over ranks, report on every rank, checkpoint on rank 0."""

    def __init__(self, task: TrainTask, setup: Setup, run: WorkerRun, rank: int, world_size: int, start_epoch: int):
        self.task, self.setup, self.run = task, setup, run
        self.rank, self.world_size, self.start_epoch = rank, world_size, start_epoch
        self.model: torch.nn.Module | None = None
        self.reported: list[tuple[int, float]] = []  # (epoch, wall-clock time of its report)

    def __call__(self, epoch: int, metrics: dict[str, Any], train_state_fn) -> None:
        # In place: the loop's history holds this dict, so checkpoints store the merged values too.
        metrics.update(merge_rank_metrics(_gather(metrics, self.world_size)))
        done = epoch + 1
        due = done % self.run.checkpoint_every == 0 or done == self.task.epochs
        with tempfile.TemporaryDirectory(prefix="unlearn-ckpt-") as tmp:
            checkpoint = None
            if self.rank == 0 and due:
                state = train_state_fn()
                path = save_checkpoint(Path(tmp) / "checkpoint", self.model, spec=self.setup.spec,
                                       meta=self.task.checkpoint_meta(self.setup, state["history"]),
                                       splits=self.setup.splits, train_state=state)
                checkpoint = ray.train.Checkpoint.from_directory(str(path))
            # resumed_from_epoch: which attempt trained this epoch (0: the first), for the reports only
            ray.train.report({**metrics, "resumed_from_epoch": self.start_epoch}, checkpoint=checkpoint,
                             checkpoint_dir_name=checkpoint_dir_name(done) if checkpoint else None)
        self.reported.append((done, time.time()))
        if self.run.inject_fault is not None:
            _maybe_inject_fault(self.run, done, due, self.rank, self.world_size)


def _gather(metrics: dict[str, Any], world_size: int) -> list[dict[str, Any]]:
    plain = {k: v for k, v in metrics.items() if isinstance(v, (int, float, str))}
    if world_size == 1 or not dist.is_initialized():
        return [plain]
    per_rank: list[Any] = [None] * world_size
    dist.all_gather_object(per_rank, plain)
    return per_rank


def _maybe_inject_fault(run: WorkerRun, done: int, committed: bool, rank: int, world_size: int) -> None:
    """See :class:`FaultInjection`. Waits until Ray has registered the checkpoint of epoch ``done`` (it does so
    asynchronously after ``report`` returns), so the restart point is known."""
    fault = run.inject_fault
    target = fault.rank if fault.rank is not None else world_size - 1
    if done + 1 != fault.epoch or rank != target:
        return
    storage = run.storage
    marker = storage.join(run.run_name, f"fault_injected_before_epoch_{fault.epoch}")
    if storage.exists(marker):
        return
    deadline = time.monotonic() + 120
    while committed and time.monotonic() < deadline:
        if checkpoint_dir_name(done) in (storage.read_text(storage.join(run.run_name, CHECKPOINT_MANAGER_SNAPSHOT)) or ""):
            break
        time.sleep(0.2)
    storage.write_text(marker, f"{fault.action} on rank {rank} before epoch {fault.epoch}\n")
    if fault.action == "exit":
        os._exit(1)
    while True:  # "stall": wait to be killed with the driver
        time.sleep(3600)
