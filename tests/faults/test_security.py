"""The data directory is the user's alone: unsafe homes are refused before anything is written, planted links
are never followed, a trial folder is never reused, and the CLI talks only to its own user's daemon."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from tests.helpers import (
    automl,
    kill_leftover_trials,
    recorded_daemon_pid,
    running_daemon,
    show,
    submit,
    wait_for_status,
    wait_until,
    write_config,
    write_trial,
)

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: to act as a second local user")
GATED_TRIAL = """
import os
trial.report(params['x'])
while not os.path.exists(os.environ['GATE']):
    time.sleep(0.05)
trial.report_final(params['x'])
"""


@pytest.fixture(scope="module")
def other_user() -> Iterator[tuple[int, int]]:
    """A second local user (uid, gid), created with useradd for these tests and deleted afterwards."""
    if os.geteuid() != 0:
        pytest.skip("needs root: to create a second local user with useradd")
    name = f"automl-t{os.getpid() % 100000}"
    made = subprocess.run(
        ["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", name], capture_output=True, text=True
    )
    if made.returncode != 0:
        pytest.skip(f"needs useradd to work: {made.stderr.strip()}")
    try:
        import pwd

        entry = pwd.getpwnam(name)
        yield entry.pw_uid, entry.pw_gid
    finally:
        subprocess.run(["userdel", name], capture_output=True)


@pytest.fixture
def bait(tmp_path: Path) -> Path:
    """A file outside the data directory that a planted link points to; it must never change."""
    path = tmp_path / "outside" / "precious.txt"
    path.parent.mkdir()
    path.write_text("precious\n")
    os.utime(path, (1_000_000_000, 1_000_000_000))
    return path


def untouched(path: Path) -> bool:
    """Whether the bait still has its content and its old modification time."""
    return path.read_text() == "precious\n" and path.stat().st_mtime == 1_000_000_000


def experiment_config(tmp_path: Path) -> Path:
    write_trial(tmp_path, "trial.report_final(params['x'])\n")
    return write_config(tmp_path, max_trials=1, concurrency=1)


def refused(result: subprocess.CompletedProcess[str], *words: str) -> bool:
    """Exit 2 with one line naming the problem, and no traceback."""
    return (
        result.returncode == 2
        and "Traceback" not in result.stderr
        and len(result.stderr.splitlines()) == 1
        and all(word in result.stderr for word in words)
    )


# unsafe data directories


@pytest.mark.parametrize("command", ["run", "submit", "daemon start"])
def test_a_world_writable_home_is_refused_and_nothing_is_written(tmp_path, home, command):
    home.mkdir(mode=0o777)
    os.chmod(home, 0o777)
    args = [*command.split(), str(experiment_config(tmp_path))] if command != "daemon start" else ["daemon", "start"]
    result = automl(*args)
    assert refused(result, str(home), "writable by other users", f"chmod 700 {home}"), result.stderr
    assert list(home.iterdir()) == []
    assert stat.S_IMODE(home.stat().st_mode) == 0o777, "left as it was, for the user to decide"


def test_a_pre_made_experiments_folder_others_can_write_is_refused(tmp_path, home):
    (home / "experiments").mkdir(parents=True)
    os.chmod(home, 0o700)
    os.chmod(home / "experiments", 0o777)
    result = automl("run", str(experiment_config(tmp_path)))
    assert refused(result, str(home / "experiments"), "chmod 700"), result.stderr
    assert sorted(p.name for p in home.iterdir()) == ["experiments"]
    assert list((home / "experiments").iterdir()) == []


def test_a_new_home_is_made_private_and_its_files_0600(tmp_path, home):
    automl("run", str(experiment_config(tmp_path)), check=True)
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    files = [p for p in home.rglob("*") if p.is_file() and "trial_lib" not in p.parts]
    assert files and {oct(stat.S_IMODE(p.stat().st_mode)) for p in files} == {oct(0o600)}, [
        (str(p), oct(stat.S_IMODE(p.stat().st_mode))) for p in files
    ]
    folders = [p for p in home.rglob("*") if p.is_dir()]
    assert {stat.S_IMODE(p.stat().st_mode) for p in folders} == {0o700}


def test_a_home_of_another_user_is_refused(tmp_path, home, other_user):
    home.mkdir(mode=0o700)
    os.chown(home, *other_user)
    for args in (["run", str(experiment_config(tmp_path))], ["daemon", "start"]):
        result = automl(*args)
        assert refused(result, str(home), f"uid {other_user[0]}", "not to you"), result.stderr
        assert list(home.iterdir()) == []


# planted links


@pytest.mark.parametrize("name", ["daemon.log", "daemon.lock"])
def test_a_link_planted_for_a_daemon_file_is_not_followed(home, bait, name):
    home.mkdir(mode=0o700)
    (home / name).symlink_to(bait)
    for args in (["daemon", "start"], ["daemon", "start", "--foreground"]):
        result = automl(*args, timeout=60)
        assert refused(result, name, "symbolic link"), result.stderr
        assert untouched(bait)
    assert not (home / "daemon.sock").exists() and not (home / "daemon.pid").exists()


@pytest.mark.parametrize("name", ["automl.db", "automl.db-wal", "automl.db-shm"])
def test_a_link_planted_for_the_database_is_not_followed(tmp_path, home, bait, name):
    home.mkdir(mode=0o700)
    (home / name).symlink_to(bait)
    result = automl("run", str(experiment_config(tmp_path)))
    assert refused(result, name, "symbolic link"), result.stderr
    assert untouched(bait)
    assert {p.name for p in home.iterdir()} <= {name, "experiments"}, "no database was created beside the link"


def test_export_never_follows_a_link_at_its_temporary_or_output_path(tmp_path, home, bait):
    exp = _run_and_id(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    (out / ".best.yaml.tmp").symlink_to(bait)  # the temporary name an earlier version used
    (out / "best.yaml").symlink_to(bait)
    result = automl("export", exp, "--best", "-o", str(out / "best.yaml"))
    assert result.returncode == 0, result.stderr
    assert untouched(bait)
    written = out / "best.yaml"
    assert not written.is_symlink() and "x: " in written.read_text()
    assert sorted(p.name for p in out.iterdir()) == [".best.yaml.tmp", "best.yaml"], "no temporary file left"


# a trial folder is never reused


def test_a_trial_the_store_forgot_is_not_run_again_into_its_folder(tmp_path, home, bait, monkeypatch):
    """The store loses the trial it was running (its last writes gone, as with a lost WAL): the restarted daemon
    gives the next trial the same id, and must neither run it into the folder of the one still running nor
    write through a link planted there."""
    gate = tmp_path / "gate"
    monkeypatch.setenv("GATE", str(gate))
    write_trial(tmp_path, GATED_TRIAL)
    with running_daemon(home):
        try:
            exp = submit(write_config(tmp_path, max_trials=2, concurrency=1))
            wait_until(
                lambda: next((t for t in show(exp)["trials"] if t["status"] == "running" and t["steps"]), None),
                "a running trial's first step",
            )
            folder = home / "experiments" / exp / "trials" / "1"
            os.kill(recorded_daemon_pid(home), signal.SIGKILL)
            with sqlite3.connect(home / "automl.db") as db:
                (pid,) = db.execute("SELECT pid FROM trials WHERE experiment_id=? AND id=1", (exp,)).fetchone()
                db.execute("DELETE FROM trials WHERE experiment_id=? AND id=1", (exp,))
                db.execute("DELETE FROM metrics WHERE experiment_id=? AND trial_id=1", (exp,))
            metrics_before = (folder / "metrics.jsonl").read_bytes()
            (folder / "params.json").unlink()
            (folder / "params.json").symlink_to(bait)
            automl("daemon", "start", check=True)
            refused_trial = wait_until(
                lambda: next(
                    (
                        t
                        for t in show(exp)["trials"]
                        if t["id"] == 1 and t["status"] != "waiting" and t["status"] != "running"
                    ),
                    None,
                ),
                "trial 1 to be refused",
            )
            assert refused_trial["status"] == "failed" and "already exists" in refused_trial["error"], refused_trial
            assert _trial_processes(exp, 1) == [pid], "the forgotten trial runs once, not twice"
            assert untouched(bait) and (folder / "metrics.jsonl").read_bytes() == metrics_before
            gate.touch()
            view = wait_for_status(exp, "done", "failed")
            assert [t["status"] for t in view["trials"]] == ["failed", "succeeded"]
        finally:
            gate.touch()


def test_a_start_cut_short_by_a_crash_runs_in_a_fresh_folder(tmp_path, home, monkeypatch):
    """A trial stored as waiting whose process is gone without a trace (the machine went down as it started) is
    started again, in a fresh folder; what the first start left is set aside, not reused."""
    gate = tmp_path / "gate"
    monkeypatch.setenv("GATE", str(gate))
    write_trial(tmp_path, GATED_TRIAL)
    with running_daemon(home):
        try:
            exp = submit(write_config(tmp_path, max_trials=1, concurrency=1))
            wait_until(
                lambda: next((t for t in show(exp)["trials"] if t["status"] == "running" and t["steps"]), None),
                "a running trial's first step",
            )
            os.kill(recorded_daemon_pid(home), signal.SIGKILL)
            kill_leftover_trials(home)  # the machine goes down
            wait_until(lambda: not _trial_processes(exp, 1), "the trial's processes to end")
            with sqlite3.connect(home / "automl.db") as db:
                db.execute(
                    "UPDATE trials SET status='waiting', pid=NULL, pid_created=NULL, started=NULL "
                    "WHERE experiment_id=? AND id=1",
                    (exp,),
                )
            gate.touch()
            automl("daemon", "start", check=True)
            view = wait_for_status(exp, "done", "failed")
            assert [(t["id"], t["status"], t["steps"]) for t in view["trials"]] == [(1, "succeeded", 1)], view["trials"]
            trials = home / "experiments" / exp / "trials"
            aside = [p for p in trials.iterdir() if p.name.startswith("1.set-aside-")]
            assert len(aside) == 1 and len((aside[0] / "metrics.jsonl").read_text().splitlines()) == 1
            assert len((trials / "1" / "metrics.jsonl").read_text().splitlines()) == 2
        finally:
            gate.touch()


# the CLI talks only to its own user's daemon


def test_a_link_to_another_users_daemon_is_not_followed(home, other_user):
    with _fake_daemon(other_user) as fake:
        home.mkdir(mode=0o700)
        (home / "daemon.sock").symlink_to(fake)
        for args in (["daemon", "status"], ["pause", "x"], ["daemon", "stop"]):
            result = automl(*args)
            assert refused(result, "daemon.sock", "symbolic link"), result.stderr
            assert "FAKE" not in result.stdout + result.stderr


def test_a_socket_of_another_user_is_refused(home, other_user):
    with _fake_daemon(other_user) as fake:
        home.mkdir(mode=0o700)
        os.rename(fake, home / "daemon.sock")
        result = automl("daemon", "status")
        assert refused(result, "daemon.sock", f"uid {other_user[0]}"), result.stderr
        assert "FAKE" not in result.stdout + result.stderr


def test_a_daemon_of_another_user_behind_a_socket_of_ours_is_refused(home, other_user):
    """A socket file of ours, bound by us but listened on by a process that then became another user."""
    home.mkdir(mode=0o700)
    with _fake_daemon(other_user, home / "daemon.sock"):
        result = automl("daemon", "status")
        assert refused(result, f"runs as uid {other_user[0]}", "nothing was sent"), result.stderr
        assert "FAKE" not in result.stdout + result.stderr


# helpers


def _run_and_id(tmp_path: Path) -> str:
    automl("run", str(experiment_config(tmp_path)), check=True)
    return json.loads(automl("ls", "--json", check=True).stdout)[0]["id"]


def _trial_processes(exp: str, trial: int) -> list[int]:
    """The pids of the trial's wrappers: processes carrying its ids whose parent does not carry them."""
    wanted = {"AUTOML_EXPERIMENT_ID": exp, "AUTOML_TRIAL_ID": str(trial)}
    carrying = {}
    for proc in psutil.process_iter(["pid", "ppid"]):
        try:
            env = proc.environ()
        except psutil.Error:
            continue
        if all(env.get(k) == v for k, v in wanted.items()):
            carrying[proc.pid] = proc.info["ppid"]
    return [pid for pid, parent in carrying.items() if parent not in carrying]


class _fake_daemon:
    """A process of `user` answering every connection with a fake status. It listens on a socket in a folder
    of that user's, or at `path` (bound as us, so the file is ours, then listened on as that user)."""

    def __init__(self, user: tuple[int, int], path: Path | None = None) -> None:
        self.user = user
        self.folder = None if path is not None else Path(tempfile.mkdtemp(prefix="automl-fake-"))
        self.path = path or self.folder / "daemon.sock"  # type: ignore[operator]

    def __enter__(self) -> Path:
        if self.folder is not None:
            os.chown(self.folder, *self.user)
        ready_read, ready_write = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:  # pragma: no cover - the child
            try:
                self._serve(ready_write)
            finally:
                os._exit(0)
        os.close(ready_write)
        assert os.read(ready_read, 1) == b"1"
        os.close(ready_read)
        return self.path

    def __exit__(self, *exc_info: object) -> None:
        os.kill(self.pid, signal.SIGKILL)
        os.waitpid(self.pid, 0)
        if self.folder is not None:
            subprocess.run(["rm", "-rf", str(self.folder)])

    def _serve(self, ready: int) -> None:
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        if self.folder is None:
            server.bind(str(self.path))
        os.setgroups([])
        os.setgid(self.user[1])
        os.setuid(self.user[0])
        if self.folder is not None:
            server.bind(str(self.path))
        server.listen(8)
        os.write(ready, b"1")
        reply = (
            json.dumps(
                {
                    "v": 1,
                    "id": 1,
                    "ok": True,
                    "result": {"running": True, "pid": 1, "socket": "FAKE", "experiments": ["FAKE"], "stopping": True},
                }
            )
            + "\n"
        )
        while True:
            conn, _ = server.accept()
            conn.settimeout(2)
            try:
                conn.recv(65536)
                conn.sendall(reply.encode())
            except OSError:
                pass
            time.sleep(0.05)
            conn.close()
