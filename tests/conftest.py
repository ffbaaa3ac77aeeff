"""Shared fixtures: a private data directory, a running daemon, the dashboard's sample store. Plain functions that
tests share are in tests/helpers.py."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import tui_sample_store as sample_store
from tests.helpers import kill_leftover_trials, running_daemon


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


@pytest.fixture
def daemon(home: Path) -> Iterator[Path]:
    """A started daemon for one test (its home); stopped, and the trials it left ended, afterwards."""
    with running_daemon(home):
        yield home


@pytest.fixture
def store_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A data directory holding a running and a finished experiment with fixed values; times shown in UTC."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    home = tmp_path / "home"
    sample_store.fill(home)
    sample_store.fill_finished(home)
    log = home / "experiments" / sample_store.EXPERIMENT_ID / "trials" / "24" / "stdout.log"
    log.parent.mkdir(parents=True)
    log.write_text("".join(f"epoch {n:2d}  loss {1.5 / (n + 1):.4f}  acc {0.5 + n / 60:.4f}\n" for n in range(18)))
    yield home
    monkeypatch.delenv("TZ")
    time.tzset()


@pytest.fixture
def leftover_trials_killed(home: Path) -> Iterator[Path]:
    """After the test, the trials of its home that still run are killed, with every process they started, also
    the ones that left their process group (a test that failed may leave them)."""
    yield home
    kill_leftover_trials(home)
