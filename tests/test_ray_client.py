"""The daemon's side of a Ray cluster when the cluster does not answer: no Ray, no cluster, no root needed."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from automl.launchers.base import Locator, NoRoom, TrialIdentity, TrialLost, TrialSpec
from automl.launchers.ray_address import RayOptions
from automl.launchers.ray_client import RayClusterLauncher


def _closed_port() -> str:
    """A loopback address nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{probe.getsockname()[1]}"


def _spec(tmp_path: Path) -> TrialSpec:
    trial_dir = tmp_path / "home" / "experiments" / "exp" / "trials" / "1"
    return TrialSpec("exp", 1, [sys.executable, "-c", "pass"], tmp_path, trial_dir, {}, 1, [], {})


def test_a_cluster_that_does_not_answer_keeps_trials_queued_then_fails_the_experiment_at_its_timeout(tmp_path):
    address = _closed_port()

    async def run() -> tuple[list[tuple[str, bool]], str, str]:
        launcher = RayClusterLauncher(RayOptions(address, reconnect_timeout=0.5))
        told: list[tuple[str, bool]] = []
        launcher.watch(lambda why, fatal: told.append((why, fatal)))
        running = await launcher.attach(TrialIdentity("exp", 2), Locator(123, 1.0, "node"), tmp_path / "t2")
        with pytest.raises(NoRoom) as queued:
            await launcher.start(_spec(tmp_path))
        with pytest.raises(TrialLost) as lost:
            await asyncio.wait_for(running.wait(), 10)
        launcher.close()
        return told, str(queued.value), str(lost.value)

    told, queued, lost = asyncio.run(run())
    waiting, fatal = told[0]
    assert waiting.startswith(f"waiting for the Ray cluster at {address} (cannot reach") and not fatal
    assert "its trials end interrupted unless it is back by" in waiting
    assert told[-1] == (f"the Ray cluster at {address} was unreachable for more than 0.5 s", True)
    assert queued.startswith("waiting for the Ray cluster: cannot reach") and address in queued
    assert lost == told[-1][0]
    assert not (tmp_path / "home").exists(), "nothing of the queued trial was written"


def test_the_daemon_side_of_a_cluster_never_imports_ray():
    probe = (
        "import sys, automl.launchers.choose, automl.launchers.ray_client, automl.daemon\nprint('ray' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
