"""Contract tests of the fence (orchestrator/fenced/): each fails with a message naming what an installed library
changed, so an upgrade that breaks a private assumption fails here first, not in a scheduled run."""

from __future__ import annotations

import importlib
import inspect
import os

import pytest

from orchestrator.fenced import ray_internals as fence

UPGRADE = "the installed Ray changed a private detail orchestrator/fenced/ray_internals.py relies on: "


def test_train_v2_checkpoint_snapshot_file_name():
    constants = importlib.import_module("ray.train.v2._internal.constants")
    assert getattr(constants, "CHECKPOINT_MANAGER_SNAPSHOT_FILENAME", None) == fence.CHECKPOINT_MANAGER_SNAPSHOT, (
        UPGRADE + "ray.train.v2._internal.constants.CHECKPOINT_MANAGER_SNAPSHOT_FILENAME")


def test_optuna_search_keeps_its_trials_where_the_fence_reads_them():
    from ray.tune.search.optuna import OptunaSearch

    searcher = OptunaSearch(space={"x": __import__("ray").tune.uniform(0, 1)}, metric="y", mode="min", seed=0)
    assert isinstance(getattr(searcher, "_ot_trials", None), dict), UPGRADE + "OptunaSearch._ot_trials"
    assert isinstance(getattr(searcher, "_completed_trials", None), set), UPGRADE + "OptunaSearch._completed_trials"
    searcher.suggest("t1")
    assert fence.optuna_trial(searcher, "t1") is not None and not fence.optuna_trial_completed(searcher, "t1")
    searcher.on_trial_complete("t1", {"y": 1.0})
    assert fence.optuna_trial_completed(searcher, "t1"), UPGRADE + "on_trial_complete no longer records the id"


def test_classic_output_variable_is_still_read_by_tune():
    output = importlib.import_module("ray.tune.experimental.output")
    assert fence.NEW_OUTPUT_ENV in inspect.getsource(output), UPGRADE + f"{fence.NEW_OUTPUT_ENV} is no longer read"
    before = os.environ.get(fence.NEW_OUTPUT_ENV)
    with fence.classic_tune_output():
        assert os.environ[fence.NEW_OUTPUT_ENV] == "0"
    assert os.environ.get(fence.NEW_OUTPUT_ENV) == before


def test_uv_runtime_env_switch_is_still_a_ray_constant():
    constants = importlib.import_module("ray._private.ray_constants")
    assert hasattr(constants, fence.UV_RUNTIME_ENV), UPGRADE + f"ray._private.ray_constants.{fence.UV_RUNTIME_ENV}"
    assert fence.UV_RUNTIME_ENV in inspect.getsource(constants)


def test_train_function_errors_are_still_logged_where_the_fence_filters_them():
    util = importlib.import_module(fence.TRAIN_FN_ERROR_LOGGER)
    source = inspect.getsource(util)
    assert "Error in training function" in source and "logging.getLogger(__name__)" in source, (
        UPGRADE + f"{fence.TRAIN_FN_ERROR_LOGGER} no longer logs the training function's exceptions")
    import logging

    from trainables.errors import UserError

    fence.quiet_user_error_tracebacks()
    fence.quiet_user_error_tracebacks()  # idempotent: one filter
    logger = logging.getLogger(fence.TRAIN_FN_ERROR_LOGGER)
    assert len([f for f in logger.filters if f is fence._not_a_user_error]) == 1

    def record(exc: BaseException) -> logging.LogRecord:
        try:
            raise exc
        except BaseException:  # noqa: BLE001
            import traceback

            return logger.makeRecord(logger.name, logging.ERROR, __file__, 0,
                                     f"Error in training function:\n{traceback.format_exc()}", (), None)

    assert not logger.filter(record(UserError("bad image")))  # the driver prints it once, as `error:`
    assert logger.filter(record(ValueError("a bug")))  # kept, with its traceback


def test_nothing_outside_the_fence_touches_these_private_names():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    needles = ("_ot_trials", "_completed_trials", "checkpoint_manager_snapshot", "RAY_AIR_NEW_OUTPUT",
               "RAY_ENABLE_UV_RUN_RUNTIME_ENV", "._internal")
    offenders = [f"{p.relative_to(root)}: {n}" for folder in ("orchestrator", "trainables", "benchmarks")
                 for p in (root / folder).rglob("*.py") if "fenced" not in p.parts
                 for n in needles if n in p.read_text()]
    assert not offenders, "private Ray surface outside orchestrator/fenced/: " + ", ".join(offenders)


@pytest.mark.parametrize("name", ["optuna_trial", "optuna_trial_completed", "classic_tune_output",
                                  "workers_use_this_interpreter", "quiet_user_error_tracebacks"])
def test_fence_functions_are_documented(name):
    assert name in fence.__doc__
