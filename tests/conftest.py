"""Shared fixtures. One Ray instance per test session (``ray_session``); tiny data everywhere."""

from __future__ import annotations

import os

import pytest

from orchestrator.fenced.ray_internals import workers_use_this_interpreter

os.environ.setdefault("RAY_DEDUP_LOGS", "0")
workers_use_this_interpreter()
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="session", autouse=True)
def results_store_outside_the_repository(tmp_path_factory):
    """Commands append rows to $UNLEARN_RESULTS, else ./results: tests that name no store never write into the
    repository. A fixture, not an import-time default: helpers import this module again as ``tests.conftest``, and
    that second import must not undo a test's ``monkeypatch.delenv``."""
    if "UNLEARN_RESULTS" not in os.environ:
        os.environ["UNLEARN_RESULTS"] = str(tmp_path_factory.mktemp("unlearn-test-results"))


@pytest.fixture(scope="session")
def ray_session():
    """A local Ray instance with 2 CPUs, shared by every test that needs Ray."""
    import ray

    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
                 runtime_env={"env_vars": {"PYTHONPATH": REPO_ROOT}})
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def digits_source():
    from trainables.data import load_source

    return load_source("digits", image_size=16)


def tiny_job(method: str = "simclr", **sections):
    """A pretraining job small enough for a unit test (digits at 16 px, a 8-channel CNN)."""
    from trainables.config import PretrainJob

    base = {
        "method": method,
        "data": {"dataset": "digits", "image_size": 16, "num_members": 200, "num_nonmembers": 200},
        "model": {"backbone": "small_cnn", "width": 8, "proj_dim": 32, "memory_bank_size": 256},
        "optim": {"epochs": 3, "batch_size": 64, "lr": 3e-3},
        "augment": {"strength": 0.3},
        "eval": {"knn_k": 20, "linear_probe": False},
        "runtime": {"progress": False},
    }
    for key, value in sections.items():
        base[key] = {**base.get(key, {}), **value} if isinstance(value, dict) else value
    return PretrainJob.model_validate(base)
