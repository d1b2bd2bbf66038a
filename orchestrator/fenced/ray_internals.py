"""What this project relies on in Ray beyond its public API (checked with ray 2.50-2.60; contract test:
tests/test_fenced.py, which names the Ray source it reads).

- :data:`CHECKPOINT_MANAGER_SNAPSHOT`: the file in a Train run directory where the V2 controller records committed
  checkpoints (``ray.train.v2._internal.constants.CHECKPOINT_MANAGER_SNAPSHOT_FILENAME``). The fault-injection hook
  waits on it so that an injected crash happens only after the previous checkpoint is committed.
- :func:`optuna_trial` / :func:`optuna_trial_completed`: ``OptunaSearch._ot_trials`` (trial id -> Optuna trial)
  and ``OptunaSearch._completed_trials`` (set of ids), to hand a constraint value to Optuna before Ray tells the
  study (Ray passes none by itself).
- :func:`classic_tune_output`: ``RAY_AIR_NEW_OUTPUT=0`` (read by ``ray.tune.experimental.output``) selects the
  classic reporter, which honours a ``progress_reporter``.
- :func:`workers_use_this_interpreter`: ``RAY_ENABLE_UV_RUN_RUNTIME_ENV=0`` (``ray._private.ray_constants``) stops
  Ray from re-running the driver's ``uv run`` command line for its workers: they run this interpreter.
- :func:`quiet_user_error_tracebacks`: Ray Train V2 logs every exception of a training function, with its traceback,
  on the logger ``ray.train.v2._internal.util`` ("Error in training function:"), once per attempt. A bad input is
  reported once, by the driver, as one ``error:`` line: in a worker, records of that logger naming a
  :class:`~trainables.errors.UserError` are dropped (other errors keep their tracebacks).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

CHECKPOINT_MANAGER_SNAPSHOT = "checkpoint_manager_snapshot.json"
NEW_OUTPUT_ENV = "RAY_AIR_NEW_OUTPUT"
UV_RUNTIME_ENV = "RAY_ENABLE_UV_RUN_RUNTIME_ENV"
TRAIN_FN_ERROR_LOGGER = "ray.train.v2._internal.util"


def optuna_trial(searcher, trial_id: str) -> Any | None:
    """The Optuna trial behind a Tune trial of an ``OptunaSearch`` (None if it has none)."""
    return searcher._ot_trials.get(trial_id)


def optuna_trial_completed(searcher, trial_id: str) -> bool:
    """Whether the ``OptunaSearch`` already told Optuna this trial's result."""
    return trial_id in searcher._completed_trials


@contextmanager
def classic_tune_output() -> Iterator[None]:
    """Run a ``Tuner.fit`` with Ray Tune's classic console output (restores the variable afterwards)."""
    previous = os.environ.get(NEW_OUTPUT_ENV)
    os.environ[NEW_OUTPUT_ENV] = "0"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(NEW_OUTPUT_ENV, None)
        else:
            os.environ[NEW_OUTPUT_ENV] = previous


def workers_use_this_interpreter() -> None:
    """Call before ``ray.init``: workers run this interpreter (not a ``uv run`` re-launch of the driver)."""
    os.environ.setdefault(UV_RUNTIME_ENV, "0")


def _not_a_user_error(record: logging.LogRecord) -> bool:
    return "trainables.errors.UserError" not in record.getMessage()


def quiet_user_error_tracebacks() -> None:
    """Call in a Ray Train worker: Ray no longer logs the traceback of a ``UserError`` the training function raises
    (the driver prints its one-line message); any other exception is still logged in full."""
    logger = logging.getLogger(TRAIN_FN_ERROR_LOGGER)
    if _not_a_user_error not in logger.filters:
        logger.addFilter(_not_a_user_error)
