"""Shared fixtures: a private data directory, and running the real `automl` CLI in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def activated_venv(monkeypatch: pytest.MonkeyPatch) -> None:
    """Trials run with the environment of the shell that ran automl: the tests' shell has this interpreter's
    environment activated, so `python` in a trial command is the one with automl, nni and torch."""
    monkeypatch.setenv("PATH", os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh $AUTOML_HOME for one test."""
    path = tmp_path / "home"
    monkeypatch.setenv("AUTOML_HOME", str(path))
    return path


def automl(*args: str, timeout: float = 300, check: bool = False, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """Run `automl ARGS` as a user would (a real process), capturing its output."""
    result = subprocess.run(
        [sys.executable, "-m", "automl", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=os.environ.copy(),
        **kwargs,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"automl {' '.join(args)} exited {result.returncode}\n{result.stdout}\n{result.stderr}")
    return result


def show(experiment: str) -> dict[str, Any]:
    """`automl show EXP --json`, parsed."""
    return json.loads(automl("show", experiment, "--json", check=True).stdout)


def write_trial(folder: Path, body: str, name: str = "trial.py") -> Path:
    """A Python trial script with `from automl import trial` and `params` already set up."""
    script = folder / name
    script.write_text(
        "import sys, time\nfrom automl import trial\nparams = trial.get_params()\n" + textwrap.dedent(body)
    )
    return script


def write_config(folder: Path, name: str = "exp.yml", **fields: Any) -> Path:
    """An experiment config with small defaults, overridden by `fields`."""
    config: dict[str, Any] = {
        "name": "test",
        "command": "python trial.py",
        "search_space": {"x": {"_type": "uniform", "_value": [0, 1]}, "k": {"_type": "choice", "_value": [1, 2, 3]}},
        "tuner": {"name": "Random", "args": {"seed": 1}},
        "max_trials": 4,
        "concurrency": 2,
    }
    config.update(fields)
    path = folder / name
    path.write_text(yaml.safe_dump(config))
    return path
