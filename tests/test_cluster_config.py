"""cluster.yaml (and its GCP variant) pass Ray's own autoscaler validation (schema + defaults), offline."""

from __future__ import annotations

import os

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize("path", ["cluster.yaml", "deploy/cluster-gcp.yaml"])
def test_cluster_config_passes_ray_validation(path):
    from ray.autoscaler._private.util import prepare_config, validate_config

    with open(os.path.join(ROOT, path)) as f:
        config = yaml.safe_load(f)
    prepared = prepare_config(config)
    validate_config(prepared)  # raises on any schema violation
    types = prepared["available_node_types"]
    assert prepared["head_node_type"] in types
    assert any(t["max_workers"] > 0 for name, t in types.items() if name != prepared["head_node_type"])
    assert any("pip install" in c and "/home/ubuntu/unlearn" in c for c in prepared["setup_commands"])
    assert "/home/ubuntu/unlearn" in prepared["file_mounts"]


def test_validation_catches_a_broken_config():
    import jsonschema
    from ray.autoscaler._private.util import prepare_config, validate_config

    with open(os.path.join(ROOT, "cluster.yaml")) as f:
        config = yaml.safe_load(f)
    config["available_node_types"]["gpu_worker"]["max_workers"] = "many"
    with pytest.raises((jsonschema.ValidationError, ValueError, TypeError)):
        validate_config(prepare_config(config))
