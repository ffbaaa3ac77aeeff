"""The helpers tests share: ending a test's leftover trials must never reach a process that only took a trial's pid."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys

import psutil

from automl.launchers.local import marked_processes
from automl.store import DB_NAME
from tests.helpers import (
    kill_leftover_trials,
    recorded_daemon_pid,
    running_daemon,
    show,
    still_running,
    submit,
    wait_until,
    write_config,
    write_trial,
)


def test_leftover_trials_die_and_a_process_holding_a_trials_stored_pid_does_not(tmp_path, home):
    write_trial(tmp_path, "trial.report(1)\ntime.sleep(60)\n")
    stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    try:
        with running_daemon(home):
            exp = submit(write_config(tmp_path, max_trials=1, concurrency=1))
            wait_until(lambda: show(exp)["trials"] and show(exp)["trials"][0]["steps"], "the trial's first step")
            os.kill(recorded_daemon_pid(home), signal.SIGKILL)  # the trial goes on without its daemon
            trial_pids = [proc.pid for proc in marked_processes(exp, 1)]
            with sqlite3.connect(home / DB_NAME) as db:  # as if the trial's pid had been given to another process
                db.execute(
                    "UPDATE trials SET pid=?, pid_created=? WHERE experiment_id=?",
                    (stranger.pid, psutil.Process(stranger.pid).create_time(), exp),
                )
            kill_leftover_trials(home)
            wait_until(lambda: not still_running(trial_pids), "the trial's processes to end", timeout=30)
        assert trial_pids
        assert stranger.poll() is None, "a process without the trial's marks is not the trial's"
    finally:
        stranger.kill()
        stranger.wait()
