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
echo "ray $*" >> "$CALLS"
if [ "$2" = submit ]; then exit "$SUBMIT_RC"; fi
printf '%s\\n' "$JOB_LOG"
"""


@pytest.mark.parametrize("submit_rc, job_log, expected", [
    (0, "", 0),
    (1, "batch 4 failed, nothing promoted (version 3 stays current): verification failed", 1),
    (1, "error: checkpoint x failed verification", 2),
    (1, "ESCALATION: 3 deletion requests failed 3 batches", 3),
    (1, "error: another unlearning run holds the scheduler lock (pid 7)", 75),
])
def test_cron_wrapper_exit_codes(tmp_path, submit_rc, job_log, expected):
    (tmp_path / "ray").write_text(FAKE_RAY)
    (tmp_path / "ray").chmod(0o755)
    env = {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}", "CALLS": str(tmp_path / "calls"),
           "SUBMIT_RC": str(submit_rc), "JOB_LOG": job_log, "UNLEARN_LEDGER": "/var/lib/unlearn/l.sqlite",
           "UNLEARN_ALERT_CMD": f"cat > {tmp_path / 'alert'}"}
    r = subprocess.run([str(DEPLOY / "cron" / "unlearn-schedule.sh")], env=env, capture_output=True, text=True)
    assert r.returncode == expected, r.stdout + r.stderr
    submit = (tmp_path / "calls").read_text().splitlines()[0]
    assert "job submit" in submit and "--working-dir ." in submit and "schedule run --storage" in submit
    assert '"UNLEARN_LEDGER": "/var/lib/unlearn/l.sqlite"' in submit
    assert (tmp_path / "alert").exists() is (expected == 3)


def test_cron_wrapper_refuses_a_relative_ledger(tmp_path):
    env = {**os.environ, "UNLEARN_LEDGER": "runs/ledger.sqlite", "PATH": f"{tmp_path}:{os.environ['PATH']}"}
    r = subprocess.run([str(DEPLOY / "cron" / "unlearn-schedule.sh")], env=env, capture_output=True, text=True)
    assert r.returncode == 2 and "must be an absolute path" in r.stderr
