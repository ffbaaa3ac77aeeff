"""Helpers shared by the benchmark scripts: running the real CLI against a throwaway data directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any


def run_cli(home: Path, *args: str) -> tuple[float, subprocess.CompletedProcess[str]]:
    """Run `automl ARGS` with AUTOML_HOME=home, as from a shell with this interpreter's environment activated
    (trials run with that shell's `python`); returns the wall time and the finished process."""
    env = {
        **os.environ,
        "AUTOML_HOME": str(home),
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
    }
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "automl", *args], capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"automl {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return wall, result


def show(home: Path, experiment: str) -> dict[str, Any]:
    """`automl show EXP --json`, parsed."""
    return json.loads(run_cli(home, "show", experiment, "--json")[1].stdout)
