"""`automl gpus`: the GPUs as the scheduler sees them, and why each would or would not take a trial now."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from ..paths import home

LOCAL_SAMPLES = 3  # without a daemon, load is averaged over this many samples...
LOCAL_EVERY = 0.25  # ...this many seconds apart


def add_command(sub: Any) -> None:
    """Register `automl gpus` on the main parser's subcommands."""
    gpus = sub.add_parser("gpus", help="the GPUs: load, processes (ours and others'), and whether each takes a trial")
    gpus.add_argument("--json", action="store_true", help="machine-readable output")
    gpus.set_defaults(handler=_cmd_gpus)


def _cmd_gpus(args: argparse.Namespace) -> int:
    gpus, source = _from_daemon()
    if gpus is None:
        gpus, source = _measure_here(), "measured now (no daemon runs: no trials of ours are placed)"
    if args.json:
        print(json.dumps({"source": source, "gpus": gpus}, indent=2))
        return 0
    if not gpus:
        print("no GPUs: NVML finds no driver or no device here; trials run on the CPU")
        return 0
    print(f"GPUs, {source}")
    print(f"{'GPU':>3} {'NAME':<22} {'LOAD':>5} {'10s':>5} {'OTHERS':>6} {'MEMORY (MiB)':>15} {'POWER':>6}  NEW TRIAL?")
    node = None
    for gpu in gpus:
        memory = f"{gpu['memory_used_mib']:.0f}/{gpu['memory_total_mib']:.0f}"
        power = "-" if gpu["power_w"] is None else f"{gpu['power_w']:.0f}W"
        verdict = "yes" if gpu["takes_trial"] else f"no: {gpu['reason']}"
        load = f"{gpu['utilization']:>4.0f}% {gpu['utilization_window']:>4.0f}% {gpu['foreign_utilization']:>5.0f}%"
        if gpu.get("node") != node:
            node = gpu.get("node")
            print(f"node {node} ({gpu['node_address']})" if node else "this machine")
        print(f"{gpu['index']:>3} {gpu['name'][:22]:<22} {load} {memory:>15} {power:>6}  {verdict}")
        for name, reason in gpu["verdicts"].items():
            if name != "default":
                print(f"{'':>4}experiment {name}: {'takes its next trial' if reason is None else reason}")
        for p in gpu["processes"]:
            owner = p["owner"]
            whose = "another user" if owner is None else f"experiment {owner['experiment']} trial {owner['trial']}"
            load = "" if p["utilization"] is None else f" {p['utilization']:.0f}%"
            print(f"{'':>4}pid {p['pid']:<8} {p['memory_mib']:>8.0f} MiB{load}  {whose}")
    return 0


def _from_daemon() -> tuple[list[dict[str, Any]] | None, str]:
    from ..control.client import Client, DaemonNotRunning
    from ..paths import socket_path

    try:
        with Client(socket_path(home())) as client:
            return client.request("gpus")["gpus"], "as the daemon's scheduler sees them"
    except DaemonNotRunning:
        return None, ""


def _measure_here() -> list[dict[str, Any]]:
    from ..config.model import GpuPolicy
    from ..gpu.pool import GpuPool, report
    from ..gpu.probe import open_probe

    pool = GpuPool(open_probe())
    if not pool.count:
        return []
    for n in range(LOCAL_SAMPLES):
        if n:
            time.sleep(LOCAL_EVERY)
        pool.sample()
    return report(pool, {"default": pool.slots("default", GpuPolicy(), 1)})
