"""Launch overhead: 100 trials that each sleep 1 s, 4 at a time; the ideal wall time is 25 s.

Run: .venv/bin/python bench/launch_overhead.py [--trials 100] [--concurrency 4]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import yaml
from _common import run_cli, show

TRIAL = "import time\nfrom automl import trial\ntrial.get_params()\ntime.sleep(1)\ntrial.report_final(1.0)\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "sleep_trial.py").write_text(TRIAL)
        config = {
            "name": "launch-overhead",
            "command": "python sleep_trial.py",
            "search_space": {"x": {"_type": "uniform", "_value": [0, 1]}},
            "tuner": {"name": "Random"},
            "max_trials": args.trials,
            "concurrency": args.concurrency,
        }
        (folder / "exp.yml").write_text(yaml.safe_dump(config))
        wall, _ = run_cli(folder / "home", "run", str(folder / "exp.yml"))
        trials = show(folder / "home", "launch-overhead")["trials"]
    ideal = args.trials / args.concurrency
    span = max(t["ended"] for t in trials) - min(t["started"] for t in trials)
    gaps = _gaps(trials, args.concurrency)
    print(f"{len(trials)} trials x 1 s sleep, concurrency {args.concurrency}: ideal {ideal:.1f} s")
    print(f"first start to last end: {span:.2f} s ({100 * (span / ideal - 1):+.1f}% over ideal)")
    print(f"whole `automl run` command: {wall:.2f} s ({100 * (wall / ideal - 1):+.1f}% over ideal)")
    print(f"trial run time (start to end, includes Python start-up): median {_median(_durations(trials)):.3f} s")
    print(f"gap between a trial's end and the next start on its slot: median {1000 * _median(gaps):.1f} ms")


def _durations(trials: list[dict]) -> list[float]:
    return [t["ended"] - t["started"] for t in trials]


def _gaps(trials: list[dict], slots: int) -> list[float]:
    ends = sorted(t["ended"] for t in trials)
    starts = sorted(t["started"] for t in trials)[slots:]
    return [s - e for s, e in zip(starts, ends, strict=False)]


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2] if ordered else float("nan")


if __name__ == "__main__":
    main()
