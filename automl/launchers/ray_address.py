"""A Ray cluster as a config names it (its address, checked without importing Ray, which costs about a second, and
what trials ask of it)."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field

NAMESPACE = "automl"  # the Ray namespace of automl's agents and placement groups
REACH_TIMEOUT = 3.0  # seconds to wait for the cluster's port to answer at submit
DEFAULT_RECONNECT_TIMEOUT = 600.0  # seconds an experiment waits for its cluster to come back before it ends


@dataclass
class RayOptions:
    """Where the cluster is, what each trial asks of Ray beyond its CPUs and GPUs, and how long an experiment waits
    for the cluster when it goes away."""

    address: str
    resources: dict[str, float] = field(default_factory=dict)  # custom Ray resources per trial
    labels: dict[str, str] = field(default_factory=dict)  # Ray node labels a trial's node must match
    node_dir: str | None = None  # the folder of trial folders on each node (default: its temp folder)
    reconnect_timeout: float = DEFAULT_RECONNECT_TIMEOUT
    upload: str | None = None  # the working dir Ray ships to each node, where trials run in its copy (None: shared)


def address_problem(address: str) -> str | None:
    """Why the Ray cluster at HOST:PORT cannot be reached now, with what to check; None when its port answers."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        return f"'{address}' is not HOST:PORT (the address `ray start --head` prints, e.g. 10.0.0.5:6379)"
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=REACH_TIMEOUT):
            return None
    except OSError as e:
        return (
            f"cannot reach the Ray cluster at {address}: {e.strerror or e}; check that `ray start --head "
            f"--port {port}` runs on {host}, that this machine can reach that port (firewall, VPN), and that "
            "the address is the one `ray start --head` printed"
        )
