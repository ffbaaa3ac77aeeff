"""The store's schema version drives its migrations: a store an older automl wrote is brought up to date when it is
opened, keeping its rows; one a newer automl wrote is refused with a message saying so."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from automl.errors import UserError
from automl.store import DB_NAME, SCHEMA_VERSION, Store
from tests.helpers import automl

# The schema of version 1, as the first released automl wrote it.
VERSION_1 = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE experiments (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, status TEXT NOT NULL, config TEXT NOT NULL, config_path TEXT,
    host TEXT NOT NULL DEFAULT 'foreground', created REAL NOT NULL, ended REAL, error TEXT
);
CREATE TABLE trials (
    experiment_id TEXT NOT NULL REFERENCES experiments(id), id INTEGER NOT NULL, params TEXT NOT NULL,
    status TEXT NOT NULL, retry_of INTEGER, attempt INTEGER NOT NULL DEFAULT 0, tuner_key INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL, started REAL, ended REAL, pid INTEGER, pid_created REAL, gpus TEXT NOT NULL DEFAULT '[]',
    exit_code INTEGER, error TEXT, value REAL, metrics_offset INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (experiment_id, id)
);
CREATE TABLE metrics (
    experiment_id TEXT NOT NULL, trial_id INTEGER NOT NULL, seq INTEGER NOT NULL, kind TEXT NOT NULL, step INTEGER,
    value REAL, raw TEXT NOT NULL, time REAL NOT NULL, PRIMARY KEY (experiment_id, trial_id, seq)
);
"""
CONFIG = {"name": "old", "objective": {"mode": "maximize"}}


def write_store(home: Path, version: int) -> None:
    """A data directory holding a store written at `version`: one done experiment with one succeeded trial."""
    home.mkdir(mode=0o700, exist_ok=True)
    conn = sqlite3.connect(home / DB_NAME)
    conn.executescript(VERSION_1)
    conn.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(version),))
    conn.execute(
        "INSERT INTO experiments (id, name, status, config, created, ended) VALUES (?, ?, ?, ?, ?, ?)",
        ("abc123", "old", "done", json.dumps(CONFIG), 1.0, 2.0),
    )
    conn.execute(
        "INSERT INTO trials (experiment_id, id, params, status, created, started, ended, value) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        ("abc123", 1, json.dumps({"x": 0.5}), "succeeded", 1.0, 1.0, 2.0, 0.75),
    )
    conn.commit()
    conn.close()


def columns(home: Path, table: str) -> set[str]:
    conn = sqlite3.connect(home / DB_NAME)
    try:
        return {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
    finally:
        conn.close()


def test_a_version_1_store_is_migrated_on_open_and_keeps_its_rows(tmp_path: Path) -> None:
    home = tmp_path / "data"
    write_store(home, 1)
    assert "decision" not in columns(home, "trials")
    old = Store(home, readonly=True)
    assert old.find_experiment("abc123").note is None, "a reader of an old store sees the missing columns as None"
    old.close()
    store = Store(home)
    assert store._schema_version() == SCHEMA_VERSION
    assert {"gpu_seconds", "cost", "decision"} <= columns(home, "trials")
    assert {"note", "environment", "stop_reason", "host_pid", "host_started"} <= columns(home, "experiments")
    (trial,) = store.trials("abc123")
    assert (trial.params, trial.value, trial.gpu_seconds) == ({"x": 0.5}, 0.75, None)
    store.trial_usage(trial, {"gpu_seconds": 3.0, "cost": 0.5})
    store.close()
    again = Store(home)
    assert again.trials("abc123")[0].gpu_seconds == 3.0, "opening a current store again changes nothing"
    again.close()


def test_a_store_from_a_newer_automl_is_refused_for_writing_and_reading(tmp_path: Path) -> None:
    home = tmp_path / "data"
    write_store(home, SCHEMA_VERSION + 1)
    for readonly in (False, True):
        with pytest.raises(UserError, match=f"written by a newer automl \\(schema version {SCHEMA_VERSION + 1}"):
            Store(home, readonly=readonly)
    assert "decision" not in columns(home, "trials"), "nothing was changed"


def test_the_cli_says_the_store_is_newer_and_exits_2(tmp_path: Path, home: Path) -> None:
    write_store(home, SCHEMA_VERSION + 1)
    result = automl("ls")
    assert result.returncode == 2 and "upgrade automl" in result.stderr, result.stderr


def test_a_store_whose_first_writer_has_not_made_its_tables_yet_reads_as_empty(home):
    home.mkdir(mode=0o700)
    (home / DB_NAME).touch(mode=0o600)  # the file exists; the schema's transaction has not committed yet
    listed = automl("ls", "--json")
    assert (listed.returncode, json.loads(listed.stdout or "null")) == (0, []), listed.stderr
