"""A private local Ray instance whose address every process of the job is told explicitly.

Without an address, Ray code that looks a cluster up (``ray.init()`` with no address, the state API that Ray
Train's controller-side actors use, ``ray.util.state.get_actor``) picks "the" local instance: the one recorded by
the last ``ray start`` in ``/tmp/ray``, or any GCS process it finds. With a second Ray instance on the machine
(another user's, a test session's, a ``ray start`` for the Jobs API) that is ambiguous: Ray raises "Found multiple
active Ray instances" or joins the wrong cluster. So the local instance is started on a port chosen here, and its address is handed to every worker and actor of
the job as ``RAY_ADDRESS`` (job-level ``runtime_env``). ``address="local"`` also keeps ``ray.init`` from
joining a cluster that someone else started with ``ray start`` on this machine.

    address = start_local_ray(log_to_driver=True)     # "NODE_IP:PORT"
"""

from __future__ import annotations

import os
import socket
from typing import Any

GCS_PORT_ENV = "RAY_GCS_SERVER_PORT"  # read by Ray when it starts a head node (ray/_private/node.py)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_local_ray(**kwargs: Any) -> str:
    """``ray.init`` a new local instance (never an existing one); returns its GCS address."""
    import ray
    from ray._private.services import get_node_ip_address

    address = f"{get_node_ip_address()}:{free_port()}"  # the IP Ray itself will advertise for this node
    runtime_env = dict(kwargs.pop("runtime_env", None) or {})
    runtime_env["env_vars"] = {**runtime_env.get("env_vars", {}), "RAY_ADDRESS": address}
    # Its own dashboard port too: Ray records the dashboard's address even when the dashboard is left out, and
    # the state API of this instance must never reach another instance's dashboard on the default port 8265.
    kwargs.setdefault("dashboard_port", free_port())
    saved = os.environ.get(GCS_PORT_ENV)
    os.environ[GCS_PORT_ENV] = address.rsplit(":", 1)[1]
    try:
        ray.init(address="local", runtime_env=runtime_env, **kwargs)
    finally:
        if saved is None:
            os.environ.pop(GCS_PORT_ENV, None)
        else:
            os.environ[GCS_PORT_ENV] = saved
    actual = ray.get_runtime_context().gcs_address
    if actual != address:  # the port was taken meanwhile and Ray chose another: the workers must know the real one
        raise RuntimeError(f"the local Ray instance started at {actual}, not {address}")
    return address
