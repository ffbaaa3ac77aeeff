"""Trials that turn on the daemon: a metrics file made a FIFO, a link to /dev/zero, a huge line, a truncated file,
and processes that escape the trial's process group and session. The daemon stays responsive and small, every
metric the other trials wrote arrives, and no process a trial started outlives it.

`run_hostile` and `run_escaping` drive one scenario each and return what was measured, for reuse by a benchmark."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pytest

from automl.control.client import Client
from automl.launchers.metrics_file import MAX_LINE
from automl.store import Store
from tests.conftest import show, write_config, write_trial
from tests.test_daemon import _pid, _submit, _wait, _wait_status, daemon  # noqa: F401

STEPS = 5
RSS_LIMIT_MIB = 300
ANSWER_LIMIT_S = 10.0
GATE = "gate"  # the test creates it in the trial's folder once the trial's first two metrics are in the store

# Every hostile trial first reports two metrics, waits for the gate, then does its harm and waits to be ended.
HOSTILE = {
    "fifo": "os.unlink(METRICS)\nos.mkfifo(METRICS)",
    "dev_zero": "os.unlink(METRICS)\nos.symlink('/dev/zero', METRICS)",
    "huge_line": "with open(METRICS, 'ab') as f:\n    f.write(b'x' * 50 * 2**20)",
    "truncate": "os.truncate(METRICS, 0)",
}
REASONS = {
    "fifo": "metrics.jsonl is a FIFO, not a regular file",
    "dev_zero": "metrics.jsonl is a symbolic link",
    "huge_line": f"metrics.jsonl has a line longer than {MAX_LINE} bytes",
    "truncate": "metrics.jsonl was truncated to 0 bytes, below the",
}
HOSTILE_TRIAL = """
import os
METRICS = os.environ['AUTOML_METRICS_FILE']
if params['role'] == 'hostile':
    trial.report(1.0)
    trial.report(2.0)
    while not os.path.exists(os.path.join(trial.trial_dir(), 'gate')):
        time.sleep(0.05)
HARM
    time.sleep(60)
for step in range(STEPS):
    time.sleep(0.2)
    trial.report(step * 0.1)
trial.report_final(0.5)
"""

# Forks a grandchild that leaves the trial's process group and session and sleeps forever, ignoring SIGTERM when
# asked; its pid goes to escaped.pid in the trial's folder.
ESCAPING_TRIAL = """
import os, signal
def escape(path, ignore_term):
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            if ignore_term:
                signal.signal(signal.SIGTERM, signal.SIG_IGN)
            with open(path + '.tmp', 'w') as f:
                f.write(str(os.getpid()))
            os.rename(path + '.tmp', path)
            while True:
                time.sleep(1)
        os._exit(0)
    os.wait()
    while not os.path.exists(path):
        time.sleep(0.01)
escape(os.path.join(trial.trial_dir(), 'escaped.pid'), params.get('ignore_term', False))
while params.get('gated') and not os.path.exists(os.path.join(trial.trial_dir(), 'gate')):
    time.sleep(0.05)
for step in range(params.get('steps', 3)):
    trial.report(step * 0.1)
    time.sleep(params.get('pace', 0.05))
trial.report_final(0.5)
"""

STOP_AT_TWO = """
from nni.assessor import Assessor, AssessResult


class StopAtTwo(Assessor):
    def assess_trial(self, trial_job_id, trial_history):
        return AssessResult.Bad if len(trial_history) >= 2 else AssessResult.Good
"""


@dataclass
class Observed:
    """What a scenario measured: the experiment's final view, the daemon's peak RSS and slowest answer."""

    view: dict[str, Any]
    peak_rss_mib: float = 0.0
    slowest_answer_s: float = 0.0
    trial_pids: list[int] = field(default_factory=list)


class _Watcher:
    """Samples the daemon while a fault goes on: its resident memory, and how long a status request takes."""

    def __init__(self, home: Path):
        self.home, self.daemon = home, psutil.Process(_pid(home))
        self.peak_rss_mib = self.slowest_answer_s = 0.0

    def sample(self) -> None:
        self.peak_rss_mib = max(self.peak_rss_mib, self.daemon.memory_info().rss / 2**20)
        asked = time.monotonic()
        with Client(self.home / "daemon.sock", timeout=ANSWER_LIMIT_S) as client:
            assert client.request("status")["pid"] == self.daemon.pid
        self.slowest_answer_s = max(self.slowest_answer_s, time.monotonic() - asked)


def run_hostile(folder: Path, home: Path, harm: str) -> Observed:
    """One hostile trial (its harm from HOSTILE) beside two well-behaved ones, in a running daemon."""
    write_trial(folder, HOSTILE_TRIAL.replace("HARM", _indent(harm)).replace("STEPS", str(STEPS)))
    exp_id = _submit(
        write_config(
            folder,
            tuner={"name": "GridSearch"},
            max_trials=3,
            concurrency=3,
            search_space={"role": {"_type": "choice", "_value": ["hostile", "ok", "fine"]}},
        )
    )
    watcher = _Watcher(home)

    def hostile_ready() -> dict[str, Any] | None:
        watcher.sample()
        hostile = [t for t in show(exp_id)["trials"] if t["params"]["role"] == "hostile" and t["steps"] >= 2]
        return hostile[0] if hostile else None

    hostile = _wait(hostile_ready, timeout=60)
    (home / "experiments" / exp_id / "trials" / str(hostile["id"]) / GATE).touch()
    view = _wait(
        lambda: watcher.sample() or (lambda v: v if v["status"] != "running" else None)(show(exp_id)), timeout=60
    )
    pids = [t.pid for t in Store(home, readonly=True).trials(exp_id) if t.pid]
    return Observed(view, watcher.peak_rss_mib, watcher.slowest_answer_s, pids)


def run_escaping(folder: Path, home: Path, ending: str) -> tuple[Observed, list[int]]:
    """One trial that leaves an escaped grandchild behind, ended as `ending` says; the grandchildren's pids."""
    params = {
        "normal": {"ignore_term": [True]},
        "early_stop": {"steps": [20], "pace": [0.2]},
        "timeout": {"steps": [1], "pace": [60.0]},
    }.get(ending, {"steps": [1], "pace": [60.0]})
    space = {name: {"_type": "choice", "_value": values} for name, values in params.items()}
    fields: dict[str, Any] = {"tuner": {"name": "GridSearch"}, "max_trials": 1, "concurrency": 1, "search_space": space}
    if ending == "timeout":
        fields["trial_timeout"] = 2
    if ending == "early_stop":
        (folder / "stop_at_two.py").write_text(STOP_AT_TWO)
        fields["stopper"] = {"class_name": "stop_at_two.StopAtTwo", "code_directory": "."}
    write_trial(folder, ESCAPING_TRIAL)
    exp_id = _submit(write_config(folder, **fields))
    watcher = _Watcher(home)
    escaped = _wait(lambda: list((home / "experiments" / exp_id).glob("trials/*/escaped.pid")), timeout=60)
    if ending == "kill":
        trial_id = escaped[0].parent.name
        _wait(lambda: show(exp_id)["trials"][0]["status"] == "running")
        subprocess.run([sys.executable, "-m", "automl", "kill", exp_id, trial_id], check=True, capture_output=True)
    elif ending == "stop":
        subprocess.run([sys.executable, "-m", "automl", "stop", exp_id], check=True, capture_output=True)
    view = _wait(
        lambda: watcher.sample() or (lambda v: v if v["status"] != "running" else None)(show(exp_id)), timeout=60
    )
    pids = [t.pid for t in Store(home, readonly=True).trials(exp_id) if t.pid]
    observed = Observed(view, watcher.peak_rss_mib, watcher.slowest_answer_s, pids)
    return observed, [int(path.read_text()) for path in escaped]


@pytest.fixture
def escapees(home: Path):
    """Kills, after the test, any escaped grandchild a failed test left running."""
    yield
    for path in home.glob("experiments/*/trials/*/escaped.pid"):
        try:
            os.kill(int(path.read_text()), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass


@pytest.mark.parametrize("harm", sorted(HOSTILE))
def test_a_hostile_metrics_file_fails_only_its_trial(tmp_path, daemon, harm):  # noqa: F811
    observed = run_hostile(tmp_path, daemon, HOSTILE[harm])
    trials = {t["params"]["role"]: t for t in observed.view["trials"]}
    assert observed.view["status"] == "done"
    hostile = trials.pop("hostile")
    assert hostile["status"] == "failed" and REASONS[harm] in hostile["error"], hostile
    assert hostile["steps"] == 2, "the metrics read before the harm are kept"
    for t in trials.values():
        assert (t["status"], t["steps"], t["value"]) == ("succeeded", STEPS, 0.5), t
    assert observed.peak_rss_mib < RSS_LIMIT_MIB
    assert observed.slowest_answer_s < ANSWER_LIMIT_S
    assert not _alive(observed.trial_pids)


def test_a_last_line_without_a_newline_is_read_when_the_trial_ends(tmp_path, daemon):  # noqa: F811
    write_trial(
        tmp_path,
        """
        import os
        trial.report(0.25)
        with open(os.environ['AUTOML_METRICS_FILE'], 'a') as f:
            f.write('{"kind": "final", "value": 0.75}')
    """,
    )
    exp_id = _submit(write_config(tmp_path, max_trials=1, concurrency=1))
    view = _wait_status(exp_id, "done", "failed", timeout=60)
    [t] = view["trials"]
    assert (t["status"], t["steps"], t["value"]) == ("succeeded", 1, 0.75), t


@pytest.mark.parametrize("ending", ["normal", "kill", "stop", "timeout", "early_stop"])
def test_a_process_that_escaped_the_trial_dies_with_it(tmp_path, daemon, escapees, ending):  # noqa: F811
    observed, escaped = run_escaping(tmp_path, daemon, ending)
    [t] = observed.view["trials"]
    status, reason = {
        "normal": ("succeeded", ""),
        "kill": ("killed", "killed by user"),
        "stop": ("killed", "stopped by user"),
        "timeout": ("failed", "timed out after 2 s"),
        "early_stop": ("early_stopped", "at step 2"),
    }[ending]
    assert t["status"] == status and reason in (t["error"] or ""), t
    assert escaped and not _alive(escaped + observed.trial_pids)
    log = (daemon / "daemon.log").read_text()
    assert f"trial {t['id']} left 1 process(es) running after it ended; ending them: {escaped[0]}" in log
    assert observed.slowest_answer_s < ANSWER_LIMIT_S


def test_processes_left_by_a_trial_that_ended_while_the_daemon_was_down_die_when_it_resumes(
    tmp_path,
    home,
    daemon,  # noqa: F811
    escapees,
):
    write_trial(tmp_path, ESCAPING_TRIAL)
    space = {"gated": {"_type": "choice", "_value": [True]}}
    exp_id = _submit(
        write_config(tmp_path, tuner={"name": "GridSearch"}, search_space=space, max_trials=1, concurrency=1)
    )
    [escaped] = _wait(lambda: list(home.glob(f"experiments/{exp_id}/trials/*/escaped.pid")), timeout=60)
    os.kill(_pid(home), signal.SIGKILL)
    (escaped.parent / GATE).touch()
    _wait(lambda: (escaped.parent / "exit_code").exists(), timeout=60)
    subprocess.run([sys.executable, "-m", "automl", "daemon", "start"], check=True, capture_output=True)
    [t] = _wait_status(exp_id, "done", "failed", timeout=60)["trials"]
    assert (t["status"], t["value"]) == ("succeeded", 0.5), t
    pid = int(escaped.read_text())
    assert not _alive([pid])
    assert (
        f"trial {t['id']} left 1 process(es) running after it ended; ending them: {pid}"
        in (home / "daemon.log").read_text()
    )


def test_ctrl_c_of_automl_run_ends_processes_that_escaped_its_trials(tmp_path, home, escapees):
    write_trial(tmp_path, ESCAPING_TRIAL)
    space = {"steps": {"_type": "choice", "_value": [1]}, "pace": {"_type": "choice", "_value": [60.0, 61.0]}}
    config = write_config(tmp_path, tuner={"name": "GridSearch"}, search_space=space, max_trials=2, concurrency=2)
    proc = subprocess.Popen(
        [sys.executable, "-m", "automl", "run", str(config)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        escaped = _wait(
            lambda: (lambda found: found if len(found) == 2 else None)(
                list(home.glob("experiments/*/trials/*/escaped.pid"))
            ),
            timeout=60,
        )
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert err.count("left 1 process(es) running after it ended") == 2, err
    exp_id = escaped[0].parents[2].name
    assert [t["status"] for t in show(exp_id)["trials"]] == ["killed", "killed"]
    trial_pids = [t.pid for t in Store(home, readonly=True).trials(exp_id) if t.pid]
    assert not _alive([int(path.read_text()) for path in escaped] + trial_pids)


def _alive(pids: list[int]) -> list[int]:
    """Those of `pids` that still run (a zombie has ended)."""
    alive = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                alive.append(pid)
        except psutil.NoSuchProcess:
            pass
    return alive


def _indent(code: str) -> str:
    return "\n".join("    " + line for line in code.splitlines())
