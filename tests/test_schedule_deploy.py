"""The shipped scheduling examples: the RayCronJob manifest and crontab parse with the real CLI, and the cron
wrapper maps a Ray job's outcome to the documented exit codes (with a stand-in ``ray`` on PATH)."""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

import pytest
import yaml

from orchestrator.cli import build_parser
from tests.conftest import REPO_ROOT

DEPLOY = Path(REPO_ROOT) / "deploy"


def test_raycronjob_manifest_has_the_crd_fields_and_a_valid_entrypoint():
    docs = list(yaml.safe_load_all((DEPLOY / "kuberay" / "raycronjob.yaml").read_text()))
    cron = docs[0]
    assert (cron["apiVersion"], cron["kind"]) == ("ray.io/v1", "RayCronJob")
    spec = cron["spec"]
    assert len(spec["schedule"].split()) == 5 and spec["suspend"] is False
    job = spec["jobTemplate"]
    assert {"entrypoint", "rayClusterSpec", "shutdownAfterJobFinishes"} <= set(job)
    argv = shlex.split(job["entrypoint"])
    assert argv[:3] == ["unlearn", "schedule", "run"]
    args = build_parser().parse_args(argv[1:])
    assert args.ledger.startswith("/") and args.min_batch == 100 and args.gpu
    head = job["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]
    mounts = {m["mountPath"] for m in head["containers"][0]["volumeMounts"]}
    assert os.path.dirname(args.ledger) in mounts and args.models_dir.startswith("/shared")
    claims = {d["metadata"]["name"]: d["spec"]["accessModes"] for d in docs if d["kind"] == "PersistentVolumeClaim"}
    assert claims == {"unlearn-ledger": ["ReadWriteOnce"], "unlearn-shared": ["ReadWriteMany"]}


def test_crontab_flags_parse():
    env = dict(line.split("=", 1) for line in (DEPLOY / "cron" / "crontab").read_text().splitlines()
               if "=" in line and not line.startswith("#") and not line[0].isdigit())
    args = build_parser().parse_args(["schedule", "run", *shlex.split(env["UNLEARN_ARGS"])])
    assert args.max_age == 24 and env["UNLEARN_LEDGER"].startswith("/")


FAKE_RAY = """#!/usr/bin/env bash
echo "ray $* mode=$RAY_AUTH_MODE" >> "$CALLS"
case "$2" in
  list) [ -n "${LIST_ERR:-}" ] && { echo "$LIST_ERR" >&2; exit 1; }; exit 0 ;;
  submit) exit "$SUBMIT_RC" ;;
  status) printf '%s\\n' "$STATUS"; exit "${STATUS_RC:-0}" ;;
  logs) printf '%s\\n' "$JOB_LOG" ;;
esac
"""


def run_wrapper(tmp_path, **env_vars) -> subprocess.CompletedProcess:
    (tmp_path / "ray").write_text(FAKE_RAY)
    (tmp_path / "ray").chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "UNLEARN_"))}
    env.update({"PATH": f"{tmp_path}:{os.environ['PATH']}", "CALLS": str(tmp_path / "calls"), "SUBMIT_RC": "0",
                "UNLEARN_LEDGER": "/var/lib/unlearn/l.sqlite", "RAY_AUTH_TOKEN": "t0k3n",
                "UNLEARN_ALERT_CMD": f"cat > {tmp_path / 'alert'}", **env_vars})
    return subprocess.run([str(DEPLOY / "cron" / "unlearn-schedule.sh")], env=env, capture_output=True, text=True)


FAILED = "Job 'x' failed\nStatus message: Job entrypoint command failed with exit code {}, last available logs"


@pytest.mark.parametrize("submit_rc, status, job_log, expected", [
    (0, "", "", 0),
    (1, FAILED.format(1), "batch 4 failed, nothing promoted (version 3 stays current): verification failed", 1),
    (1, FAILED.format(2), "error: checkpoint x failed verification", 2),
    (1, FAILED.format(3), "ESCALATION: 3 deletion requests failed 3 batches", 3),
    (1, FAILED.format(75), "error: another unlearning run holds the scheduler lock (pid 7)", 75),
    # taken over mid-run: its "error:" line must not turn the lock outcome into a user error (was 2)
    (1, FAILED.format(75), "error: the scheduler lock was taken over by another run (presumed this one dead)", 75),
    (1, FAILED.format(137), "", 70),  # the driver was killed: no outcome of its own
    (1, "Job 'x' failed\nStatus message: runtime env setup failed", "", 70),
    (1, "Status message: (older Ray)", "error: the scheduler lock was taken over by another run", 75),
    (1, "Status message: (older Ray)", "error: bad config", 2),
])
def test_cron_wrapper_exit_codes(tmp_path, submit_rc, status, job_log, expected):
    r = run_wrapper(tmp_path, SUBMIT_RC=str(submit_rc), STATUS=status, JOB_LOG=job_log)
    assert r.returncode == expected, r.stdout + r.stderr
    calls = (tmp_path / "calls").read_text().splitlines()
    assert calls[0].startswith("ray job list --address http://127.0.0.1:8265")
    submit = calls[1]
    assert "job submit" in submit and "--working-dir ." in submit and "schedule run --storage" in submit
    assert '"UNLEARN_LEDGER": "/var/lib/unlearn/l.sqlite"' in submit and '"UNLEARN_ACTOR": "' in submit
    assert all(c.endswith("mode=token") for c in calls)  # the client sends the token on every call
    assert (tmp_path / "alert").exists() is (expected == 3)


@pytest.mark.parametrize("env, expected, message", [
    ({"LIST_ERR": "ConnectionError: Failed to connect to Ray at address: http://127.0.0.1:8265."}, 69,
     "cannot reach the job server"),
    ({"LIST_ERR": "RuntimeError: Request failed with status code 401: Unauthorized: Missing authentication token"},
     77, "refused the auth token"),
    ({"SUBMIT_RC": "1", "STATUS_RC": "1", "STATUS": "ConnectionError: connection refused"}, 69,
     "outcome is unknown"),
    ({"RAY_AUTH_TOKEN": "", "RAY_AUTH_TOKEN_PATH": "/nonexistent/token"}, 2, "no Ray auth token"),
    ({"RAY_ADDRESS": "http://ray-head.internal:8265"}, 2, "in the clear"),
])
def test_cron_wrapper_server_and_auth_failures_have_their_own_codes(tmp_path, env, expected, message):
    r = run_wrapper(tmp_path, **env)
    assert r.returncode == expected and message in r.stderr, r.stdout + r.stderr


def test_cron_wrapper_plain_http_on_a_trusted_network_is_an_explicit_opt_in(tmp_path):
    r = run_wrapper(tmp_path, RAY_ADDRESS="http://ray-head.internal:8265", UNLEARN_ALLOW_PLAINTEXT_HTTP="1")
    assert r.returncode == 0, r.stderr


def test_cron_wrapper_refuses_a_relative_ledger(tmp_path):
    env = {**os.environ, "UNLEARN_LEDGER": "runs/ledger.sqlite", "PATH": f"{tmp_path}:{os.environ['PATH']}"}
    r = subprocess.run([str(DEPLOY / "cron" / "unlearn-schedule.sh")], env=env, capture_output=True, text=True)
    assert r.returncode == 2 and "must be an absolute path" in r.stderr
