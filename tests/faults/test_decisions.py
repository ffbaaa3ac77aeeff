"""Decisions survive a crash: a stop, kill or pause is stored before it is acted on, and carried out by the next
host; an experiment whose foreground `automl run` was killed is `orphaned`, and can be resumed or stopped.

Each scenario is a function of the data directory and a work folder, reusable by a benchmark.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from automl.launchers.local import find_trial_process
from automl.store import Store
from tests.helpers import (
    automl,
    kill_leftover_trials,
    recorded_daemon_pid,
    show,
    submit,
    wait_for_status,
    wait_until,
    write_config,
    write_trial,
)

STUBBORN_TRIAL = """
import signal
signal.signal(signal.SIGTERM, signal.SIG_IGN)  # only the SIGKILL after the grace period ends it
for step in range(params['steps']):
    time.sleep(params['pace'])
    trial.report(step * params['x'])
trial.report_final(params['x'])
"""


def _space(pace: float, steps: int) -> dict:
    return {
        "x": {"_type": "uniform", "_value": [0, 1]},
        "pace": {"_type": "choice", "_value": [pace]},
        "steps": {"_type": "choice", "_value": [steps]},
    }


def _running(exp_id: str, at_least: int = 1, steps: int = 1) -> list[dict]:
    """Wait until `at_least` trials run and each has reported `steps` steps."""
    return wait_until(
        lambda: (lambda r: r if len(r) >= at_least and all(t["steps"] >= steps for t in r) else None)(
            [t for t in show(exp_id)["trials"] if t["status"] == "running"]
        ),
        f"{at_least} running trial(s) with {steps} step(s) each",
        timeout=60,
    )


def _crash_daemon(home: Path) -> None:
    os.kill(recorded_daemon_pid(home), signal.SIGKILL)


def _left_over(home: Path, exp_id: str) -> list[int]:
    """Trials of the experiment that still have a process."""
    store = Store(home, readonly=True)
    try:
        return [t.id for t in store.trials(exp_id) if find_trial_process(exp_id, t.id) is not None]
    finally:
        store.close()


def _metrics_complete(home: Path, exp_id: str, trial: dict) -> None:
    """Every line the trial wrote to its metrics file is in the store, once."""
    lines = (home / "experiments" / exp_id / "trials" / str(trial["id"]) / "metrics.jsonl").read_text().splitlines()
    store = Store(home, readonly=True)
    try:
        assert len(store.metrics(exp_id, trial["id"])) == len(lines) > 0, trial
    finally:
        store.close()


def stop_then_crash(home: Path, work: Path) -> dict:
    """`automl stop`, then the daemon is SIGKILLed while its trials wait out the grace period; restarted, it must
    end the experiment stopped, without running anything more."""
    write_trial(work, STUBBORN_TRIAL)
    exp_id = submit(write_config(work, search_space=_space(0.5, 40), max_trials=6, concurrency=2))
    _running(exp_id, at_least=2)
    automl("stop", exp_id, check=True)
    _crash_daemon(home)
    before = [t["id"] for t in show(exp_id)["trials"]]
    automl("daemon", "start", check=True)
    view = wait_for_status(exp_id, "stopped", "done", "failed", timeout=60)
    view["trials_before_restart"] = before
    return view


def test_a_stop_is_carried_out_by_the_restarted_daemon(tmp_path, home, daemon):
    view = stop_then_crash(home, tmp_path)
    assert view["status"] == "stopped"
    assert [t["id"] for t in view["trials"]] == view["trials_before_restart"], "no trial started after the stop"
    assert {(t["status"], t["error"]) for t in view["trials"]} == {("killed", "stopped by user")}
    assert _left_over(home, view["id"]) == []


def test_a_pause_survives_a_crash(tmp_path, home, daemon):
    write_trial(tmp_path, STUBBORN_TRIAL)
    exp_id = submit(write_config(tmp_path, search_space=_space(0.3, 8), max_trials=3, concurrency=1))
    _running(exp_id)
    automl("pause", exp_id, check=True)
    at_pause = len(show(exp_id)["trials"])
    _crash_daemon(home)
    automl("daemon", "start", check=True)
    assert show(exp_id)["status"] == "paused"
    ended = wait_until(
        lambda: (lambda v: v if not [t for t in v["trials"] if t["status"] == "running"] else None)(show(exp_id)),
        "the paused experiment's trials to end",
    )
    assert [t["status"] for t in ended["trials"]] == ["succeeded"] * at_pause, "the re-attached trial ended"
    assert show(exp_id)["status"] == "paused" and len(show(exp_id)["trials"]) == at_pause, "nothing started"
    automl("resume", exp_id, check=True)
    view = wait_for_status(exp_id, "done")
    assert [t["status"] for t in view["trials"]] == ["succeeded"] * 3
    for trial in view["trials"]:
        _metrics_complete(home, exp_id, trial)


def test_a_killed_trial_stays_killed_after_a_crash(tmp_path, home, daemon):
    write_trial(tmp_path, STUBBORN_TRIAL)
    exp_id = submit(write_config(tmp_path, search_space=_space(0.3, 10), max_trials=2, concurrency=1))
    victim = _running(exp_id)[0]
    automl("kill", exp_id, str(victim["id"]), check=True)
    _crash_daemon(home)
    automl("daemon", "start", check=True)
    view = wait_for_status(exp_id, "done", "failed", "stopped", timeout=60)
    assert view["status"] == "done"
    trials = {t["id"]: t for t in view["trials"]}
    assert (trials[victim["id"]]["status"], trials[victim["id"]]["error"]) == ("killed", "killed by user")
    assert len(trials) == 2 and [t["status"] for t in trials.values() if t["id"] != victim["id"]] == ["succeeded"]
    assert _left_over(home, exp_id) == []


def orphan(home: Path, work: Path, trial: str, space: dict, max_trials: int, running: int) -> str:
    """Start `automl run` in the foreground, wait for `running` trials to report, then kill -9 it; its id."""
    write_trial(work, trial)
    config = write_config(work, search_space=space, max_trials=max_trials, concurrency=2)
    run = subprocess.Popen(
        [sys.executable, "-m", "automl", "run", str(config)],
        env=os.environ.copy(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        exp_id = wait_until(
            lambda: (lambda rows: rows[0]["id"] if rows else None)(
                json.loads(automl("ls", "--json", check=True).stdout)
            ),
            "the orphaned run's experiment to be listed",
            timeout=60,
        )
        _running(exp_id, at_least=running)
    finally:
        run.kill()
        run.wait()
    return exp_id


def _listed_status(exp_id: str) -> str:
    return next(r["status"] for r in json.loads(automl("ls", "--json", check=True).stdout) if r["id"] == exp_id)


def test_an_orphaned_run_is_shown_and_resumed_by_the_daemon(tmp_path, home):
    try:
        exp_id = orphan(home, tmp_path, STUBBORN_TRIAL, _space(0.3, 6), max_trials=4, running=2)
        assert _listed_status(exp_id) == "orphaned" and show(exp_id)["status"] == "orphaned"
        resumed = automl("resume", exp_id)
        assert resumed.returncode == 0 and "adopted" in resumed.stdout, resumed.stderr
        view = wait_for_status(exp_id, "done", "failed", "stopped", timeout=60)
    finally:
        automl("daemon", "stop")
        kill_leftover_trials(home)
    assert view["status"] == "done"
    assert [(t["status"], t["retry_of"]) for t in view["trials"]] == [("succeeded", None)] * 4, "none ran twice"
    assert len({json.dumps(t["params"], sort_keys=True) for t in view["trials"]}) == 4
    for trial in view["trials"]:
        assert trial["steps"] == 6
        _metrics_complete(home, exp_id, trial)


def test_an_orphaned_run_is_stopped_without_a_daemon(tmp_path, home, leftover_trials_killed):
    exp_id = orphan(home, tmp_path, STUBBORN_TRIAL, _space(0.5, 40), max_trials=4, running=2)
    assert _listed_status(exp_id) == "orphaned"
    assert len(_left_over(home, exp_id)) == 2
    stopped = automl("stop", exp_id)
    assert stopped.returncode == 0 and "stopped" in stopped.stdout, stopped.stderr
    view = show(exp_id)
    assert view["status"] == "stopped"
    assert {(t["status"], t["error"]) for t in view["trials"]} == {("killed", "stopped by user")}
    assert _left_over(home, exp_id) == []
    assert not (home / "daemon.pid").exists(), "no daemon was needed"
    assert automl("resume", exp_id).returncode == 2, "a stopped experiment is no orphan to adopt"


def test_unknown_arguments_and_empty_experiment_names_are_user_errors(tmp_path, home, daemon):
    from automl.control.client import Client, RemoteError

    write_trial(tmp_path, STUBBORN_TRIAL)
    exp_id = submit(write_config(tmp_path, search_space=_space(0.1, 2), max_trials=1))
    with Client(home / "daemon.sock") as client:
        for op, args, expected in (
            ("pause", {"experiment": ""}, "must not be empty"),
            ("stop", {"experiment": exp_id, "force": True}, "unknown argument(s) 'force'"),
            ("status", {"verbose": 1}, "allowed: none"),
        ):
            try:
                client.request(op, **args)
            except RemoteError as e:
                assert (e.code, expected in e.message) == ("user_error", True), e.message
            else:
                raise AssertionError(f"{op} {args} was accepted")
    refused = automl("stop", "")
    assert refused.returncode == 2 and "must not be empty" in refused.stderr
    assert show(exp_id)["status"] in ("running", "done"), "nothing was stopped"
