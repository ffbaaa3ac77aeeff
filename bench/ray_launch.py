"""Trials on a Ray cluster: throughput against the local launcher and Ray Tune, and start latency against local.

A real two-node Ray cluster on this machine (head and worker, 4 CPUs each, in a network namespace of its own, as in
the tests). Throughput: N trials that each sleep 1 s, 8 at a time (one CPU each: both nodes full), run by
`automl run` with the Ray launcher, by `automl run` on this machine, and by Ray Tune (a function trainable that runs
the same trial subprocess with the same files); the ideal is N / 8 s from first start to last end. Start latency:
a trial that writes the time as its first act, started one at a time through the launcher, from the call to
`start` to that first line, median over the runs (the Ray launcher's first start, which starts each node's agent,
is left out and reported apart).

Run (as root, with automl[ray] and ray[tune]): .venv/bin/python bench/ray_launch.py [--trials 200]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from _common import run_cli, show  # noqa: E402

from automl.launchers.base import METRICS_FILE, TrialSpec  # noqa: E402
from tests.ray_cluster import HEAD_RESOURCE, NODE_CPUS, WORKER_RESOURCE, two_node_cluster  # noqa: E402

CONCURRENCY = 2 * NODE_CPUS
TRIAL = "import time\nfrom automl import trial\ntrial.get_params()\ntime.sleep(1)\ntrial.report_final(1.0)\n"
FIRST_LINE = "import os, time; open(os.environ['AUTOML_METRICS_FILE'], 'a').write(repr(time.time()))"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--starts", type=int, default=30, help="trials started one at a time for the latency")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, two_node_cluster({HEAD_RESOURCE: [], WORKER_RESOURCE: []}) as nodes:
        folder = Path(tmp)
        (folder / "sleep_trial.py").write_text(TRIAL)
        ideal = args.trials / CONCURRENCY
        print(f"{args.trials} trials x 1 s sleep, concurrency {CONCURRENCY}: ideal {ideal:.1f} s")
        spans = {
            "automl, Ray launcher (2 nodes)": _automl_span(folder, args.trials, nodes.address),
            "automl, local launcher": _automl_span(folder, args.trials, None),
            "Ray Tune (2 nodes)": _tune_span(folder, args.trials, nodes.address),
        }
        for name, span in spans.items():
            print(f"{name}: first start to last end {span:.2f} s ({100 * (span / ideal - 1):+.1f}% over ideal)")
        local, ray_first, ray = asyncio.run(_latencies(folder, nodes.address, args.starts))
    print(f"start latency (start() to the trial's first line), median of {args.starts}:")
    print(f"  local {1000 * local:.1f} ms, Ray {1000 * ray:.1f} ms ({1000 * (ray - local):+.1f} ms)")
    print(f"  Ray, first start of this process (joins the cluster; the node agents already run): {ray_first:.2f} s")


def _automl_span(folder: Path, trials: int, address: str | None) -> float:
    """First start to last end of `automl run` of the sleeping trials (on the cluster when `address` is given)."""
    name = "ray-launch" if address else "local-launch"
    config: dict[str, Any] = {
        "name": name,
        "command": "python sleep_trial.py",
        "search_space": {"x": {"_type": "uniform", "_value": [0, 1]}},
        "tuner": {"name": "Random"},
        "max_trials": trials,
        "concurrency": CONCURRENCY,
        "resources": {"cpus": 1},
    }
    if address:
        config["launcher"] = {"name": "ray", "address": address}
    (folder / f"{name}.yml").write_text(yaml.safe_dump(config))
    run_cli(folder / "home", "run", str(folder / f"{name}.yml"))
    ran = show(folder / "home", name)["trials"]
    assert all(t["status"] == "succeeded" for t in ran), [t["error"] for t in ran if t["status"] != "succeeded"]
    return max(t["ended"] for t in ran) - min(t["started"] for t in ran)


def _tune_span(folder: Path, trials: int, address: str) -> float:
    """First start to last end of Ray Tune running the same trial subprocess, one CPU per trial."""
    import ray
    from ray import tune

    ray.init(address=address, log_to_driver=False, logging_level="WARNING")
    try:
        tuner = tune.Tuner(
            tune.with_resources(_trainable, {"cpu": 1}),
            param_space={"x": tune.uniform(0, 1), "script": str(folder / "sleep_trial.py")},
            tune_config=tune.TuneConfig(num_samples=trials, max_concurrent_trials=CONCURRENCY),
            run_config=tune.RunConfig(storage_path=str(folder / "tune"), verbose=0),
        )
        results = tuner.fit()
    finally:
        ray.shutdown()
    frame = [result.metrics for result in results]
    assert all(m["code"] == 0 for m in frame), frame
    return max(m["ended"] for m in frame) - min(m["started"] for m in frame)


def _trainable(config: dict[str, Any]) -> dict[str, float]:
    """A Tune trial: the same subprocess with the same files as an automl trial, its final result reported."""
    import subprocess

    from ray import tune

    started = time.time()
    trial_dir = Path(tempfile.mkdtemp())
    (trial_dir / "params.json").write_text(json.dumps({"x": config["x"]}))
    (trial_dir / METRICS_FILE).write_text("")
    env = {
        **os.environ,
        "AUTOML_PARAMS_FILE": str(trial_dir / "params.json"),
        "AUTOML_METRICS_FILE": str(trial_dir / METRICS_FILE),
        "AUTOML_TRIAL_DIR": str(trial_dir),
    }
    code = subprocess.run([sys.executable, config["script"]], env=env, cwd=trial_dir).returncode
    tune.report({"code": code, "started": started, "ended": time.time()})
    return {}


async def _latencies(folder: Path, address: str, starts: int) -> tuple[float, float, float]:
    """Median start latency on this machine and on the cluster, and the cluster's first start."""
    from automl.launchers.local import LocalLauncher
    from automl.launchers.ray_address import RayOptions
    from automl.launchers.ray_client import RayClusterLauncher

    local = await _latency(LocalLauncher(), folder / "local", starts)
    cluster = RayClusterLauncher(RayOptions(address))  # as the daemon starts trials: through its bridge process
    try:
        ray = await _latency(cluster, folder / "ray", starts + 1)
    finally:
        cluster.close()
        await cluster.bridge.close()
    return statistics.median(local), ray[0], statistics.median(ray[1:])


async def _latency(launcher: Any, root: Path, starts: int) -> list[float]:
    """Seconds from each `start` call to the trial's first line, one trial at a time."""
    latencies = []
    for trial_id in range(1, starts + 1):
        trial_dir = root / "experiments" / "lat" / "trials" / str(trial_id)
        spec = TrialSpec("lat", trial_id, [sys.executable, "-S", "-c", FIRST_LINE], root, trial_dir, {}, 1, [], {})
        called = time.time()
        handle = await launcher.start(spec)
        while not (first := (trial_dir / METRICS_FILE).read_text()):
            await handle.read_metrics(0, 0, "default")  # brings a remote trial's lines to this machine
            await asyncio.sleep(0.001)
        latencies.append(float(first) - called)
        await handle.wait()
        await handle.end_leftovers(0.0)
    return latencies


if __name__ == "__main__":
    try:
        main()
    except pytest.skip.Exception as e:  # the cluster cannot be made here: say why
        raise SystemExit(f"bench/ray_launch.py cannot run here: {e.msg}") from None
