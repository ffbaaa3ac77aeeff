"""The digits MLP with real trial processes: TPE alone, TPE + ASHA and automl's recommended set-up, best validation
error over time and epochs.

The simulated benchmark (bench/multifidelity.py) counts epochs on a virtual
clock; this one runs `automl run` with the real launcher on the same search
space (bench/digits_curve.py) and script (trials/digits_mlp.py, 27 epochs),
each run for the same wall-clock time, and reads the store afterwards. A
configuration counts once it has reported its 27th epoch; its value is the
validation error there. Besides the epochs, it shows what the simulation
leaves out: every trial pays for starting Python and PyTorch.

    python bench/digits_real.py                       # 2 seeds, 150 s per run (15 minutes)
    python bench/digits_real.py --seeds 1 --seconds 60 --methods "automl default"
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from digits_curve import EPOCHS, SPACE  # noqa: E402

from automl.store import Store  # noqa: E402

METHODS: dict[str, dict[str, Any] | None] = {
    "TPE": None,
    "TPE + ASHA": {"name": "ASHA", "args": {"min_resource": 1, "max_resource": EPOCHS, "reduction_factor": 3}},
    "automl default": {
        "name": "ASHA",
        "args": {"min_resource": 3, "max_resource": EPOCHS, "reduction_factor": 3, "brackets": 2},
        "learn_from": "rung",
    },
}
"""The tuner is TPE for each; "automl default" is the set-up docs/config.md recommends, on this problem's ladder."""
CHECKPOINTS = (0.25, 0.5, 0.75, 1.0)
EPOCH_CHECKPOINTS = (270, 675, 1350)  # 20, 50 and 100% of the simulated benchmark's budget


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--seconds", type=int, default=150, help="wall-clock length of each run")
    parser.add_argument("--concurrency", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--methods", nargs="+", choices=list(METHODS), default=list(METHODS))
    args = parser.parse_args()

    rows = []
    for method in args.methods:
        stopper = METHODS[method]
        runs = [_run(stopper, seed, args.seconds, args.concurrency) for seed in range(args.seeds)]
        rows.append((method, runs))
    print(
        f"Median over {args.seeds} seeds of the best validation error at {EPOCHS} epochs, "
        f"{args.concurrency} trials at once, {args.seconds} s per run.\n"
    )
    print(
        "| method | trials | epochs run | "
        + " | ".join(f"after {int(f * 100)}% of the time" for f in CHECKPOINTS)
        + " | "
        + " | ".join(f"after {e} epochs" for e in EPOCH_CHECKPOINTS)
        + " |"
    )
    print("|---" * (len(CHECKPOINTS) + len(EPOCH_CHECKPOINTS) + 3) + "|")
    for method, runs in rows:
        by_time = [
            statistics.median(_best_before(r["found"], r["start"] + f * args.seconds) for r in runs)
            for f in CHECKPOINTS
        ]
        by_epochs = [
            statistics.median(_best_before(r["found"], _when_spent(r["epoch_times"], e)) for r in runs)
            for e in EPOCH_CHECKPOINTS
        ]
        print(
            f"| {method} | {statistics.median(r['trials'] for r in runs):g} | "
            f"{statistics.median(len(r['epoch_times']) for r in runs):g} | "
            + " | ".join(f"{c:.4f}" for c in by_time + by_epochs)
            + " |"
        )


def _run(stopper: dict[str, Any] | None, seed: int, seconds: int, concurrency: int) -> dict[str, Any]:
    """One `automl run` in a fresh home: its start, trial count, (time, error) per full trial, and when each
    epoch (of any trial) was reported, in order."""
    with tempfile.TemporaryDirectory() as tmp:
        config = {
            "name": "digits-real",
            "command": [sys.executable, "digits_mlp.py"],
            "working_dir": str(ROOT / "trials"),
            "search_space": {**SPACE, "epochs": {"_type": "choice", "_value": [EPOCHS]}},
            "objective": {"mode": "maximize"},
            "tuner": {"name": "TPE", "args": {"seed": seed}},
            "stopper": stopper,
            "max_trials": 10_000,
            "max_duration": seconds,
            "concurrency": concurrency,
            "resources": {"cpus": 1, "gpus": 0},
        }
        path = Path(tmp) / "exp.json"
        path.write_text(json.dumps(config))
        env = {**os.environ, "AUTOML_HOME": str(Path(tmp) / "home")}
        subprocess.run(
            [sys.executable, "-m", "automl", "run", str(path)], env=env, check=True, stdout=subprocess.DEVNULL
        )
        store = Store(Path(tmp) / "home", readonly=True)
        try:
            experiment = store.experiments()[0]
            trials = store.trials(experiment.id)
            metrics = [m for t in trials for m in store.metrics(experiment.id, t.id) if m.kind == "intermediate"]
            found = sorted((m.time, 1.0 - m.value) for m in metrics if m.step == EPOCHS and m.value is not None)
            return {
                "start": experiment.created,
                "trials": len(trials),
                "found": found,
                "epoch_times": sorted(m.time for m in metrics),
            }
        finally:
            store.close()


def _best_before(found: list[tuple[float, float]], when: float) -> float:
    return min((error for at, error in found if at <= when), default=float("nan"))


def _when_spent(epoch_times: list[float], epochs: int) -> float:
    """When the run had reported `epochs` epochs in all (never, if it reported fewer)."""
    return epoch_times[epochs - 1] if len(epoch_times) >= epochs else -math.inf


if __name__ == "__main__":
    main()
