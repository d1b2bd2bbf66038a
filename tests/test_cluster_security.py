"""The shipped cluster configs never expose the Ray job server without authentication (issue 18, case 2).

Rules, checked on every shipped file that starts Ray (cluster.yaml, deploy/cluster-gcp.yaml, the KubeRay manifests):
every ``ray start`` runs with ``RAY_AUTH_MODE=token`` (all nodes alike: the GCS refuses unauthenticated nodes), the
dashboard / job server binds a loopback address unless authentication is on, the token reaches every node with
mode 0600, and every KubeRay cluster spec sets ``authOptions.mode: token``. Each rule is also shown to catch the
configuration it forbids (the open one these files shipped with before).
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO_ROOT

ROOT = Path(REPO_ROOT)
LAUNCHER_CONFIGS = ["cluster.yaml", "deploy/cluster-gcp.yaml"]
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def ray_start_problems(command: str) -> list[str]:
    """What is unsafe about one shell command that starts Ray (empty: safe, or not a `ray start`)."""
    words = shlex.split(command)
    if "ray" not in words or words[words.index("ray") + 1:words.index("ray") + 2] != ["start"]:
        return []
    env = dict(w.split("=", 1) for w in words[:words.index("ray")] if "=" in w)
    authenticated = env.get("RAY_AUTH_MODE") == "token"
    problems = [] if authenticated else [f"`{command}` starts Ray without RAY_AUTH_MODE=token"]
    host = "127.0.0.1"  # ray start's default
    for i, w in enumerate(words):
        if w.startswith("--dashboard-host="):
            host = w.split("=", 1)[1]
        elif w == "--dashboard-host" and i + 1 < len(words):
            host = words[i + 1]
    if host not in LOOPBACK and not authenticated:
        problems.append(f"`{command}` binds the job server to {host} without authentication")
    return problems


def launcher_problems(config: dict) -> list[str]:
    problems = []
    for key in ("head_start_ray_commands", "worker_start_ray_commands"):
        for command in config.get(key) or []:
            problems += ray_start_problems(command)
    mounts = config.get("file_mounts") or {}
    if not any(remote.endswith("/.ray/auth_token") for remote in mounts):
        problems.append("no file_mounts entry brings the auth token to the nodes")
    if not any(re.search(r"chmod 600 \S*auth_token", c) for c in config.get("setup_commands") or []):
        problems.append("the token is not made private (chmod 600) on the nodes")
    return problems


def ray_cluster_specs(doc: dict) -> list[dict]:
    """Every RayCluster spec inside a KubeRay document (RayCluster, RayJob, RayService, RayCronJob)."""
    kind, spec = doc.get("kind"), doc.get("spec") or {}
    if kind == "RayCluster":
        return [spec]
    if kind == "RayJob":
        return [spec.get("rayClusterSpec") or {}]
    if kind == "RayService":
        return [spec.get("rayClusterConfig") or {}]
    if kind == "RayCronJob":
        return [(spec.get("jobTemplate") or {}).get("rayClusterSpec") or {}]
    return []


def kuberay_problems(docs: list[dict]) -> list[str]:
    problems = []
    for doc in docs:
        for spec in ray_cluster_specs(doc):
            if (spec.get("authOptions") or {}).get("mode") != "token":
                problems.append(f"{doc['kind']} {doc['metadata']['name']}: no authOptions.mode: token (KubeRay "
                                f"binds the head's job server to 0.0.0.0)")
    return problems


@pytest.mark.parametrize("path", LAUNCHER_CONFIGS)
def test_cluster_launcher_configs_require_a_token(path):
    config = yaml.safe_load((ROOT / path).read_text())
    assert launcher_problems(config) == []
    heads = [c for c in config["head_start_ray_commands"] if "ray start" in c]
    assert heads and all("--dashboard-host=127.0.0.1" in c for c in heads)  # and reachable only via a tunnel


def test_kuberay_manifests_require_a_token():
    manifests = sorted((ROOT / "deploy" / "kuberay").glob("*.yaml"))
    assert manifests
    for path in manifests:
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
        assert any(ray_cluster_specs(d) for d in docs), path
        assert kuberay_problems(docs) == [], path


def test_no_shipped_file_starts_ray_without_a_token():
    """Any other file under deploy/ (or a new one) that starts Ray follows the same rule."""
    lines = [line.strip().lstrip("- ").strip() for path in [ROOT / "cluster.yaml", *(ROOT / "deploy").rglob("*")]
             if path.is_file() and path.suffix in (".yaml", ".yml", ".sh", "") for line in path.read_text().splitlines()
             if re.search(r"(^|[\s-])ray start\b", line) and not line.strip().startswith("#")]
    assert lines  # the two launcher configs at least
    assert [p for line in lines for p in ray_start_problems(line)] == []


def test_the_rules_catch_the_open_configs_they_replace():
    config = yaml.safe_load((ROOT / "cluster.yaml").read_text())
    config["head_start_ray_commands"] = ["ray stop", "ray start --head --port=6379 --dashboard-host=0.0.0.0"]
    config["file_mounts"].pop("/home/ubuntu/.ray/auth_token")
    problems = launcher_problems(config)
    assert any("without RAY_AUTH_MODE=token" in p for p in problems)
    assert any("binds the job server to 0.0.0.0 without authentication" in p for p in problems)
    assert any("auth token to the nodes" in p for p in problems)
    assert ray_start_problems("RAY_AUTH_MODE=token ray start --head --dashboard-host 0.0.0.0") == []
    assert ray_start_problems("ray start --address=$RAY_HEAD_IP:6379") != []  # a worker must authenticate too
    docs = list(yaml.safe_load_all((ROOT / "deploy" / "kuberay" / "raycronjob.yaml").read_text()))
    del docs[0]["spec"]["jobTemplate"]["rayClusterSpec"]["authOptions"]
    assert kuberay_problems(docs) == ["RayCronJob unlearn-nightly: no authOptions.mode: token (KubeRay binds the "
                                      "head's job server to 0.0.0.0)"]
