"""The digits demo: `automl run trials/digits_mlp.yml` (20 PyTorch trials, 2 at a time); wall time and best accuracy.

Run: .venv/bin/python bench/digits_demo.py
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from _common import run_cli, show

REPO = Path(__file__).resolve().parent.parent


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        wall, _ = run_cli(home, "run", str(REPO / "trials" / "digits_mlp.yml"))
        view = show(home, "digits-mlp")
    trials = view["trials"]
    done = [t for t in trials if t["status"] == "succeeded"]
    print(f"digits demo on {os.cpu_count()} cores: {len(trials)} trials ({len(done)} succeeded) in {wall:.1f} s")
    print(f"best validation accuracy: {view['best']['value']:.4f} (trial {view['best']['id']})")
    durations = sorted(t["ended"] - t["started"] for t in done)
    print(f"trial wall time: median {durations[len(durations) // 2]:.1f} s, max {durations[-1]:.1f} s")


if __name__ == "__main__":
    main()
