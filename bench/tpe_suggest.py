"""Suggestion latency: feed a tuner N results through ask/tell, then time further asks with trials pending.

Run: .venv/bin/python bench/tpe_suggest.py [--tuner TPE] [--observations 500] [--asks 200] [--pending 4]
Prints the median and 95th percentile per `ask` in ms, and a Markdown table row for the docs.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import time
from typing import Any

from automl.tuners import create_tuner

MIXED_SPACE: dict[str, Any] = {
    "lr": {"_type": "loguniform", "_value": [1e-5, 1e-1]},
    "weight_decay": {"_type": "qloguniform", "_value": [1e-6, 1e-2, 1e-6]},
    "dropout": {"_type": "uniform", "_value": [0.0, 0.6]},
    "layers": {"_type": "randint", "_value": [1, 9]},
    "batch_size": {"_type": "quniform", "_value": [16, 256, 16]},
    "activation": {"_type": "choice", "_value": ["relu", "gelu", "silu", "tanh"]},
    "optimizer": {
        "_type": "choice",
        "_value": [
            {"_name": "sgd", "momentum": {"_type": "uniform", "_value": [0.5, 0.99]}},
            {"_name": "adam", "beta2": {"_type": "uniform", "_value": [0.9, 0.9999]}},
        ],
    },
}
NUMERIC_SPACE: dict[str, Any] = {
    "dropout": {"_type": "uniform", "_value": [0.0, 0.6]},
    "layers": {"_type": "randint", "_value": [1, 9]},
    "batch_size": {"_type": "quniform", "_value": [16, 256, 16]},
    "width": {"_type": "choice", "_value": [64, 128, 256, 512]},
}
NUMERIC_ONLY = {"GPTuner", "MetisTuner"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tuner", default="TPE")
    parser.add_argument("--observations", type=int, default=500, help="results fed before timing")
    parser.add_argument("--asks", type=int, default=200, help="timed asks")
    parser.add_argument("--pending", type=int, default=4, help="trials kept running while timing")
    options = parser.parse_args()
    space = NUMERIC_SPACE if options.tuner in NUMERIC_ONLY else MIXED_SPACE
    tuner = create_tuner(options.tuner, {}, space, "minimize")
    for key in range(options.observations):
        tuner.tell(key, _objective(tuner.ask(key)))
    pending: list[int] = []
    timings = []
    for key in range(options.observations, options.observations + options.asks):
        start = time.perf_counter()
        params = tuner.ask(key)
        timings.append(1000 * (time.perf_counter() - start))
        pending.append(key)
        if len(pending) > options.pending:
            tuner.tell(pending.pop(0), None)
        assert params is not None
    median, p95 = statistics.median(timings), _percentile(timings, 95)
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs"
    print(
        f"{options.tuner}: {options.asks} asks after {options.observations} results, "
        f"{options.pending} pending ({len(space)} parameters, {machine})"
    )
    print(f"median {median:.2f} ms, p95 {p95:.2f} ms")
    print()
    print("| Tuner | Results fed | Pending | Median ms | p95 ms |")
    print("| --- | --- | --- | --- | --- |")
    print(f"| {options.tuner} | {options.observations} | {options.pending} | {median:.2f} | {p95:.2f} |")


def _objective(params: dict[str, Any]) -> float:
    loss = (math.log10(params.get("lr", 1e-3)) + 3) ** 2 + (params["dropout"] - 0.2) ** 2
    loss += abs(params["layers"] - 4) / 4 + abs(params["batch_size"] - 64) / 256
    if isinstance(params.get("optimizer"), dict):
        loss += 0.0 if params["optimizer"]["_name"] == "adam" else 0.3
    return loss


def _percentile(values: list[float], percent: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(percent / 100 * len(ordered)) - 1)]


if __name__ == "__main__":
    main()
