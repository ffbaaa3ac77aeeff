"""`automl rm EXP...`: deletes experiments (store rows and folders) after a confirmation or with --yes; a running
one only with --force, which stops it first."""

from __future__ import annotations

import json
import os
import signal
import time

import psutil
import pytest

from automl.store import Store
from tests.helpers import automl, show, write_config, write_trial


def _finished(tmp_path, name: str) -> str:
    write_trial(tmp_path, "trial.report_final(params['x'])\n")
    config = write_config(tmp_path, f"{name}.yml", max_trials=2)
    config.write_text(config.read_text().replace("name: test", f"name: {name}"))
    automl("run", str(config), check=True)
    return show(name)["id"]


def test_rm_deletes_rows_and_folders_after_a_confirmation(tmp_path, home):
    keep, gone = _finished(tmp_path, "keep"), _finished(tmp_path, "gone")
    asked = automl("rm", "gone", stdin=open(os.devnull))
    assert asked.returncode == 2 and "pass --yes" in asked.stderr, "no terminal to ask on: nothing without --yes"
    unknown = automl("rm", "gone", "nope", "--yes")
    assert unknown.returncode == 2 and "nope" in unknown.stderr
    assert show("gone")["id"] == gone, "an unknown name deletes nothing"
    result = automl("rm", "gone", "--yes", check=True)
    assert result.stdout.strip() == f"rm: deleted experiment gone [{gone}] (2 trials)"
    assert automl("show", gone).returncode == 2
    assert not (home / "experiments" / gone).exists()
    store = Store.open_for_reading(home)
    try:
        rows = [
            store.conn.execute(f"SELECT count(*) FROM {t} WHERE experiment_id=?", (gone,)).fetchone()[0]
            for t in ("trials", "metrics")
        ]
    finally:
        store.close()
    assert rows == [0, 0]
    assert [e["id"] for e in json.loads(automl("ls", "--json", check=True).stdout)] == [keep]
    assert (home / "experiments" / keep).is_dir()


@pytest.fixture
def daemon(home):
    """A started daemon; stopped afterwards."""
    automl("daemon", "start", check=True)
    yield home
    automl("daemon", "stop")


def test_rm_refuses_a_running_experiment_unless_forced_which_stops_it_first(tmp_path, daemon):
    write_trial(tmp_path, "time.sleep(60)\n")
    exp_id = automl("submit", str(write_config(tmp_path, max_trials=2, concurrency=2)), check=True).stdout.strip()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not all(t["pid"] for t in _running(daemon, exp_id)):
        time.sleep(0.1)
    pids = [t["pid"] for t in _running(daemon, exp_id)]
    assert pids
    try:
        refused = automl("rm", exp_id, "--yes")
        assert refused.returncode == 2 and "is running; stop it first (or rm --force)" in refused.stderr
        assert show(exp_id)["status"] == "running"
        automl("rm", exp_id, "--yes", "--force", check=True)
        assert automl("show", exp_id).returncode == 2
        assert not (daemon / "experiments" / exp_id).exists()
        assert not any(psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE for pid in pids)
    finally:
        for pid in pids:
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


def _running(home, exp_id: str) -> list[dict]:
    store = Store.open_for_reading(home)
    if store is None:
        return []
    try:
        return [{"pid": t.pid} for t in store.trials(exp_id) if t.status == "running"]
    finally:
        store.close()
