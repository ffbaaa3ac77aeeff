"""A store filled with one deterministic experiment (fixed ids, times and values), and the dashboard on it with a
stand-in daemon, for the dashboard's snapshot tests and benchmarks."""

from __future__ import annotations

import math
import random
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from automl.config.model import CostPolicy
from automl.store import Metric, Store
from automl.usage import TrialUsage
from tests.helpers import wait_until_async

if TYPE_CHECKING:
    from tui.app import DashboardApp

NOW = 1_764_000_000.0
"""The moment the sample is taken at (2025-11-24 16:00 UTC)."""

EXPERIMENT_ID = "3fa1c2d9"

PRICES = CostPolicy(price_per_kwh=0.30, price_per_gpu_hour=0.50, currency="EUR")
"""What the sample experiment's trials are priced at."""

SEARCH_SPACE = {
    "lr": {"_type": "loguniform", "_value": [1e-4, 1e-1]},
    "batch_size": {"_type": "choice", "_value": [32, 64, 128, 256]},
    "dropout": {"_type": "uniform", "_value": [0.0, 0.5]},
    "optimizer": {"_type": "choice", "_value": ["sgd", "adam", "adamw"]},
}


def fill(
    home: Path,
    trials: int = 24,
    steps: int = 30,
    running: int = 3,
    gpus: int = 2,
    name: str = "resnet-cifar",
    exp_id: str = EXPERIMENT_ID,
    max_trials: int = 40,
    seed: int = 7,
    prices: CostPolicy = PRICES,
    extra_params: int = 0,
    nodes: Sequence[str | None] = (),
) -> str:
    """Write an experiment of `trials` trials (the last `running` still running) with learning curves of up to
    `steps` reports each into `home`'s store, its trials priced at `prices`, with `extra_params` more uniform
    parameters `p00`, `p01`, ... besides the four of SEARCH_SPACE, trial n run on node `nodes[n % len(nodes)]`
    (None: the daemon's machine, as all are without `nodes`); returns its id."""
    rng = random.Random(seed)
    store = Store(home)
    store.conn.execute("PRAGMA synchronous=OFF")
    config = _config(name, max_trials, gpus, prices)
    extra = [f"p{i:02d}" for i in range(extra_params)]
    config["search_space"] = {**SEARCH_SPACE, **{p: {"_type": "uniform", "_value": [0, 1]} for p in extra}}
    created_id = store.create_experiment(name, config, f"/home/ada/{name}.yml", host="daemon")
    store.conn.execute("UPDATE experiments SET id=?, created=? WHERE id=?", (exp_id, NOW - 7200, created_id))
    start = NOW - 7000
    span = 6900 / max(1, trials)
    for n in range(trials):
        params = {
            "lr": round(10 ** rng.uniform(-4, -1), 6),
            "batch_size": rng.choice([32, 64, 128, 256]),
            "dropout": round(rng.uniform(0, 0.5), 3),
            "optimizer": rng.choice(["sgd", "adam", "adamw"]),
            **{p: round(rng.random(), 4) for p in extra},
        }
        is_running = n >= trials - running
        trial = store.add_trial(exp_id, params, n, [n % gpus] if gpus else [])
        began = start + n * span
        store.trial_started(trial, 4_100_000 + n, None, started=began, node=nodes[n % len(nodes)] if nodes else None)
        quality = 0.55 + 0.4 * rng.random()
        reported = steps if not is_running else steps // 2 + n % 5
        outcome = _outcome(n)
        if outcome in ("failed", "killed", "early_stopped"):
            reported = max(2, reported // 3)
        curve = [quality * (1 - math.exp(-(s + 1) / 6)) + rng.uniform(-0.01, 0.01) for s in range(reported)]
        store.add_metrics(
            trial,
            [Metric(s, "intermediate", s + 1, v, {"default": v}, began + 10 * (s + 1)) for s, v in enumerate(curve)],
            0,
        )
        if is_running:
            store.trial_usage(trial, _usage(NOW - began, gpus > 0, prices))
            continue
        ended = began + 10 * reported + 5
        value = curve[-1] if outcome == "succeeded" else None
        if value is not None:
            store.add_metrics(trial, [Metric(reported, "final", None, value, {"default": value}, ended)], 0)
        store.trial_ended(
            trial,
            outcome,
            0 if outcome == "succeeded" else 1,
            _ERRORS.get(outcome),
            value,
            usage=_usage(ended - began, gpus > 0, prices),
        )
        store.conn.execute("UPDATE trials SET ended=? WHERE experiment_id=? AND id=?", (ended, exp_id, trial.id))
    store.conn.execute("UPDATE trials SET created=started WHERE experiment_id=?", (exp_id,))
    store.close()
    return exp_id


def fill_finished(home: Path, name: str = "mlp-digits", exp_id: str = "9b07e4aa") -> str:
    """A second, finished experiment without prices (its cost is shown in GPU-hours), so that the overview shows
    more than one."""
    fill(
        home, trials=8, steps=12, running=0, gpus=1, name=name, exp_id=exp_id, max_trials=8, seed=3, prices=CostPolicy()
    )
    store = Store(home)
    store.conn.execute(
        "UPDATE experiments SET status='done', created=?, ended=? WHERE id=?", (NOW - 86400, NOW - 80000, exp_id)
    )
    store.close()
    return exp_id


def gpu_sample(tick: int, gpus: int = 2, trials: int = 24, running: int = 3) -> dict[str, Any]:
    """The `gpu_sample` event the daemon would send at sample number `tick` for a store `fill`ed with these
    numbers: GPU 0 shared with another user, the running trials spread over the GPUs."""
    samples = []
    for index in range(gpus):
        processes: list[dict[str, Any]] = [
            {
                "pid": 4_100_000 + n,
                "memory_mib": 3900.0 + 50 * (n % 24),
                "utilization": 40.0,
                "owner": {"experiment": EXPERIMENT_ID, "trial": n + 1},
            }
            for n in range(trials - running, trials)
            if n % gpus == index
        ]
        if index == 0:
            processes.append({"pid": 31337, "memory_mib": 9800.0, "utilization": 35.0, "owner": None})
        wave = 0.5 + 0.5 * math.sin(tick / 5 + index)
        utilization = min(100.0, 25 + 70 * wave if processes else 0.0)
        samples.append(
            {
                "index": index,
                "name": "NVIDIA RTX A6000",
                "utilization": round(utilization),
                "memory_used_mib": sum(p["memory_mib"] for p in processes),
                "memory_total_mib": 49140.0,
                "power_w": round(70 + 2.2 * utilization),
                "energy_j": 1e6 + 300.0 * tick,
                "processes": processes,
            }
        )
    return {"v": 1, "event": "gpu_sample", "experiment": None, "time": NOW - 2 * (60 - tick), "data": {"gpus": samples}}


_ERRORS = {
    "failed": "exit code 1: RuntimeError: CUDA out of memory",
    "killed": "killed by user",
    "early_stopped": "stopped early by ASHA at step 10",
}


def _usage(seconds: float, on_gpu: bool, prices: CostPolicy) -> dict[str, float]:
    """What a trial of `seconds` uses: one GPU at 180 W, three CPU cores; priced at `prices`."""
    gpu_seconds = seconds if on_gpu else 0.0
    return (
        TrialUsage(
            gpu_seconds=gpu_seconds,
            energy_j=gpu_seconds * 180.0,
            cpu_seconds=3 * seconds,
            peak_rss_mib=2900.0,
            gpu_memory_mib=4100.0 if on_gpu else 0.0,
        )
        .priced(prices)
        .as_dict()
    )


def _outcome(n: int) -> str:
    if n % 11 == 5:
        return "failed"
    if n % 13 == 7:
        return "early_stopped"
    if n % 17 == 9:
        return "killed"
    return "succeeded"


def _config(name: str, max_trials: int, gpus: int, prices: CostPolicy) -> dict[str, Any]:
    return {
        "name": name,
        "command": "python train.py",
        "working_dir": "/home/ada",
        "search_space": SEARCH_SPACE,
        "search_space_file": None,
        "objective": {"metric": "accuracy", "mode": "maximize"},
        "tuner": {"name": "TPE", "args": {}},
        "max_trials": max_trials,
        "max_duration": None,
        "concurrency": 3,
        "trial_timeout": None,
        "retries": 0,
        "rerun_interrupted": True,
        "resources": {"cpus": None, "gpus": 1 if gpus else 0},
        "gpu": {"indices": None, "max_trials_per_gpu": 1},
        "env": {},
        "cost": prices.model_dump(),
    }


class FixedDaemon:
    """A daemon stand-in: answers `status`, sends a minute of GPU samples, then nothing until closed."""

    def __init__(self) -> None:
        self.closed = threading.Event()

    def status(self) -> dict[str, Any]:
        """A running daemon with two GPUs."""
        return {"running": True, "pid": 4242, "gpus": 2, "experiments": [EXPERIMENT_ID]}

    def events(self) -> Iterator[dict[str, Any]]:
        """30 GPU samples, then silence."""
        yield from (gpu_sample(tick) for tick in range(30))
        self.closed.wait()

    def request(self, op: str, **args: Any) -> Any:
        """Answered with an empty result."""
        return {}

    def close(self) -> None:
        """End `events()`."""
        self.closed.set()


WORKER_NODE = "5c1f0e7a9d2b4c38a1e6f0b7d9c2a4e8f1b3d5c7e9a0b2c4d6e8f0a1"
"""The Ray node id of the cluster's worker node in `ClusterDaemon`'s answers."""


class ClusterDaemon(FixedDaemon):
    """A daemon stand-in on a cluster: this machine's two GPUs as FixedDaemon samples them, and, in its `gpus`
    answer, two more GPUs of a worker node, the first used by another user and so taking no trial."""

    def request(self, op: str, **args: Any) -> Any:
        """The `gpus` answer: this machine's GPUs, then the worker node's; anything else an empty result."""
        if op != "gpus":
            return {}
        here = [{**gpu, "takes_trial": True, "reason": None} for gpu in gpu_sample(29)["data"]["gpus"]]
        there = [
            {
                **gpu,
                "name": "NVIDIA A100-SXM4-80GB",
                "node": WORKER_NODE,
                "node_address": "10.0.0.7",
                "processes": [process for process in gpu["processes"] if process["owner"] is None],
                "takes_trial": gpu["index"] == 1,
                "reason": None if gpu["index"] == 1 else "another user's process uses 35% of it",
            }
            for gpu in gpu_sample(12)["data"]["gpus"]
        ]
        return {"gpus": here + there}


def dashboard(home: Path, experiment: str | None = None) -> DashboardApp:
    """The app on the sample store, its clock stopped at the sample's moment. The app is imported here, so that
    filling a sample store does not need the dashboard."""
    from tui.app import DashboardApp

    return DashboardApp(home, link=FixedDaemon(), experiment=experiment, clock=lambda: NOW, export_dir=home)


async def loaded(pilot: Any) -> None:
    """Wait until the store and all GPU samples are in, then draw everything."""
    app = pilot.app

    def ready() -> bool:
        return (
            app.state.loaded
            and app.state.connected
            and len(app.state.gpus) == 2
            and all(len(g.utilization) == 30 for g in app.state.gpus.values())
            and (app.state.open_id is None or any(t.steps for t in app.state.trials.values()))
        )

    await wait_until_async(ready, "the sample store and all GPU samples in the app", timeout=30, pause=pilot.pause)
    app.redraw(force=True)
    await pilot.pause()


def notifications(app: DashboardApp) -> list[tuple[str, str]]:
    """What the app tells the user from now on, as (message, severity), in order."""
    said: list[tuple[str, str]] = []
    notify = app.notify

    def recording(message: str, **kwargs: Any) -> None:
        said.append((message, kwargs.get("severity", "information")))
        notify(message, **kwargs)

    app.notify = recording  # type: ignore[method-assign]
    return said
