"""Trials on a real two-node Ray cluster (head and worker, in a network namespace of their own)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from automl.launchers.base import METRICS_FILE, STDOUT_FILE, TrialSpec
from automl.launchers.local import marked_processes
from tests.helpers import automl, running_daemon, show, wait_for_status, wait_until, write_config, write_trial
from tests.ray_cluster import HEAD_RESOURCE, ROLE_LABEL, WORKER_RESOURCE, TwoNodes, two_node_cluster

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
    from automl.launchers.ray_address import RayOptions
    from automl.launchers.ray_client import RayClusterLauncher

    async def run() -> tuple[list[float | None], int | None, str, str | None]:
        launcher = RayClusterLauncher(RayOptions(cluster.address, resources={WORKER_RESOURCE: 1}))
        try:
            return await follow(await launcher.start(_spec(tmp_path, 1, REPORTING)))
        finally:
            launcher.close()
            await launcher.bridge.close()

    async def follow(handle: Any) -> tuple[list[float | None], int | None, str, str | None]:
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


# The experiment as a user runs it: a real daemon, the real CLI, trials placed by Ray on both nodes.

STEPS = 3
RAY_TRIAL = f"""
import os
for step in range({STEPS}):
    time.sleep(params.get('pace', 0.3))
    trial.report(step * params['x'])
trial.report_final(params['x'])
print('ran on', os.environ['AUTOML_NODE'])
"""


@pytest.fixture
def daemon(cluster: TwoNodes, home: Path) -> Iterator[Path]:
    """A daemon for one test, its trials on the cluster; stopped, and whatever its trials left ended, afterwards."""
    with running_daemon(home) as started:
        yield started


def _ray_config(tmp_path: Path, cluster: TwoNodes, **fields: object) -> Path:
    write_trial(tmp_path, RAY_TRIAL)
    launcher = {"name": "ray", "address": cluster.address, **fields.pop("launcher", {})}  # type: ignore[dict-item]
    return write_config(tmp_path, launcher=launcher, **fields)


def _stored_metrics(home: Path, exp_id: str) -> dict[int, list[int]]:
    """Each trial's stored metric line numbers, straight from the store."""
    with sqlite3.connect(home / "automl.db") as db:
        rows = db.execute("SELECT trial_id, seq FROM metrics WHERE experiment_id=? ORDER BY trial_id, seq", (exp_id,))
        stored: dict[int, list[int]] = {}
        for trial_id, seq in rows:
            stored.setdefault(trial_id, []).append(seq)
    return stored


def test_an_experiment_runs_its_trials_on_both_nodes_and_stores_every_metric_once(tmp_path, cluster, daemon):
    config = _ray_config(tmp_path, cluster, resources={"cpus": 2}, concurrency=4, max_trials=4)
    exp_id = automl("submit", str(config), check=True).stdout.strip()
    view = wait_for_status(exp_id, "done")
    trials = view["trials"]
    assert [t["status"] for t in trials] == ["succeeded"] * 4
    assert len({t["node"] for t in trials}) == 2  # 4 trials of 2 CPUs fill both nodes' 4 CPUs
    assert _stored_metrics(daemon, exp_id) == {t["id"]: list(range(STEPS + 1)) for t in trials}
    for t in trials:
        folder = daemon / "experiments" / exp_id / "trials" / str(t["id"])
        assert f"ran on {t['node']}" in (folder / STDOUT_FILE).read_text()
        assert len((folder / METRICS_FILE).read_text().splitlines()) == STEPS + 1
        assert (folder / "exit_code").read_text().strip() == "0"
    logs = automl("logs", exp_id, str(trials[0]["id"]), check=True).stdout
    assert f"ran on {trials[0]['node']}" in logs
    table = automl("show", exp_id, check=True).stdout
    assert "NODE" in table and all(t["node"][:12] in table for t in trials)
    maps = Path(f"/proc/{(daemon / 'daemon.pid').read_text().strip()}/maps").read_text()
    assert "_raylet" not in maps, "the daemon itself never loads Ray: its bridge process is the driver"


NNI_TRIAL = """
import nni
params = nni.get_next_parameter()
for step in range(3):
    nni.report_intermediate_result(step * params["x"])
nni.report_final_result({"default": params["x"], "other": 1})
"""


def test_an_unmodified_nni_trial_runs_on_the_worker_node_its_label_selects(tmp_path, cluster, daemon):
    (tmp_path / "trial.py").write_text(NNI_TRIAL)
    config = write_config(
        tmp_path,
        launcher={"name": "ray", "address": cluster.address, "labels": {ROLE_LABEL: WORKER_RESOURCE}},
        max_trials=2,
        concurrency=2,
    )
    exp_id = automl("submit", str(config), check=True).stdout.strip()
    view = wait_for_status(exp_id, "done")
    assert {t["node"] for t in view["trials"]} == {cluster.worker.node_id}
    assert all(t["status"] == "succeeded" and t["steps"] == 3 for t in view["trials"]), view["trials"]
    assert all(t["value"] == t["params"]["x"] for t in view["trials"])


def test_automl_gpus_lists_every_nodes_gpus(tmp_path, cluster, home):
    started = automl("daemon", "start", "--ray", cluster.address)
    assert started.returncode == 0, started.stderr
    try:
        gpus = json.loads(automl("gpus", "--json", check=True).stdout)["gpus"]
        table = automl("gpus", check=True).stdout
    finally:
        automl("daemon", "stop")
    by_node: dict[str, list[dict]] = {}
    for gpu in gpus:
        by_node.setdefault(gpu["node"], []).append(gpu)
    assert len(by_node) == 2 and all(len(node) == 2 for node in by_node.values())
    busy = by_node[cluster.worker.node_id][0]
    assert busy["processes"] and not busy["takes_trial"]  # another user's process on the worker's first GPU
    assert f"node {cluster.worker.node_id}" in table


def test_this_machines_gpus_are_listed_once_when_it_is_also_a_node_of_the_cluster(cluster, home, monkeypatch):
    monkeypatch.setenv("AUTOML_SIM_GPUS", str(cluster.fleets[HEAD_RESOURCE]))  # the daemon's GPUs: the head node's
    started = automl("daemon", "start", "--ray", cluster.address)
    assert started.returncode == 0, started.stderr
    try:
        gpus = json.loads(automl("gpus", "--json", check=True).stdout)["gpus"]
    finally:
        automl("daemon", "stop")
    worker = cluster.worker.node_id
    assert sorted((gpu.get("node") or "", gpu["index"]) for gpu in gpus) == [("", 0), ("", 1), (worker, 0), (worker, 1)]


def test_submit_to_an_unreachable_cluster_is_exit_2_naming_the_address(tmp_path, cluster, daemon):
    config = _ray_config(tmp_path, cluster, launcher={"address": "127.0.0.1:9"})
    result = automl("submit", str(config))
    assert result.returncode == 2
    assert "launcher.address" in result.stderr and "127.0.0.1:9" in result.stderr and "ray start" in result.stderr
    assert json.loads(automl("ls", "--json", check=True).stdout) == []


def _trial(exp_id: str, trial_id: int) -> dict:
    return next(t for t in show(exp_id)["trials"] if t["id"] == trial_id)


def _slow(pace: float) -> dict:
    return {"x": {"_type": "uniform", "_value": [0, 1]}, "pace": {"_type": "choice", "_value": [pace]}}


def test_kill_and_stop_end_each_trials_whole_tree_on_its_node(tmp_path, cluster, daemon):
    config = _ray_config(tmp_path, cluster, search_space=_slow(30), max_trials=2, concurrency=2)
    exp_id = automl("submit", str(config), check=True).stdout.strip()
    wait_until(lambda: sum(t["status"] == "running" for t in show(exp_id)["trials"]) == 2, "two running trials")
    assert marked_processes(exp_id, 1) and marked_processes(exp_id, 2)
    automl("kill", exp_id, "1", check=True)
    killed = wait_until(
        lambda: (lambda t: t if t["status"] != "running" else None)(_trial(exp_id, 1)), "trial 1 to end"
    )
    assert (killed["status"], killed["error"]) == ("killed", "killed by user")
    assert not marked_processes(exp_id, 1)
    assert show(exp_id)["status"] == "running"
    automl("stop", exp_id, check=True)
    view = wait_for_status(exp_id, "stopped")
    assert not [t for t in view["trials"] if t["status"] in ("running", "waiting")]
    assert not marked_processes(exp_id, 2)
    folder = daemon / "experiments" / exp_id / "trials" / "2"
    assert (folder / "exit_code").exists(), "the stopped trial's folder was copied back"


def test_a_daemon_killed_mid_experiment_re_attaches_its_trials_on_the_cluster(tmp_path, cluster, daemon):
    gate = tmp_path / "gate"
    body = RAY_TRIAL.replace(
        "trial.report_final", f"while not os.path.exists({str(gate)!r}):\n    time.sleep(0.05)\ntrial.report_final"
    )
    write_trial(tmp_path, body)
    config = write_config(
        tmp_path,
        launcher={"name": "ray", "address": cluster.address},
        resources={"cpus": 2},
        search_space=_slow(0.1),
        max_trials=4,
        concurrency=4,
    )
    exp_id = automl("submit", str(config), check=True).stdout.strip()
    wait_until(lambda: sum(t["steps"] for t in show(exp_id)["trials"]) >= 4 * STEPS, "all four at the gate")
    os.kill(int((daemon / "daemon.pid").read_text()), signal.SIGKILL)
    gate.touch()  # the trials report their final results and end while no daemon watches
    time.sleep(1.0)
    automl("daemon", "start", check=True)
    view = wait_for_status(exp_id, "done")
    trials = view["trials"]
    assert [t["status"] for t in trials] == ["succeeded"] * 4, trials
    assert len({t["node"] for t in trials}) == 2
    assert _stored_metrics(daemon, exp_id) == {t["id"]: list(range(STEPS + 1)) for t in trials}
    for t in trials:
        folder = daemon / "experiments" / exp_id / "trials" / str(t["id"])
        assert f"ran on {t['node']}" in (folder / STDOUT_FILE).read_text()


def test_a_worker_node_that_dies_mid_trial_interrupts_its_trial_which_runs_again_on_the_head(tmp_path, cluster, daemon):
    config = _ray_config(tmp_path, cluster, resources={"cpus": 4}, search_space=_slow(0.4), max_trials=2, concurrency=2)
    exp_id = automl("submit", str(config), check=True).stdout.strip()
    worker = cluster.worker.node_id
    on_worker = wait_until(
        lambda: next((t for t in show(exp_id)["trials"] if t["node"] == worker and t["steps"] >= 1), None),
        "a trial reporting on the worker node",
    )
    cluster.kill_worker()
    try:
        view = wait_for_status(exp_id, "done", "failed", timeout=180)
    finally:
        cluster.add_worker()
    lost = next(t for t in view["trials"] if t["id"] == on_worker["id"])
    assert lost["status"] == "interrupted" and worker in lost["error"], lost
    rerun = next(t for t in view["trials"] if t["retry_of"] == lost["id"])
    assert rerun["status"] == "succeeded" and rerun["node"] != worker and rerun["params"] == lost["params"]
    assert view["status"] == "done"


GPU_TRIAL = RAY_TRIAL.replace("print('ran on'", "print('devices', os.environ['CUDA_VISIBLE_DEVICES'])\nprint('ran on'")


def test_trials_on_the_worker_avoid_its_gpu_another_user_runs_on_and_are_metered(tmp_path, cluster, daemon):
    write_trial(tmp_path, GPU_TRIAL)
    config = write_config(
        tmp_path,
        launcher={"name": "ray", "address": cluster.address, "resources": {WORKER_RESOURCE: 1}},
        resources={"cpus": 1, "gpus": 1},
        search_space=_slow(1.0),
        max_trials=2,
        concurrency=2,
    )
    exp_id = automl("submit", str(config), check=True).stdout.strip()
    ours = wait_until(lambda: _our_gpu_processes(exp_id), "a trial's process on a worker GPU in `automl gpus`")
    assert {(gpu["node"], gpu["index"]) for gpu in ours} == {(cluster.worker.node_id, 1)}
    view = wait_for_status(exp_id, "done")
    trials = view["trials"]
    assert [t["status"] for t in trials] == ["succeeded"] * 2, trials
    for t in trials:  # GPU 0 of the worker runs another user's process (FLEETS): Ray's first choice, never taken
        assert (t["node"], t["gpus"]) == (cluster.worker.node_id, [1]), t
        folder = daemon / "experiments" / exp_id / "trials" / str(t["id"])
        assert "devices 1\n" in (folder / STDOUT_FILE).read_text()
        assert t["gpu_seconds"] > 0 and t["energy_j"] > 0, t
    assert view["cost"]["gpu_seconds"] > 0


def test_a_trial_whose_gpus_on_its_node_stay_busy_waits_until_the_experiment_is_stopped(tmp_path, cluster, daemon):
    write_trial(tmp_path, RAY_TRIAL)
    config = write_config(  # both of the worker's GPUs per trial: its GPU 0 runs another user's process (FLEETS)
        tmp_path,
        launcher={"name": "ray", "address": cluster.address, "resources": {WORKER_RESOURCE: 1}},
        resources={"cpus": 1, "gpus": 2},
        max_trials=1,
        concurrency=1,
    )
    exp_id = automl("submit", str(config), check=True).stdout.strip()
    log = daemon / "daemon.log"
    waits = wait_until(lambda: "trial 1 waits" in log.read_text() and log.read_text(), "the trial to wait for GPUs")
    assert "GPU 0 of node" in waits and "other users' processes run on it" in waits
    assert [t["status"] for t in show(exp_id)["trials"]] == ["waiting"]
    automl("stop", exp_id, check=True)
    view = wait_for_status(exp_id, "stopped")
    assert [(t["status"], t["started"]) for t in view["trials"]] == [("killed", None)]
    assert not (daemon / "experiments" / exp_id / "trials" / "1").exists()


def _our_gpu_processes(exp_id: str) -> list[dict]:
    """The GPUs `automl gpus` shows a process of the experiment's trials on."""
    gpus = json.loads(automl("gpus", "--json", check=True).stdout)["gpus"]
    return [gpu for gpu in gpus if any((p["owner"] or {}).get("experiment") == exp_id for p in gpu["processes"])]


def test_a_trial_asking_for_resources_no_node_has_waits_where_stop_reaches_it(tmp_path, cluster, daemon):
    config = _ray_config(tmp_path, cluster, launcher={"resources": {"tpu": 1}}, max_trials=1)
    exp_id = automl("submit", str(config), check=True).stdout.strip()
    log = daemon / "daemon.log"
    waits = wait_until(lambda: "trial 1 waits" in log.read_text() and log.read_text(), "the trial to wait for Ray")
    assert "no node of the Ray cluster has CPU 1, tpu 1" in waits
    automl("stop", exp_id, check=True)
    view = wait_for_status(exp_id, "stopped")
    assert [(t["status"], t["started"]) for t in view["trials"]] == [("killed", None)]


def _reporting(exp_id: str, count: int) -> bool:
    trials = show(exp_id)["trials"]
    return sum(t["status"] == "running" and t["steps"] >= 1 for t in trials) == count


def test_a_cluster_that_goes_away_is_waited_for_and_its_trials_go_on_when_it_is_back(tmp_path, cluster, daemon):
    config = _ray_config(tmp_path, cluster, search_space=_slow(12), max_trials=2, concurrency=2)
    exp_id = automl("submit", str(config), check=True).stdout.strip()
    wait_until(lambda: _reporting(exp_id, 2), "two trials reporting")
    with cluster.control_store_frozen():
        waiting = wait_until(lambda: show(exp_id)["note"] or "", "the experiment to say why it waits", timeout=60)
        assert waiting.startswith("waiting for the Ray cluster") and cluster.address in waiting, waiting
        assert show(exp_id)["status"] == "running"
    view = wait_for_status(exp_id, "done", timeout=180)
    assert f"the Ray cluster at {cluster.address} answers again" in (daemon / "daemon.log").read_text()
    trials = view["trials"]
    assert [(t["id"], t["status"]) for t in trials] == [(1, "succeeded"), (2, "succeeded")], trials
    assert _stored_metrics(daemon, exp_id) == {1: list(range(STEPS + 1)), 2: list(range(STEPS + 1))}


def test_a_cluster_away_past_the_reconnect_timeout_fails_the_experiment_and_interrupts_its_trials(
    tmp_path, cluster, daemon
):
    config = _ray_config(
        tmp_path, cluster, launcher={"reconnect_timeout": 3}, search_space=_slow(30), max_trials=2, concurrency=2
    )
    exp_id = automl("submit", str(config), check=True).stdout.strip()
    wait_until(lambda: _reporting(exp_id, 2), "two trials reporting")
    with cluster.control_store_frozen():
        view = wait_for_status(exp_id, "failed", timeout=90)
        assert "unreachable for more than 3 s" in view["error"], view["error"]
        assert [t["status"] for t in view["trials"]] == ["interrupted"] * 2, view["trials"]
        assert marked_processes(exp_id, 1), "out of reach, the trial runs on at its node"
    wait_until(
        lambda: not marked_processes(exp_id, 1) and not marked_processes(exp_id, 2),
        "what the trials left running to be killed once the cluster is back",
        timeout=120,
    )
    wait_until(lambda: not _held_by(cluster, exp_id), "the trials' resources to go back to Ray")


def _held_by(cluster: TwoNodes, exp_id: str) -> list[str]:
    """The placement groups of an experiment that Ray still holds, asked by a driver of its own."""
    script = (
        "import ray, sys\nray.init(address=sys.argv[1], logging_level='ERROR')\n"
        "from ray.util.placement_group import placement_group_table\n"
        "print(' '.join(g['name'] for g in placement_group_table().values() if g['state'] != 'REMOVED'))"
    )
    listed = subprocess.run([sys.executable, "-c", script, cluster.address], capture_output=True, text=True, check=True)
    return [name for name in listed.stdout.split() if name.startswith(f"automl-{exp_id}-")]


def test_uploaded_code_runs_from_each_nodes_copy_of_the_working_dir(tmp_path, cluster, daemon):
    project = tmp_path / "project"
    project.mkdir()
    write_trial(project, "import os\nprint('cwd', os.getcwd())\nprint(open('data.txt').read())\ntrial.report_final(1)")
    (project / "data.txt").write_text("shipped with the code")
    config = write_config(
        project,
        launcher={"name": "ray", "address": cluster.address, "code": "upload"},
        resources={"cpus": 4},  # a node's every CPU: the two trials run on different nodes
        max_trials=2,
        concurrency=2,
    )
    exp_id = automl("submit", str(config), check=True).stdout.strip()
    view = wait_for_status(exp_id, "done")
    assert [t["status"] for t in view["trials"]] == ["succeeded"] * 2, view["trials"]
    assert len({t["node"] for t in view["trials"]}) == 2
    for t in view["trials"]:
        out = (daemon / "experiments" / exp_id / "trials" / str(t["id"]) / STDOUT_FILE).read_text()
        cwd = Path(out.split("cwd ", 1)[1].split("\n", 1)[0])
        assert cwd.parent.name == "code" and t["node"][:12] in cwd.parts and cwd != project, cwd
        assert "shipped with the code" in out


OLD_AGENT = """
import ray, sys
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
from automl.launchers.ray_agent import NodeAgent
ray.init(address=sys.argv[1], namespace="automl", logging_level="ERROR")
agent = ray.remote(NodeAgent).options(
    name=sys.argv[2], lifetime="detached", num_cpus=0,
    scheduling_strategy=NodeAffinitySchedulingStrategy(sys.argv[3], soft=False),
).remote(sys.argv[3], None)
ray.get(agent.groups.remote())
"""
AGENTS = """
import ray, sys
ray.init(address=sys.argv[1], logging_level="ERROR")
print(" ".join(a["name"] for a in ray.util.list_named_actors(all_namespaces=True) if a["namespace"] == "automl"))
"""


def test_an_agent_of_older_automl_code_keeping_no_trial_ends_once_its_node_gets_a_trial(tmp_path, cluster, daemon):
    worker = cluster.worker.node_id
    old = f"automl-agent-0.0.1+000000000000-{worker}"
    subprocess.run([sys.executable, "-c", OLD_AGENT, cluster.address, old, worker], check=True, timeout=120)
    config = _ray_config(tmp_path, cluster, launcher={"resources": {WORKER_RESOURCE: 1}}, max_trials=1)
    exp_id = automl("submit", str(config), check=True).stdout.strip()
    assert [t["status"] for t in wait_for_status(exp_id, "done")["trials"]] == ["succeeded"]
    listed = subprocess.run([sys.executable, "-c", AGENTS, cluster.address], capture_output=True, text=True, check=True)
    agents = listed.stdout.split()
    assert old not in agents
    assert [name for name in agents if name.endswith(worker)], agents  # the current code's agent of the worker
