"""A real two-node Ray cluster on this machine, inside a fresh network namespace so all of Ray's traffic stays on
loopback: the head and one worker node, each with its own custom resource and its own simulated GPU fleet.

The namespace is entered by the test process's main thread (`unshare(CLONE_NEWNET)`, then `ip link set lo up`), so
the cluster, the daemon and every CLI process a test starts from there share it; leaving restores the namespace the
thread had. Nodes are stopped only through the `Cluster` handle that started them (never `ray stop`).
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest

CLONE_NEWNET = 0x40000000
HEAD_RESOURCE, WORKER_RESOURCE = "head_node", "worker_node"
ROLE_LABEL = "automl-test/role"  # each node's label: its custom resource's name
NODE_CPUS = 4
NODE_GPUS = 2
SIM_ENV = "AUTOML_SIM_GPUS"


@dataclass
class TwoNodes:
    """The running cluster: its address, the `Cluster` handle, and the worker node (a test may kill it)."""

    address: str
    cluster: Any
    worker: Any
    fleets: dict[str, Path]

    def add_worker(self) -> None:
        """Start a fresh worker node like the first one (after a test killed it)."""
        self.worker = _add_node(self.cluster, WORKER_RESOURCE, self.fleets[WORKER_RESOURCE])

    @contextmanager
    def control_store_frozen(self) -> Iterator[None]:
        """Freeze the head's control store (GCS) while inside: to a driver the cluster is gone, while the nodes,
        their agents and their trials run on, as in a network partition. Thawed on the way out."""
        gcs = self.cluster.head_node.all_processes["gcs_server"][0].process
        os.kill(gcs.pid, signal.SIGSTOP)
        try:
            yield
        finally:
            os.kill(gcs.pid, signal.SIGCONT)

    def kill_worker(self) -> None:
        """Kill every process of the worker node at once, the trials it started included, as a machine that dies."""
        procs = [proc for root in _node_processes(self.worker) for proc in [root, *_descendants(root)]]
        for proc in procs:
            try:
                proc.kill()
            except psutil.Error:
                pass
        self.cluster.remove_node(self.worker, allow_graceful=False)
        self.worker = None


def network_namespace_problem() -> str | None:
    """Why a fresh network namespace cannot be made here (None: it can)."""
    if shutil.which("ip") is None or shutil.which("unshare") is None:
        return "needs the `ip` and `unshare` commands (iproute2, util-linux)"
    probe = subprocess.run(["unshare", "-n", "ip", "link", "set", "lo", "up"], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"cannot create a network namespace (root or CAP_SYS_ADMIN needed): {probe.stderr.strip()}"
    return None


@contextmanager
def own_network_namespace() -> Iterator[None]:
    """Run the calling thread, and every process it starts, in a fresh network namespace with loopback up."""
    libc = ctypes.CDLL(None, use_errno=True)
    original = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        if libc.unshare(CLONE_NEWNET) != 0:
            pytest.skip(f"unshare(CLONE_NEWNET) failed: {os.strerror(ctypes.get_errno())}")
        subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
        yield
    finally:
        libc.setns(original, CLONE_NEWNET)
        os.close(original)


@contextmanager
def two_node_cluster(fleets: dict[str, list[dict[str, Any]]]) -> Iterator[TwoNodes]:
    """Start the head and one worker node (fleets: each node's simulated GPUs), in a private Ray temp folder."""
    problem = network_namespace_problem()
    if problem:
        pytest.skip(f"Ray tests need a network namespace: {problem}")
    try:
        from ray.cluster_utils import Cluster
    except ImportError:
        pytest.skip("ray is not installed: pip install 'automl[ray]' (make install includes it)")
    temp = Path(tempfile.mkdtemp(prefix="ar", dir="/tmp"))  # short: Ray's socket paths must stay below 108 bytes
    (temp / "ray").mkdir()
    fleet_files = {}
    for resource, gpus in fleets.items():
        fleet_files[resource] = temp / f"{resource}.json"
        fleet_files[resource].write_text(json.dumps({"gpus": gpus}))
    saved = {name: os.environ.get(name) for name in ("RAY_TMPDIR", SIM_ENV)}
    os.environ["RAY_TMPDIR"] = str(temp)
    try:
        with own_network_namespace():
            cluster = Cluster(shutdown_at_exit=False)
            try:
                head = _add_node(cluster, HEAD_RESOURCE, fleet_files[HEAD_RESOURCE], include_dashboard=False)
                nodes = TwoNodes(head.gcs_address, cluster, None, fleet_files)
                nodes.add_worker()
                cluster.wait_for_nodes()
                yield nodes
            finally:
                _leave(cluster)
    finally:
        _restore(saved)
        shutil.rmtree(temp, ignore_errors=True)


def _add_node(cluster: Any, resource: str, fleet: Path, **args: Any) -> Any:
    """A node with its custom resource; its processes (and trials) see its own simulated GPU fleet, and keep
    their trial folders in the cluster's temp folder (removed with it)."""
    saved = {name: os.environ.get(name) for name in (SIM_ENV, "TMPDIR")}
    os.environ.update({SIM_ENV: str(fleet), "TMPDIR": str(fleet.parent)})
    try:
        return cluster.add_node(
            num_cpus=NODE_CPUS,
            num_gpus=NODE_GPUS,
            resources={resource: 100},
            labels={ROLE_LABEL: resource},
            node_ip_address="127.0.0.1",
            **args,
        )
    finally:
        _restore(saved)


def _leave(cluster: Any) -> None:
    """Stop the nodes this test started, after leaving the cluster if this process joined it as a driver."""
    import ray

    try:
        if ray.is_initialized():
            ray.shutdown()
        cluster.shutdown()
    finally:
        for node in cluster.list_all_nodes():
            node.kill_all_processes(check_alive=False, allow_graceful=False, wait=True)


def _node_processes(node: Any) -> list[psutil.Process]:
    """The processes a node started (raylet, its workers' parent, and so on) that still run."""
    procs = []
    for infos in node.all_processes.values():
        for info in infos:
            try:
                procs.append(psutil.Process(info.process.pid))
            except psutil.Error:
                pass
    return procs


def _descendants(proc: psutil.Process) -> list[psutil.Process]:
    try:
        return proc.children(recursive=True)
    except psutil.Error:
        return []


def _restore(saved: dict[str, str | None]) -> None:
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
