"""Ray Train path (2 CPU workers, gloo) on the shared Ray instance: per-epoch reports, checkpoints, exact resume
after a killed driver and a lost worker. Two TorchTrainer runs plus one short partial run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import replace

import pytest
import torch

from orchestrator.config import dump_yaml
from orchestrator.fenced.ray_internals import UV_RUNTIME_ENV
from orchestrator.run.jobs import run_pretrain
from orchestrator.run.names import default_run_name, job_hash
from orchestrator.run.options import FaultInjection, RayOptions
from tests.conftest import REPO_ROOT, tiny_job
from trainables.checkpoint import load_checkpoint
from trainables.errors import UserError

pytestmark = [pytest.mark.ray, pytest.mark.slow]
EPOCHS = 4


def _job():
    """MoCo (momentum encoder + memory bank) with a cosine schedule: every kind of resume state. The GPU flags
    are on to check they are honoured on this path (bf16 autocast is CUDA-only, channels_last runs on CPU)."""
    return tiny_job("moco", optim={"epochs": EPOCHS, "batch_size": 32, "cosine_schedule": True},
                    runtime={"channels_last": True, "amp_bf16": True, "progress": False},
                    eval={"knn_every": 1, "linear_probe": False, "knn_k": 20})


def _options(tmp_path, **kw) -> RayOptions:
    return RayOptions(workers=2, storage=str(tmp_path / "runs"), keep_checkpoints=EPOCHS, **kw)


def _reports(run_dir) -> list[dict]:
    """The metrics Ray Train recorded with each checkpoint of the run (one per epoch here)."""
    from ray.train import Result

    frame = Result.from_path(str(run_dir)).metrics_dataframe
    return frame.sort_values("epoch").to_dict("records")


def _run_dir(tmp_path, job, out):
    return tmp_path / "runs" / default_run_name("pretrain", job_hash("pretrain", job, out))


def _assert_same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    different = [k for k in sa if not torch.equal(sa[k], sb[k])]
    assert not different, f"weights differ from the uninterrupted run: {different[:5]}"


@pytest.fixture(scope="module")
def uninterrupted(ray_session, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("uninterrupted")
    job, out = _job(), tmp / "ckpt"
    t0 = time.perf_counter()
    path, metrics = run_pretrain(job, out, workers=2, ray_options=_options(tmp))
    print(f"2-worker run: {time.perf_counter() - t0:.1f} s")
    return {"tmp": tmp, "job": job, "out": path, "metrics": metrics, "run_dir": _run_dir(tmp, job, out)}


def test_two_worker_pretraining_reports_every_epoch_and_exports_a_verified_checkpoint(uninterrupted):
    reports = _reports(uninterrupted["run_dir"])
    assert [r["epoch"] for r in reports] == list(range(1, EPOCHS + 1))
    assert all(r["resumed_from_epoch"] == 0 for r in reports)
    assert all(r["loss"] > 0 and 0 < r["knn_acc"] <= 1 for r in reports)
    ckpt = load_checkpoint(uninterrupted["out"])  # sha256-verified, our format
    assert ckpt.meta["kind"] == "pretrain" and ckpt.meta["distributed"]["workers"] == 2
    assert [h["epoch"] for h in ckpt.meta["history"]] == list(range(1, EPOCHS + 1))
    assert ckpt.meta["history"][-1]["loss"] == pytest.approx(reports[-1]["loss"])  # merged over ranks
    assert uninterrupted["metrics"]["knn_acc"] == pytest.approx(reports[-1]["knn_acc"])
    assert not (uninterrupted["out"] / "train_state.pt").exists()  # resume state stays in the run storage
    assert (uninterrupted["run_dir"] / f"epoch_{EPOCHS:04d}" / "train_state.pt").is_file()


def test_relaunch_after_a_killed_driver_and_a_lost_worker_both_resume_exactly(uninterrupted, ray_session, tmp_path):
    """Two faults in one run (one TorchTrainer start each, to keep the suite short):

    1. A driver subprocess joins the shared cluster; a worker stalls before epoch 2 (epoch 1 committed) and the
       driver is killed. Relaunching the same job (same default run name) resumes at epoch 2 instead of restarting.
    2. In the relaunch, rank 1 calls os._exit(1) before epoch 4 (epoch 3 committed); Ray restarts the worker group
       from that checkpoint.

    Every epoch is reported exactly once, by the attempt the schedule says, and the weights, the MoCo memory bank
    and the optimizer state equal the uninterrupted run's bit for bit (per-epoch seeds; same ranks and reduction
    order)."""
    job, out = _job(), tmp_path / "ckpt"
    config = tmp_path / "job.yaml"
    config.write_text(dump_yaml(job))
    run_dir = _run_dir(tmp_path, job, out)
    stalled = run_dir / "fault_injected_before_epoch_2"
    env = {**os.environ, "PYTHONPATH": REPO_ROOT, UV_RUNTIME_ENV: "0"}
    cmd = [sys.executable, "-m", "orchestrator", "pretrain", "--config", str(config), "--out", str(out),
           "--workers", "2", "--storage", str(tmp_path / "runs"), "--keep-checkpoints", str(EPOCHS),
           "--address", ray_session.get_runtime_context().gcs_address, "--inject-fault", "2:stall"]
    driver = subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while not stalled.exists() and driver.poll() is None and time.monotonic() < deadline:
            time.sleep(0.5)
        assert stalled.exists(), f"the driver never reached epoch 2: {driver.stderr.read().decode()[-3000:]}"
    finally:
        os.killpg(driver.pid, signal.SIGKILL)  # the driver and anything it started; Ray ends its job's actors
        driver.wait()
    assert not out.exists()

    path, _ = run_pretrain(job, out, workers=2, ray_options=_options(tmp_path, max_failures=1,
                                                                     inject_fault=FaultInjection(4, "exit")))
    assert (run_dir / "fault_injected_before_epoch_4").is_file()
    reports = _reports(run_dir)
    assert [(r["epoch"], r["resumed_from_epoch"]) for r in reports] == [(1, 0), (2, 1), (3, 1), (4, 3)]
    assert load_checkpoint(path).meta["distributed"]["resumed"] is True
    _assert_same_weights(load_checkpoint(path).model, load_checkpoint(uninterrupted["out"]).model)
    final = f"epoch_{EPOCHS:04d}"
    state = load_checkpoint(run_dir / final, with_train_state=True).train_state
    reference = load_checkpoint(uninterrupted["run_dir"] / final, with_train_state=True).train_state
    assert torch.equal(state["model_extra"]["memory_bank"], reference["model_extra"]["memory_bank"])
    for key, value in state["optimizer"]["state"].items():
        assert torch.equal(value["exp_avg"], reference["optimizer"]["state"][key]["exp_avg"])


def test_too_many_workers_for_the_local_cluster_is_a_user_error_and_writes_nothing(ray_session, tmp_path):
    with pytest.raises(UserError, match=r"3 worker\(s\) need 3 CPUs \(the cluster has 2\)"):
        run_pretrain(tiny_job(), tmp_path / "ckpt", workers=3, ray_options=replace(_options(tmp_path), workers=3))
    assert not (tmp_path / "ckpt").exists() and not (tmp_path / "runs").exists()
