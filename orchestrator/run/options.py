"""How a job runs on Ray Train (workers, GPUs, storage, run name, fault tolerance) and the CLI flags that set it,
shared by every command that trains (pretrain, forget, retrain, and the tune / schedule drivers).

Example:
    >>> add_ray_args(parser)                    # in a command's register()
    >>> options = ray_options_from_args(args)   # in its run(); a UserError names the bad flag
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from typing import Literal

from trainables.errors import UserError


@dataclass(frozen=True)
class FaultInjection:
    """Testing fault tolerance: right before epoch ``epoch`` (1-based), once the checkpoint of the epoch before it
    is committed, one worker (``rank``, default the last) either exits (``os._exit(1)``, a lost worker) or stalls
    (so the driver can be killed at a known point). Only on the first attempt: a marker file in the run directory
    stops it from happening again."""

    epoch: int
    action: Literal["exit", "stall"] = "exit"
    rank: int | None = None

    @classmethod
    def parse(cls, text: str) -> FaultInjection:
        epoch, _, action = text.partition(":")
        if not epoch.isdigit() or int(epoch) < 2 or action not in ("", "exit", "stall"):
            raise UserError(f"--inject-fault expects EPOCH[:exit|stall] with EPOCH >= 2, got {text!r}")
        return cls(int(epoch), action or "exit")  # type: ignore[arg-type]


@dataclass(frozen=True)
class RayOptions:
    workers: int = 0                 # 0: the plain loop in this process, no Ray
    use_gpu: bool = False            # one GPU per worker
    cpus_per_worker: float = 1.0
    storage: str | None = None       # local dir or pyarrow/fsspec URI (default $UNLEARN_STORAGE, ~/ray_results)
    run_name: str | None = None      # default: <kind>-<hash of job config + --out>
    run_key: str | None = None       # stands in for --out in that hash (the scheduler's final candidate path: it
                                     # exports to a per-lease-generation staging directory, same run either way)
    max_failures: int = 3            # worker-group restarts from the latest checkpoint (-1: unlimited)
    checkpoint_every: int = 1        # epochs between checkpoints (the last epoch always checkpoints)
    keep_checkpoints: int = 2        # CheckpointConfig(num_to_keep)
    address: str | None = None       # join this cluster ("auto", "ray://host:10001"); default RAY_ADDRESS or local
    inject_fault: FaultInjection | None = field(default=None)

    def __post_init__(self):
        checks = [
            (self.workers >= 0, f"--workers must be 0 (in this process) or more, got {self.workers}"),
            (self.cpus_per_worker > 0, f"--cpus-per-worker must be positive, got {self.cpus_per_worker}"),
            (self.max_failures >= -1, f"--max-failures must be -1 (unlimited) or more, got {self.max_failures}"),
            (self.checkpoint_every >= 1, f"--checkpoint-every must be at least 1, got {self.checkpoint_every}"),
            (self.keep_checkpoints >= 1, f"--keep-checkpoints must be at least 1, got {self.keep_checkpoints}"),
        ]
        for ok, message in checks:
            if not ok:
                raise UserError(message)
        if self.inject_fault and self.inject_fault.rank is not None and not 0 <= self.inject_fault.rank < self.workers:
            raise UserError(f"fault injection rank {self.inject_fault.rank} is not one of the {self.workers} workers")


def add_ray_args(p: argparse.ArgumentParser) -> None:
    """The Ray Train flags of every training command (see docs/distributed.md)."""
    g = p.add_argument_group("Ray Train (see docs/distributed.md)")
    g.add_argument("--workers", type=int, default=0, metavar="N", help="Ray Train workers; 0 (default): run in this process")
    g.add_argument("--gpu", action="store_true", help="one GPU per Ray Train worker")
    g.add_argument("--cpus-per-worker", type=float, default=1.0, metavar="N", help="CPUs reserved per worker")
    g.add_argument("--storage", metavar="PATH|URI", help="where runs and checkpoints live: a directory or "
                   "s3://, gs://, ... (shared by all nodes of a cluster; default $UNLEARN_STORAGE, else ~/ray_results)")
    g.add_argument("--run-name", metavar="NAME", help="the run to create or resume (default: derived from a hash "
                   "of the config and --out, so relaunching the same command resumes)")
    g.add_argument("--max-failures", type=int, default=3, metavar="K",
                   help="restart lost workers from the latest checkpoint up to K times (-1: no limit)")
    g.add_argument("--checkpoint-every", type=int, default=1, metavar="E", help="checkpoint every E epochs")
    g.add_argument("--keep-checkpoints", type=int, default=2, metavar="N", help="checkpoints kept per run")
    g.add_argument("--address", metavar="ADDR", help="join an existing Ray cluster (auto, ray://host:10001); "
                   "default: $RAY_ADDRESS, else start a local one")
    g.add_argument("--inject-fault", metavar="EPOCH[:exit|stall]", help=argparse.SUPPRESS)


def ray_options_from_args(args: argparse.Namespace) -> RayOptions:
    fault = FaultInjection.parse(args.inject_fault) if args.inject_fault else None
    options = RayOptions(workers=args.workers, use_gpu=args.gpu, cpus_per_worker=args.cpus_per_worker,
                         storage=args.storage, run_name=args.run_name, max_failures=args.max_failures,
                         checkpoint_every=args.checkpoint_every, keep_checkpoints=args.keep_checkpoints,
                         address=args.address, inject_fault=fault)
    if options.workers == 0:
        ignored = [flag for flag, value in (("--gpu", args.gpu), ("--storage", args.storage),
                                            ("--run-name", args.run_name), ("--address", args.address),
                                            ("--inject-fault", args.inject_fault)) if value]
        if ignored:
            print(f"note: {', '.join(ignored)} only apply with --workers N (N > 0); running in this process",
                  file=sys.stderr)
    return options
