"""Storage faults: a locked, full, read-only or damaged store pauses writing, never a trial, and loses nothing.

Each scenario runs a real daemon with real trials, holds the fault while trials report and end, lifts it,
and checks that every line each trial wrote is in the store, statuses are right and no trial ran twice.
The scenario functions take the fault as a context manager, so a benchmark can drive them too.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from automl.paths import trial_dir
from automl.store import DB_NAME, Store
from tests.helpers import automl, running_daemon, show, still_running, submit, wait_until, write_config, write_trial

TRIALS = 4
STEPS = 6
# The first report comes at once, so a running trial's metrics file already holds a line when a fault starts.
TRIAL = f"""
for step in range({STEPS}):
    trial.report(step * params['x'])
    time.sleep(0.25)
trial.report_final(params['x'])
"""

Fault = Callable[[Path], contextlib.AbstractContextManager[None]]


# faults


@contextlib.contextmanager
def locked_store(home: Path) -> Iterator[None]:
    """Another process holds the store's exclusive lock (`BEGIN EXCLUSIVE`) until the block ends."""
    holder = sqlite3.connect(home / DB_NAME, timeout=30, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        yield
    finally:
        holder.execute("COMMIT")
        holder.close()


@contextlib.contextmanager
def full_disk(home: Path) -> Iterator[None]:
    """The filesystem of the data directory (a tmpfs) has no space left until the block ends."""
    filler = home / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        for size in (1 << 20, 1 << 12, 1):
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, b"\0" * size)
        yield
    finally:
        os.close(fd)
        filler.unlink()


@contextlib.contextmanager
def read_only_store(home: Path) -> Iterator[None]:
    """The store's files take no writes, not even root's (immutable), until the block ends."""
    files = [str(home / DB_NAME), str(home / f"{DB_NAME}-wal")]
    subprocess.run(["chattr", "+i", *files], check=True, capture_output=True)
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", *files], check=True, capture_output=True)


@contextlib.contextmanager
def tmpfs(path: Path, size: str = "8m") -> Iterator[Path]:
    """A small owner-only tmpfs mounted at `path` for the block."""
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=True)


# the scenario


def survives(home: Path, folder: Path, fault: Fault) -> str:
    """Run an experiment, hold `fault` while two trials report and end, lift it; the experiment's id once it is done.

    While the fault holds, the daemon must report it and keep both trials' endings pending (not concluded)."""
    write_trial(folder, TRIAL)
    config = write_config(folder, max_trials=TRIALS, concurrency=2)
    with running_daemon(home):
        exp_id = submit(config)
        pids = wait_until(lambda: _reporting_pids(home, exp_id, 2), "two trials reporting", timeout=60)
        with fault(home):
            fault_seen = wait_until(_store_fault, "the daemon to report the store fault", timeout=30)
            wait_until(lambda: not still_running(pids), "both trials to end meanwhile", timeout=30)
            assert _store_fault(), "the fault still holds"
            during = show(exp_id)
        assert during["status"] == "running", during
        assert all(t["status"] == "running" for t in during["trials"]), "no trial is concluded while its end waits"
        assert fault_seen["failures"] >= 1 and fault_seen["error"]
        ended = wait_until(
            lambda: (lambda v: v if v["status"] != "running" else None)(show(exp_id)),
            "the experiment to end",
            timeout=90,
        )
        assert ended["status"] == "done", ended
        assert _store_fault() is None
    assert_caught_up(home, exp_id)
    return exp_id


def assert_caught_up(home: Path, exp_id: str) -> None:
    """Every line every trial wrote is in the store, every trial succeeded once, and no trial process is left."""
    store = Store.open_for_reading(home)
    assert store is not None
    try:
        trials = store.trials(exp_id)
        assert [t.status for t in trials] == ["succeeded"] * TRIALS, [(t.id, t.status, t.error) for t in trials]
        for t in trials:
            metrics_file = trial_dir(home, exp_id, t.id) / "metrics.jsonl"
            written = [json.loads(line) for line in metrics_file.read_text().splitlines()]
            assert [m.raw for m in store.metrics(exp_id, t.id)] == written, f"trial {t.id} lost metrics"
            assert [r["kind"] for r in written].count("final") == 1, f"trial {t.id} ran more than once"
            assert t.metrics_offset == metrics_file.stat().st_size
            assert t.value == t.params["x"]
            assert not still_running([t.pid])
    finally:
        store.close()


def _reporting_pids(home: Path, exp_id: str, count: int) -> list[int] | None:
    """The pids of `count` running trials once each has written a metrics line, else None."""
    store = Store.open_for_reading(home)
    if store is None:
        return None
    try:
        running = [t for t in store.trials(exp_id) if t.status == "running" and t.pid]
    finally:
        store.close()
    reporting = [t for t in running if (trial_dir(home, exp_id, t.id) / "metrics.jsonl").stat().st_size > 0]
    return [t.pid for t in reporting] if len(reporting) >= count else None


def _store_fault() -> dict | None:
    return json.loads(automl("daemon", "status", "--json", check=True).stdout).get("store_fault")


def _needs_root(what: str) -> None:
    if os.geteuid() != 0:
        pytest.skip(f"needs root: {what}")


# tests


def test_a_lock_held_by_another_process_pauses_writes_and_loses_nothing(home, tmp_path):
    survives(home, tmp_path, locked_store)
    log = (home / "daemon.log").read_text()
    assert "takes no writes (database is locked)" in log and "takes writes again" in log


def test_a_full_disk_pauses_writes_and_loses_nothing(home, tmp_path):
    _needs_root("mounts a small tmpfs as the data directory to fill it")
    with tmpfs(home):
        survives(home, tmp_path, full_disk)


def test_a_read_only_store_pauses_writes_and_loses_nothing(home, tmp_path):
    _needs_root("makes the store's files immutable with chattr")
    home.mkdir(parents=True)
    probe = home / "probe"
    probe.touch()
    if subprocess.run(["chattr", "+i", str(probe)], capture_output=True).returncode != 0:
        pytest.skip(f"the filesystem of {home} has no immutable flag (chattr)")
    subprocess.run(["chattr", "-i", str(probe)], check=True)
    probe.unlink()
    survives(home, tmp_path, read_only_store)
    assert "takes writes again" in (home / "daemon.log").read_text()


def test_a_daemon_restarted_while_the_store_is_locked_concludes_its_trials_once_it_is_free(home, tmp_path):
    """Trials that end while no daemon runs, and then while the store is locked, are concluded from their files."""
    write_trial(tmp_path, TRIAL)
    config = write_config(tmp_path, max_trials=TRIALS, concurrency=2)
    with running_daemon(home):
        exp_id = submit(config)
        pids = wait_until(lambda: _reporting_pids(home, exp_id, 2), "two trials reporting", timeout=60)
        automl("daemon", "stop", check=True)
        with locked_store(home):
            wait_until(lambda: not still_running(pids), "both trials' processes to end", timeout=30)
            automl("daemon", "start", check=True)
            wait_until(_store_fault, "the daemon to report the store fault", timeout=30)
            assert all(t["status"] == "running" for t in show(exp_id)["trials"])
        ended = wait_until(
            lambda: (lambda v: v if v["status"] != "running" else None)(show(exp_id)),
            "the experiment to end",
            timeout=90,
        )
        assert ended["status"] == "done", ended
    assert_caught_up(home, exp_id)


def test_a_damaged_store_is_a_clear_message_and_starts_nothing(home, tmp_path):
    home.mkdir(parents=True)
    (home / DB_NAME).write_bytes(b"not a database, just garbage " * 200)
    write_trial(tmp_path, TRIAL)
    config = write_config(tmp_path)
    for command in (["daemon", "start"], ["run", str(config)], ["ls"], ["show", "test"]):
        result = automl(*command)
        assert result.returncode == 2, (command, result.stderr)
        assert f"the store {home / DB_NAME} cannot be read" in result.stderr, (command, result.stderr)
        assert f"mv {home / DB_NAME} {home / DB_NAME}.damaged" in result.stderr
        assert "Traceback" not in result.stderr
    assert not (home / "experiments").exists() and not (home / "daemon.pid").exists()


def test_a_chatty_trial_keeps_only_the_tail_of_its_logs(home, tmp_path):
    write_trial(
        tmp_path,
        """
for i in range(40):
    for j in range(1000):
        print(f"out {i:03d} {j:04d} " + "x" * 40)
        print(f"err {i:03d} {j:04d} " + "y" * 40, file=sys.stderr)
    time.sleep(0.05)
print("last line")
trial.report_final(params['x'])
""",
    )
    limit = 256 * 1024
    config = write_config(tmp_path, max_trials=1, concurrency=1, max_log_mib=limit / (1 << 20))
    result = automl("run", str(config))
    assert result.returncode == 0, result.stderr
    exp_id = show("test")["id"]
    assert show(exp_id)["trials"][0]["status"] == "succeeded"
    folder = trial_dir(home, exp_id, 1)
    for name, last in (("stdout.log", "last line"), ("stderr.log", "err 039 0999 " + "y" * 40)):
        text = (folder / name).read_text()
        assert len(text) <= limit, (name, len(text))  # ~2.4 MB were printed to each
        lines = text.splitlines()
        assert lines[0].startswith("[automl: ") and "earlier bytes of this log were dropped" in lines[0]
        assert lines[-1] == last


def test_a_kill_and_a_stop_while_the_store_is_locked_are_carried_out_and_stored_later(home, tmp_path):
    write_trial(tmp_path, "for step in range(100):\n    trial.report(step)\n    time.sleep(0.1)\n")
    config = write_config(tmp_path, max_trials=4, concurrency=2)
    with running_daemon(home):
        exp_id = submit(config)
        pids = wait_until(lambda: _reporting_pids(home, exp_id, 2), "two trials reporting", timeout=60)
        with locked_store(home):
            wait_until(_store_fault, "the daemon to report the store fault", timeout=30)
            automl("kill", exp_id, "1", check=True)
            automl("stop", exp_id, check=True)
            wait_until(lambda: not still_running(pids), "both trials' processes to end", timeout=30)
            assert _store_fault(), "the fault still holds while the decisions are carried out"
        ended = wait_until(
            lambda: (lambda v: v if v["status"] != "running" else None)(show(exp_id)),
            "the experiment to end",
            timeout=60,
        )
    assert ended["status"] == "stopped", ended
    assert [(t["id"], t["status"], t["error"]) for t in ended["trials"]] == [
        (1, "killed", "killed by user"),
        (2, "killed", "stopped by user"),
    ]
