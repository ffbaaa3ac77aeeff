"""`automl show EXP` as a person reads it: a table that fits 80 columns, best first, and the params' importance."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.helpers import automl, show, write_config, write_trial

LONG = "learning_rate_of_the_optimizer"


@pytest.fixture
def columns(monkeypatch: pytest.MonkeyPatch) -> int:
    """The terminal's width the CLI is told about."""
    monkeypatch.setenv("COLUMNS", "80")
    return 80


def _finished_experiment(tmp_path) -> dict:
    write_trial(tmp_path, f"if params['k'] == 3:\n    sys.exit('boom: k is 3')\ntrial.report_final(params['{LONG}'])\n")
    space = {
        LONG: {"_type": "uniform", "_value": [0, 1]},
        "k": {"_type": "choice", "_value": [1, 2, 3]},
        "width": {"_type": "choice", "_value": [1234567, 7654321]},
    }
    automl("run", str(write_config(tmp_path, search_space=space, max_trials=8, concurrency=4)), check=True)
    return show("test")


def test_show_fits_80_columns_best_first_with_errors_on_their_own_line(tmp_path, home, columns):
    view = _finished_experiment(tmp_path)
    lines = automl("show", "test", check=True).stdout.splitlines()
    table = lines[lines.index(next(line for line in lines if line.startswith("TRIAL"))) :]
    assert all(len(line) <= columns for line in table), "\n".join(line for line in table if len(line) > columns)
    rows = [line.split() for line in table[1:] if not line.lstrip().startswith("!")]
    succeeded = sorted((t for t in view["trials"] if t["status"] == "succeeded"), key=lambda t: -t["value"])
    failed = [t for t in view["trials"] if t["status"] == "failed"]
    assert succeeded and failed, "the seed gives both outcomes"
    assert [int(r[0]) for r in rows] == [t["id"] for t in succeeded] + sorted(t["id"] for t in failed)
    assert any(f"{LONG[:20]}" in line and "…" in line for line in table), "a long row is cut to the width"
    for trial in failed:
        row = next(i for i, line in enumerate(table) if line.split()[:1] == [str(trial["id"])])
        assert table[row + 1].strip() == "! exited with code 1: boom: k is 3"


def test_show_top_wide_and_json(tmp_path, home, columns):
    view = _finished_experiment(tmp_path)
    text = automl("show", "test", "--top", "2", check=True).stdout.splitlines()
    table = text[text.index(next(line for line in text if line.startswith("TRIAL"))) :]
    assert [line.split()[0] for line in table[1:3]] == [str(view["best"]["id"]), table[2].split()[0]]
    assert table[-1] == f"(2 of {len(view['trials'])} trials; --top K for more, --wide for every column)"
    wide = automl("show", "test", "--wide", check=True).stdout
    assert "GPU-S" in wide and '"width": ' in wide, "every column, params in full"
    assert set(view) >= {"id", "trials", "best", "cost", "importance"}
    assert view["importance"] == {}, "8 trials are too few to tell"
    assert "importance needs 10 succeeded trials" in automl("show", "test", "--importance", check=True).stdout


def test_a_running_trial_shows_how_long_it_has_run(tmp_path, home, columns):
    write_trial(tmp_path, "time.sleep(60)\n")
    run = subprocess.Popen(
        [sys.executable, "-m", "automl", "run", str(write_config(tmp_path, max_trials=1, concurrency=1))],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=os.environ.copy(),
    )
    try:
        deadline = time.monotonic() + 30
        while not _has_running_trial() and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(1.1)
        row = next(line for line in automl("show", "test", check=True).stdout.splitlines() if "running" in line)
        took = row.split()[3]
        assert took.endswith("s") and took != "0s", row
    finally:
        run.send_signal(signal.SIGINT)
        run.wait(timeout=30)


def _has_running_trial() -> bool:
    result = automl("show", "test", "--json")
    return result.returncode == 0 and any(t["status"] == "running" for t in json.loads(result.stdout)["trials"])


def test_importance_finds_the_param_that_decides_the_value(tmp_path, home, columns):
    write_trial(tmp_path, "trial.report_final(params['x'])\n")
    space = {"x": {"_type": "uniform", "_value": [0, 1]}, "noise": {"_type": "uniform", "_value": [0, 1]}}
    config = write_config(tmp_path, search_space=space, max_trials=24, concurrency=6)
    automl("run", str(config), check=True)
    importance = show("test")["importance"]
    assert set(importance) == {"x", "noise"} and sum(importance.values()) == pytest.approx(1.0)
    assert importance["x"] > 0.8 > importance["noise"], importance
    text = automl("show", "test", "--importance", check=True).stdout.splitlines()
    bars = text[text.index(next(line for line in text if line.startswith("importance"))) + 1 :][:2]
    assert [line.split()[0] for line in bars] == ["x", "noise"]
    assert all(len(line) <= columns for line in bars)
    header = next(line for line in text if line.startswith("TRIAL"))
    assert header.endswith("PARAMS, most important first")
    assert next(line for line in text if line.split()[:1] == [str(show("test")["best"]["id"])]).split()[4][:2] == "x="
