"""Run names, run storage and the Ray CLI flags: everything decided before a TorchTrainer starts (no Ray here)."""

from __future__ import annotations

import json

import pytest

from orchestrator.cli import main
from orchestrator.run.names import RUN_RECORD, claim_run, default_run_name, job_hash, plan_run
from orchestrator.run.options import FaultInjection, RayOptions
from orchestrator.run.storage import open_storage
from tests.conftest import tiny_job
from trainables.errors import UserError


def test_default_run_name_is_a_hash_of_kind_config_and_out(tmp_path):
    job = tiny_job()
    digest = job_hash("pretrain", job, tmp_path / "a")
    assert digest == job_hash("pretrain", tiny_job(), tmp_path / "a")  # same job: same name, so it resumes
    assert digest != job_hash("pretrain", tiny_job(optim={"lr": 0.1}), tmp_path / "a")
    assert digest != job_hash("pretrain", job, tmp_path / "b")
    assert digest != job_hash("retrain", job, tmp_path / "a")
    with_parent = job_hash("pretrain", job, tmp_path / "a", {"parent": "sha-1"})
    assert with_parent != digest and with_parent != job_hash("pretrain", job, tmp_path / "a", {"parent": "sha-2"})
    assert default_run_name("pretrain", digest) == f"pretrain-{digest[:12]}"


def test_a_run_resumes_only_for_the_same_job(tmp_path):
    storage = open_storage(tmp_path / "runs")
    job, out = tiny_job(), tmp_path / "ckpt"
    plan = plan_run(storage, "pretrain", job, out)
    assert not plan.resuming and not (tmp_path / "runs").exists()  # planning writes nothing
    claim_run(plan, job, out)
    record = json.loads((tmp_path / "runs" / plan.name / RUN_RECORD).read_text())
    assert record["config_hash"] == plan.digest and record["status"] == "running"

    again = plan_run(storage, "pretrain", tiny_job(), out)
    assert again.resuming and again.name == plan.name
    # An explicit name reused by another job is refused, and the record is left alone.
    with pytest.raises(UserError, match=f"run '{plan.name}' .* belongs to a different job"):
        plan_run(storage, "pretrain", tiny_job(optim={"epochs": 5}), out, run_name=plan.name)
    assert json.loads((tmp_path / "runs" / plan.name / RUN_RECORD).read_text()) == record


def test_foreign_or_corrupt_run_directories_and_bad_names_are_refused(tmp_path):
    storage = open_storage(tmp_path)
    (tmp_path / "someone-elses" / "x").mkdir(parents=True)
    with pytest.raises(UserError, match="exists but was not made by `unlearn`"):
        plan_run(storage, "pretrain", tiny_job(), tmp_path / "o", run_name="someone-elses")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / RUN_RECORD).write_text("{not json")
    with pytest.raises(UserError, match="is corrupt"):
        plan_run(storage, "pretrain", tiny_job(), tmp_path / "o", run_name="broken")
    with pytest.raises(UserError, match="--run-name '../up'"):
        plan_run(storage, "pretrain", tiny_job(), tmp_path / "o", run_name="../up")


def test_storage_accepts_local_paths_and_fsspec_uris(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    local = open_storage("runs")
    assert local.uri == str(tmp_path / "runs") and local.ray_storage_kwargs() == {"storage_path": local.uri}
    memory = open_storage("memory://bucket/runs")  # not pyarrow-native: goes through fsspec
    assert memory.via_fsspec and memory.ray_storage_kwargs()["storage_filesystem"] is memory.fs
    plan = plan_run(memory, "pretrain", tiny_job(), tmp_path / "o")
    claim_run(plan, tiny_job(), tmp_path / "o")
    assert plan_run(memory, "pretrain", tiny_job(), tmp_path / "o").resuming
    with pytest.raises(UserError, match="unsupported storage URI"):
        open_storage("nosuchscheme://x")
    monkeypatch.setenv("UNLEARN_STORAGE", "memory://cluster-bucket/unlearn")  # the cluster default
    assert open_storage(None).uri == "memory://cluster-bucket/unlearn"
    monkeypatch.delenv("UNLEARN_STORAGE")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert open_storage(None).uri == str(tmp_path / "ray_results")


@pytest.mark.parametrize("kwargs, message", [
    ({"workers": -1}, "--workers must be 0"),
    ({"max_failures": -2}, "--max-failures must be -1"),
    ({"checkpoint_every": 0}, "--checkpoint-every must be at least 1"),
    ({"keep_checkpoints": 0}, "--keep-checkpoints must be at least 1"),
    ({"cpus_per_worker": 0}, "--cpus-per-worker must be positive"),
    ({"workers": 2, "inject_fault": FaultInjection(3, rank=2)}, "rank 2 is not one of the 2 workers"),
])
def test_bad_ray_options_are_user_errors(kwargs, message):
    with pytest.raises(UserError, match=message):
        RayOptions(**kwargs)


@pytest.mark.parametrize("flags, message", [
    (["--workers", "-1"], "--workers must be 0"),
    (["--workers", "2", "--inject-fault", "1"], "--inject-fault expects EPOCH"),
    (["--workers", "2", "--run-name", "a/b"], "--run-name 'a/b'"),
    (["--workers", "2", "--storage", "nosuchscheme://x"], "unsupported storage URI"),
    (["--workers", "2", "--gpu", "--set", "runtime.device=cpu"], "--gpu contradicts runtime.device=cpu"),
])
def test_cli_rejects_bad_ray_flags_before_writing_anything(tmp_path, capsys, flags, message):
    out = tmp_path / "ckpt"
    code = main(["pretrain", "--out", str(out), "--storage", str(tmp_path / "runs"), *flags])
    assert code == 2
    assert message in capsys.readouterr().err
    assert not out.exists() and not (tmp_path / "runs").exists()


def test_workers_0_trains_in_this_process_without_importing_ray(tmp_path):
    """The default path: the plain loop, no Ray import, no run storage."""
    import subprocess
    import sys

    from tests.conftest import REPO_ROOT

    out = tmp_path / "ckpt"
    script = (
        "import sys; from orchestrator.cli import main\n"
        f"code = main(['pretrain', '--out', {str(out)!r}, '--workers', '0', '--epochs', '1',"
        " '--set', 'data.image_size=16', '--set', 'data.num_members=100', '--set', 'data.num_nonmembers=100',"
        " '--set', 'model.width=8', '--set', 'optim.batch_size=50', '--set', 'eval.knn_k=10',"
        " '--set', 'eval.linear_probe=false', '--set', 'runtime.progress=false'])\n"
        "assert code == 0, code\n"
        "assert 'ray' not in sys.modules, 'the in-process path imported ray'\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    meta = json.loads((out / "meta.json").read_text())
    assert meta["kind"] == "pretrain" and "distributed" not in meta and len(meta["history"]) == 1
