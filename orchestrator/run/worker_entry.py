"""The training function ``TorchTrainer`` is given: a light entry that imports the worker side only where it runs.

Ray Train V2's controller actor unpickles the training function and its ``train_loop_config`` before it spawns
the worker group. With ``orchestrator.run.worker.train_fn_per_worker`` and a config holding the task objects, the
controller imported torch, lightly and the whole task stack first, in series, and only then were the worker
processes started (measured with an import trace: the controller imported ``orchestrator.run.worker`` 28 s before
the worker did, on a loaded 2-core machine). Here the function lives in a module that imports nothing heavy, and
the config is one opaque ``bytes`` payload (cloudpickle), unpickled inside the worker.

Example:
    >>> TorchTrainer(train_fn, train_loop_config=pack({"task": task, "run": run}), ...)
"""

from __future__ import annotations

import pickle
from typing import Any

PAYLOAD = "payload"


def pack(config: dict[str, Any]) -> dict[str, bytes]:
    """The worker config as one pickled payload (the driver side; cloudpickle, as Ray itself uses)."""
    from ray import cloudpickle

    return {PAYLOAD: cloudpickle.dumps(config)}


def train_fn(config: dict[str, bytes]) -> dict[str, Any] | None:
    """Unpack the payload and run :func:`orchestrator.run.worker.train_fn_per_worker` (imported here, in the worker)."""
    from orchestrator.run.worker import train_fn_per_worker

    return train_fn_per_worker(pickle.loads(config[PAYLOAD]))
