"""`automl show` and parameter importance on a large experiment: 10,000 trials with 20 parameters.

Fills a store with the dashboard's sample experiment (tests/tui_sample_store.py) grown to `--trials` trials and
`--params` parameters, then times: the importance computation as the dashboard's store reader runs it (off the
UI thread) and `automl show EXP`, `show EXP --json` and `show EXP --importance --top 20` as a user runs them
(a fresh process each, so Python's start-up is included, after one untimed run that caches the compiled
modules as an installed package has them). Targets: importance under 1 s, show under 1 s.

Run: .venv/bin/python bench/show_importance.py [--trials 10000] [--params 20] [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from automl.store import Store  # noqa: E402
from automl.views import importance_of  # noqa: E402
from tests import tui_sample_store as sample_store  # noqa: E402  (the sample data lives with the tests)


def main() -> None:
    """Fill the store, then time importance and the show commands `--repeat` times each."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=10_000)
    parser.add_argument("--params", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        began = time.perf_counter()
        exp_id = sample_store.fill(
            home, trials=args.trials, steps=3, running=8, max_trials=args.trials, extra_params=args.params - 4
        )
        print(f"store: {args.trials} trials, {args.params} params, written in {time.perf_counter() - began:.1f} s")
        store = Store.open_for_reading(home)
        experiment = store.find_experiment(exp_id)
        took, cpu = [], []
        for _ in range(args.repeat):
            start, used = time.perf_counter(), time.process_time()
            trials = store.trials(exp_id)
            shares = importance_of(experiment, trials)
            took.append(time.perf_counter() - start)
            cpu.append(time.process_time() - used)
        store.close()
        print(
            f"importance (read the trials and compute, {len(shares)} params): wall {_summary(took)}; "
            f"CPU {_summary(cpu)}"
        )
        environment = {**os.environ, "AUTOML_HOME": str(home), "COLUMNS": "80", "PYTHONPATH": str(ROOT)}
        environment.pop("PYTHONDONTWRITEBYTECODE", None)  # compiled modules are cached, as in an installed package
        for extra in ([], ["--json"], ["--importance", "--top", "20"]):
            _show(exp_id, extra, environment)  # once untimed: the compiled modules and the store's pages are cached
            took, cpu = [], []
            for _ in range(args.repeat):
                start, used = time.perf_counter(), _children_cpu()
                _show(exp_id, extra, environment)
                took.append(time.perf_counter() - start)
                cpu.append(_children_cpu() - used)
            print(f"automl show {' '.join([exp_id, *extra])}: wall {_summary(took)}; CPU {_summary(cpu)}")


def _show(exp_id: str, extra: list[str], environment: dict[str, str]) -> None:
    """Run `automl show EXP` with `extra` options in a fresh process, its output discarded."""
    subprocess.run(
        [sys.executable, "-m", "automl", "show", exp_id, *extra], env=environment, check=True, stdout=subprocess.DEVNULL
    )


def _children_cpu() -> float:
    """CPU seconds (user and system) of the finished child processes so far: unlike wall time, not stretched by
    other work on the machine."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _summary(seconds: list[float]) -> str:
    return f"median {statistics.median(seconds):.3f} s, max {max(seconds):.3f} s (n={len(seconds)})"


if __name__ == "__main__":
    main()
