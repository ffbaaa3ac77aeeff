"""Trials on a real two-node Ray cluster (head and worker, in a network namespace of their own)."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from automl.launchers.base import METRICS_FILE, STDOUT_FILE, TrialSpec
from tests.ray_cluster import HEAD_RESOURCE, WORKER_RESOURCE, TwoNodes, two_node_cluster

pytestmark = pytest.mark.ray

FLEETS = {
    HEAD_RESOURCE: [{"memory_mib": 24576}, {"memory_mib": 24576}],
    WORKER_RESOURCE: [
        {"memory_mib": 16384, "foreign": [{"memory_mib": 12000, "utilization": 90, "start_s": 0, "end_s": None}]},
        {"memory_mib": 16384},
    ],
}


@pytest.fixture(scope="module")
def cluster() -> Iterator[TwoNodes]:
    with two_node_cluster(FLEETS) as nodes:
        yield nodes


def _spec(tmp_path: Path, trial_id: int, body: str) -> TrialSpec:
    script = tmp_path / f"trial{trial_id}.py"
    script.write_text(body)
    return TrialSpec(
        experiment_id="exp1",
        trial_id=trial_id,
        argv=[sys.executable, str(script)],
        working_dir=tmp_path,
        trial_dir=tmp_path / "home" / "experiments" / "exp1" / "trials" / str(trial_id),
        params={"x": trial_id},
        cpus=1,
        gpus=[],
        env={},
    )


REPORTING = """
import json, os, sys
params = json.load(open(os.environ["AUTOML_PARAMS_FILE"]))
with open(os.environ["AUTOML_METRICS_FILE"], "a") as f:
    for step in range(5):
        f.write(json.dumps({"kind": "intermediate", "step": step, "value": step * params["x"]}) + "\\n")
        f.flush()
    f.write(json.dumps({"kind": "final", "value": 10.0}) + "\\n")
print("node", os.environ["AUTOML_NODE"], "cwd", os.getcwd())
"""


def test_a_trial_on_the_worker_node_delivers_each_metric_once_and_its_folder(cluster: TwoNodes, tmp_path: Path):
    from automl.launchers.ray import RayLauncher, RayOptions

    async def run() -> tuple[list[float | None], int | None, str, str | None]:
        launcher = RayLauncher(RayOptions(cluster.address, resources={WORKER_RESOURCE: 1}))
        handle = await launcher.start(_spec(tmp_path, 1, REPORTING))
        values, offset, seq = [], 0, 0
        code = await handle.wait()
        while True:
            result = await handle.read_metrics(offset, seq, "default", final=True)
            values += [metric.value for metric in result.metrics]
            if result.offset == offset:
                break
            offset, seq = result.offset, seq + len(result.metrics)
        await handle.end_leftovers(0.0)
        return values, code, handle.locator.node or "", result.problem

    values, code, node, problem = asyncio.run(run())
    assert (code, problem) == (0, None)
    assert values == [0.0, 1.0, 2.0, 3.0, 4.0, 10.0]
    folder = tmp_path / "home" / "experiments" / "exp1" / "trials" / "1"
    assert len((folder / METRICS_FILE).read_text().splitlines()) == 6
    assert f"node {node}" in (folder / STDOUT_FILE).read_text()
    assert (folder / "exit_code").read_text().strip() == "0"
    assert json.loads((folder / "params.json").read_text()) == {"x": 1}
