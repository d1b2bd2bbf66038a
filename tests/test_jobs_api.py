"""A real local Ray cluster (`ray start --head --block` on free ports, its own temp dir), a tiny unlearning job
submitted through the Jobs API (`JobSubmissionClient`, the working directory packaged as `ray job submit
--working-dir .` does), its Parquet row checked, and the cluster stopped by terminating that one process.

Isolation from everything else on the machine: no `ray stop`, no RAY_ADDRESS in this process, every port chosen
free, and the cluster's address file (`ray_current_cluster`) lives in its own temp dir, so the session's
`ray_session` instance and other sessions' clusters never see this one.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from orchestrator.fenced.ray_internals import UV_RUNTIME_ENV
from orchestrator.results import store as results
from orchestrator.run.jobs import run_pretrain
from tests.conftest import REPO_ROOT, tiny_job
from trainables.unlearning.registry import DEFAULT_METHODS

# gitignore syntax, relative to the working dir (Ray also honours the repository's .gitignore files)
EXCLUDES = [".venv", ".git", "/runs/", "/demo_runs/", "__pycache__", ".pytest_cache", ".ruff_cache", "*.egg-info",
            "/data/", "*.npz", "*.pt", "/build/", "/dist/"]


def free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


@contextmanager
def local_ray_cluster(num_cpus: int = 2, start_timeout_s: float = 90.0):
    """Yield ``(dashboard URL, HTTP headers)`` of a fresh head node; terminate it (and only it) afterwards. Token
    authentication (Ray's default for new clusters) with a token of its own, passed to the client as a header."""
    import secrets

    from ray.job_submission import JobSubmissionClient

    temp_dir = tempfile.mkdtemp(prefix="rayjobs-", dir="/tmp")  # short: Ray's socket paths must stay < 108 chars
    gcs, dashboard, agent_http, agent_grpc, client, node_manager, object_manager, metrics, runtime_env = free_ports(9)
    ray_exe = str(Path(sys.executable).parent / "ray")
    cmd = [ray_exe, "start", "--head", "--block", "--node-ip-address=127.0.0.1", f"--port={gcs}",
           f"--dashboard-port={dashboard}", "--dashboard-host=127.0.0.1", f"--dashboard-agent-listen-port={agent_http}",
           f"--dashboard-agent-grpc-port={agent_grpc}", f"--ray-client-server-port={client}",
           f"--node-manager-port={node_manager}", f"--object-manager-port={object_manager}",
           f"--metrics-export-port={metrics}", f"--runtime-env-agent-port={runtime_env}",
           f"--num-cpus={num_cpus}", "--num-gpus=0", "--include-dashboard=true", "--disable-usage-stats",
           f"--temp-dir={temp_dir}"]
    token = secrets.token_hex(32)
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_AUTH_TOKEN_PATH")}
    env.update(**{UV_RUNTIME_ENV: "0"}, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=token,
               PATH=f"{Path(sys.executable).parent}:{env.get('PATH', '')}")
    headers = {"Authorization": f"Bearer {token}"}
    log = open(os.path.join(temp_dir, "ray_start.log"), "w")  # noqa: SIM115  closed below
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{dashboard}"
    try:
        deadline = time.monotonic() + start_timeout_s
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"ray start exited with {proc.returncode}:\n{_tail(log.name)}")
            try:
                JobSubmissionClient(url, headers=headers).list_jobs()
                break
            except Exception:  # noqa: BLE001  not up yet
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the dashboard at {url} did not come up:\n{_tail(log.name)}") from None
                time.sleep(1)
        yield url, headers
    finally:
        proc.terminate()  # `ray start --block` stops every process it started on SIGTERM
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        try:  # anything of this cluster still alive in the session we created for it
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        log.close()
        shutil.rmtree(temp_dir, ignore_errors=True)


def _tail(path: str, n: int = 4000) -> str:
    with open(path) as f:
        return f.read()[-n:]


@pytest.mark.slow
def test_unlearning_job_through_the_jobs_api(tmp_path):
    from ray.job_submission import JobStatus, JobSubmissionClient

    before = os.environ.get("RAY_ADDRESS")
    base = tmp_path / "base"
    run_pretrain(tiny_job("simclr", data={"num_members": 100, "num_nonmembers": 100}, optim={"epochs": 1},
                          runtime={"progress": False}), base)
    store, out = tmp_path / "results", tmp_path / "forgot"
    entrypoint = (f"{sys.executable} -m orchestrator forget --checkpoint {base} --epochs 1 --out {out} "
                  f"--results {store} --experiment jobs-api --set runtime.progress=false --set runtime.num_threads=1")
    with local_ray_cluster() as (url, headers):
        client = JobSubmissionClient(url, headers=headers)
        job_id = client.submit_job(entrypoint=entrypoint, runtime_env={
            "working_dir": REPO_ROOT, "excludes": EXCLUDES, "env_vars": {"UNLEARN_GIT_SHA": "test-sha-123"}})
        deadline = time.monotonic() + 240
        while not (status := client.get_job_status(job_id)).is_terminal():
            assert time.monotonic() < deadline, f"job still {status}:\n{client.get_job_logs(job_id)[-4000:]}"
            time.sleep(1)
        logs = client.get_job_logs(job_id)
        assert status == JobStatus.SUCCEEDED, f"job {status}:\n{logs[-4000:]}"
    assert "results row appended to" in logs and "forgot 20 samples" in logs
    rows = results.load(str(store))
    assert len(rows) == 1
    row = rows.iloc[0]
    assert row["kind"] == "unlearn" and row["method"] == DEFAULT_METHODS["encoder"] and row["experiment"] == "jobs-api"
    assert row["forget_size"] == 20 and row["checkpoint_uri"] == str(out.resolve())
    assert row["git_sha"] == "test-sha-123" and 0 <= row["after_knn_acc"] <= 1
    assert (out / "meta.json").is_file()
    assert os.environ.get("RAY_ADDRESS") == before  # this process was never pointed at the test cluster


def test_ray_submit_entry_script_runs_the_cli(tmp_path):
    """`ray submit cluster.yaml deploy/submit/unlearn.py -- ARGS` runs this script with ARGS on the head node."""
    from tests.ledger_fakes import make_base_checkpoint

    base = make_base_checkpoint(tmp_path / "base")
    env = {**os.environ, "PYTHONPATH": REPO_ROOT}  # on a cluster node the package is pip-installed instead
    env.pop("RAY_ADDRESS", None)
    script = os.path.join(REPO_ROOT, "deploy", "submit", "unlearn.py")
    done = subprocess.run([sys.executable, script, "inspect", str(base)], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "verified: sha256 matches" in done.stdout
    bad = subprocess.run([sys.executable, script, "inspect", str(tmp_path / "missing")], capture_output=True,
                         text=True, env=env, cwd=tmp_path, timeout=120)
    assert bad.returncode == 2 and bad.stderr.startswith("error:") and "Traceback" not in bad.stderr
