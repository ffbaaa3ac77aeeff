"""Daemon footprint: idle CPU, memory with 10 experiments loaded, control latency while 8 trials report metrics.

Run: .venv/bin/python bench/daemon_footprint.py
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

import psutil
import yaml
from _common import run_cli

from automl.control.client import Client

REPORTING_TRIAL = (
    "import time\nfrom automl import trial\np = trial.get_params()\n"
    "for step in range(int(p['steps'])):\n    time.sleep(0.05)\n    trial.report(step * p['x'])\n"
    "trial.report_final(p['x'])\n"
)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder, home = Path(tmp), Path(tmp) / "home"
        (folder / "trial.py").write_text(REPORTING_TRIAL)
        run_cli(home, "daemon", "start")
        daemon = psutil.Process(int((home / "daemon.pid").read_text()))
        try:
            idle = _cpu_percent(daemon, seconds=10)
            print(f"idle daemon: {idle:.2f}% CPU over 10 s, RSS {daemon.memory_info().rss / 2**20:.0f} MiB")
            ids = [_submit(folder, home, f"loaded{i}", steps=100000, concurrency=1, max_trials=1) for i in range(10)]
            time.sleep(3)
            print(f"10 experiments loaded (10 trials running): RSS {daemon.memory_info().rss / 2**20:.0f} MiB")
            for exp_id in ids:
                run_cli(home, "stop", exp_id)
            _submit(folder, home, "reporting", steps=600, concurrency=8, max_trials=8)
            time.sleep(2)
            latencies = _control_latencies(home / "daemon.sock", count=1000)
            busy = _cpu_percent(daemon, seconds=5)
            print(
                f"control requests while 8 trials report 20 metrics/s each: p50 {_pct(latencies, 50):.2f} ms, "
                f"p99 {_pct(latencies, 99):.2f} ms, max {max(latencies):.2f} ms (n={len(latencies)}); "
                f"daemon CPU {busy:.1f}%"
            )
        finally:
            run_cli(home, "daemon", "stop")
            for proc in psutil.process_iter(["environ"]):
                try:
                    if (proc.info["environ"] or {}).get("AUTOML_TRIAL_DIR", "").startswith(str(home)):
                        proc.kill()
                except psutil.Error:
                    pass


def _submit(folder: Path, home: Path, name: str, steps: int, concurrency: int, max_trials: int) -> str:
    config = {
        "name": name,
        "command": "python trial.py",
        "tuner": {"name": "TPE"},
        "search_space": {"x": {"_type": "uniform", "_value": [0, 1]}, "steps": {"_type": "choice", "_value": [steps]}},
        "max_trials": max_trials,
        "concurrency": concurrency,
    }
    path = folder / f"{name}.yml"
    path.write_text(yaml.safe_dump(config))
    return run_cli(home, "submit", str(path))[1].stdout.strip()


def _cpu_percent(proc: psutil.Process, seconds: float) -> float:
    before = sum(proc.cpu_times()[:2])
    time.sleep(seconds)
    return 100 * (sum(proc.cpu_times()[:2]) - before) / seconds


def _control_latencies(socket_path: Path, count: int) -> list[float]:
    latencies = []
    with Client(socket_path) as client:
        for _ in range(count):
            start = time.perf_counter()
            client.request("status")
            latencies.append(1000 * (time.perf_counter() - start))
            time.sleep(0.002)
    return latencies


def _pct(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100)[q - 1] if q < 100 else max(values)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
