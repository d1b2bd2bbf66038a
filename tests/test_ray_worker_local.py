"""The Ray Train worker function in Ray Train's local mode (``num_workers=0``: the function runs in this process,
no cluster, ~1 s): a user error inside a worker becomes a clean UserError and is not retried."""

from __future__ import annotations

from dataclasses import replace

import pytest

from orchestrator.run.driver import _fit, build_trainer
from orchestrator.run.names import USER_ERROR, claim_run, plan_run
from orchestrator.run.options import RayOptions
from orchestrator.run.storage import open_storage
from tests.conftest import tiny_job
from trainables.errors import UserError
from trainables.jobs.pretrain import pretrain_train_task

pytestmark = pytest.mark.ray


def test_a_diverged_loss_in_a_worker_is_a_user_error_that_later_attempts_do_not_retry(tmp_path):
    from orchestrator.run.worker import WorkerRun, train_fn_per_worker

    job, out = tiny_job(optim={"epochs": 2, "lr": 1e9}), tmp_path / "ckpt"
    plan = plan_run(open_storage(tmp_path / "runs"), "pretrain", job, out)
    claim_run(plan, job, out)
    task = pretrain_train_task(job)
    with pytest.raises(UserError, match="epoch 1: loss term 'train' became nan"):
        _fit(build_trainer(task, plan, RayOptions(workers=0, storage=str(tmp_path / "runs"))), plan)
    marker = tmp_path / "runs" / plan.name / USER_ERROR
    assert "became nan" in marker.read_text()

    def must_not_run(job):
        raise AssertionError("a retry after a user error set the job up again")

    run = WorkerRun(plan.storage, plan.name, checkpoint_every=1, cwd=str(tmp_path))
    with pytest.raises(UserError, match="became nan"):  # a restarted worker stops before any work
        train_fn_per_worker({"task": replace(task, setup=must_not_run), "run": run})
    claim_run(plan_run(plan.storage, "pretrain", job, out), job, out)  # a new launch starts clean
    assert not marker.exists()


def test_a_failed_multi_worker_run_reports_the_recorded_user_error_else_the_ray_error(tmp_path):
    from ray.train import WorkerGroupError

    job, out = tiny_job(), tmp_path / "ckpt"
    plan = plan_run(open_storage(tmp_path), "pretrain", job, out)
    claim_run(plan, job, out)

    class FailingTrainer:
        def fit(self):
            raise WorkerGroupError("rank 1: RayTaskError(UserError) ...", {})

    with pytest.raises(WorkerGroupError):  # no record: a genuine failure keeps Ray's error and traceback
        _fit(FailingTrainer(), plan)
    (tmp_path / plan.name / USER_ERROR).write_text("epoch 3: loss term 'gp' exploded")
    with pytest.raises(UserError, match="^epoch 3: loss term 'gp' exploded$"):
        _fit(FailingTrainer(), plan)
