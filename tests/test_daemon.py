"""The daemon as a user drives it: a real background process, the real CLI, real trials, kill -9 included."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import stat
import subprocess
import sys
import threading
import time

import psutil

from automl.daemon import daemon_pid
from automl.store import Store
from tests.helpers import STEPPING_STEPS as STEPS
from tests.helpers import (
    STEPPING_TRIAL,
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


def test_a_daemon_that_drops_connections_as_it_dies_counts_as_not_running(home):
    """A daemon being killed can accept a connection and drop it unanswered; start must then go ahead."""
    home.mkdir(parents=True, exist_ok=True)
    with socket.socket(socket.AF_UNIX) as dying:
        dying.bind(str(home / "daemon.sock"))
        dying.listen()
        stop = threading.Event()

        def drop_every_connection():
            dying.settimeout(0.05)
            while not stop.is_set():
                try:
                    dying.accept()[0].close()
                except TimeoutError:
                    pass

        dropper = threading.Thread(target=drop_every_connection)
        dropper.start()
        try:
            assert daemon_pid(home, patience=0.3) is None
        finally:
            stop.set()
            dropper.join()


def test_lifecycle_status_and_permissions(home):
    status = json.loads(automl("daemon", "status", "--json", check=True).stdout)
    assert status == {"running": False, "pid": None, "socket": str(home / "daemon.sock"), "experiments": []}
    automl("daemon", "start", check=True)
    try:
        status = json.loads(automl("daemon", "status", "--json", check=True).stdout)
        assert status["running"] is True and status["experiments"] == []
        daemon = psutil.Process(status["pid"])
        assert daemon.terminal() is None and os.getsid(daemon.pid) == daemon.pid, "detached: own session, no tty"
        assert stat.S_IMODE(os.stat(home).st_mode) == 0o700
        assert stat.S_IMODE(os.stat(home / "daemon.sock").st_mode) == 0o600
        again = automl("daemon", "start")
        assert again.returncode == 2 and f"already runs (pid {status['pid']})" in again.stderr
    finally:
        assert automl("daemon", "stop", check=True).stdout.startswith("daemon ")
    assert not psutil.pid_exists(status["pid"]) or psutil.Process(status["pid"]).status() == psutil.STATUS_ZOMBIE
    assert json.loads(automl("daemon", "status", "--json", check=True).stdout)["running"] is False


def test_submit_runs_an_experiment_that_show_and_logs_follow(tmp_path, daemon):
    write_trial(tmp_path, "print('epoch output', params['x'])\n" + STEPPING_TRIAL)
    exp_id = submit(write_config(tmp_path, max_trials=4, concurrency=2))
    assert len(exp_id) == 8
    assert exp_id in json.loads(automl("daemon", "status", "--json", check=True).stdout)["experiments"]
    running = wait_until(lambda: [t for t in show(exp_id)["trials"] if t["status"] == "running"], "a running trial")
    follow = automl("logs", exp_id, str(running[0]["id"]), "-f", check=True)
    assert follow.stdout.startswith("epoch output ")
    view = wait_for_status(exp_id, "done")
    assert [(t["status"], t["steps"]) for t in view["trials"]] == [("succeeded", STEPS)] * 4
    assert automl("logs", exp_id, "99").returncode == 2


def test_pause_resume_stop_and_kill(tmp_path, daemon):
    write_trial(tmp_path, STEPPING_TRIAL)
    space = {"x": {"_type": "uniform", "_value": [0, 1]}, "pace": {"_type": "choice", "_value": [0.3]}}
    exp_id = submit(write_config(tmp_path, search_space=space, max_trials=30, concurrency=2))
    wait_until(lambda: len(show(exp_id)["trials"]) >= 2, "two trials")
    automl("pause", exp_id, check=True)
    paused_at = time.time()
    assert show(exp_id)["status"] == "paused"
    time.sleep(2.5)
    trials = show(exp_id)["trials"]
    assert all(t["started"] is None or t["started"] < paused_at for t in trials), "no trial starts while paused"
    assert all(t["status"] == "succeeded" for t in trials), "running trials went on to their end"
    automl("resume", exp_id, check=True)
    victim = wait_until(lambda: _kill_a_running_trial(exp_id), "a running trial killed")
    killed = wait_until(
        lambda: (lambda t: t if t["status"] != "running" else None)(
            next(t for t in show(exp_id)["trials"] if t["id"] == victim["id"])
        ),
        "the killed trial to end",
    )
    assert (killed["status"], killed["error"]) == ("killed", "killed by user")
    assert show(exp_id)["status"] == "running", "killing a trial leaves the experiment going"
    assert automl("kill", exp_id, "999").returncode == 2
    automl("stop", exp_id, check=True)
    view = wait_for_status(exp_id, "stopped")
    assert not [t for t in view["trials"] if t["status"] in ("running", "waiting")]
    assert automl("pause", exp_id).returncode == 2, "a stopped experiment is no longer the daemon's to control"


def _kill_a_running_trial(exp_id: str) -> dict | None:
    """`automl kill` on a trial seen running; None when it ended before the kill reached it (a busy machine)."""
    victim = next((t for t in show(exp_id)["trials"] if t["status"] == "running"), None)
    if victim is None:
        return None
    result = automl("kill", exp_id, str(victim["id"]))
    if result.returncode == 2 and "is not running" in result.stderr:
        return None
    assert result.returncode == 0, result.stderr
    return victim


def test_live_update_and_two_experiments_at_once(tmp_path, daemon):
    write_trial(tmp_path, STEPPING_TRIAL)
    first = submit(write_config(tmp_path, name="one.yml", max_trials=2, concurrency=1))
    second = submit(write_config(tmp_path, name="two.yml", max_trials=3, concurrency=1))
    updated = automl("update", first, "--concurrency", "3", "--max-trials", "5", check=True).stdout
    assert updated.strip() == f"update: experiment {first}: concurrency 1 -> 3, max_trials 2 -> 5"
    assert automl("update", first, "--concurrency", "0").returncode == 2
    assert automl("update", first).returncode == 2
    one, two = wait_for_status(first, "done"), wait_for_status(second, "done")
    assert len(one["trials"]) == 5 and len(two["trials"]) == 3
    spans = [(t["started"], t["ended"]) for t in one["trials"]]
    overlap = max(sum(1 for s, e in spans if s <= start < e) for start, _ in spans)
    assert overlap >= 2, "the raised concurrency was used"
    assert {t["status"] for t in one["trials"] + two["trials"]} == {"succeeded"}


def test_submit_of_a_bad_config_is_a_user_error_and_the_daemon_goes_on(tmp_path, daemon):
    result = automl("submit", str(write_config(tmp_path, concurrency=0)))
    assert result.returncode == 2 and "field 'concurrency'" in result.stderr
    assert automl("submit", str(tmp_path / "missing.yml")).returncode == 2
    assert json.loads(automl("daemon", "status", "--json", check=True).stdout)["running"] is True


def test_malformed_and_oversized_messages_get_errors_and_the_daemon_goes_on(daemon):
    for payload, code in (
        (b"not json\n", "bad_request"),
        (b'{"v": 1, "id": 1, "op": "fly"}\n', "bad_request"),
        (b"[1, 2]\n", "bad_request"),
        (b'{"v": 1, "id": 2, "op": "kill", "args": {"experiment": "x", "trial": "1"}}\n', "user_error"),
        (b'{"v": 1, "id": 3, "op": "pause"}\n', "user_error"),
        (b'{"v": 1, "id": 4, "op": "submit", "args": {"config": "c.yml", "environment": [1]}}\n', "user_error"),
        (b"x" * (2 * 1024 * 1024) + b"\n", "too_large"),
    ):
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(10)
            sock.connect(str(daemon / "daemon.sock"))
            try:
                sock.sendall(payload)
            except (BrokenPipeError, ConnectionResetError):
                pass
            reply = json.loads(sock.makefile("rb").readline())
            assert reply["ok"] is False and reply["error"]["code"] == code, reply
    assert json.loads(automl("daemon", "status", "--json", check=True).stdout)["running"] is True


def test_kill_9_at_many_moments_loses_nothing_and_runs_nothing_twice(tmp_path, home, daemon):
    gate = tmp_path / "gate"
    # The last three trials finish only once the crashes are over, so a fast machine cannot end the experiment early.
    write_trial(
        tmp_path,
        "import os\n"
        + STEPPING_TRIAL.replace(
            "trial.report_final",
            f"while int(trial.trial_id()) > 9 and not os.path.exists({str(gate)!r}):\n"
            "    time.sleep(0.05)\ntrial.report_final",
        ),
    )
    config = write_config(tmp_path, max_trials=12, concurrency=3)
    exp_id = submit(config)
    rng = random.Random(1234)
    kills = 0
    while kills < 10 and show(exp_id)["status"] == "running":
        time.sleep(rng.uniform(0.05, 0.8))
        os.kill(recorded_daemon_pid(home), signal.SIGKILL)
        kills += 1
        time.sleep(rng.uniform(0.0, 0.5))
        automl("daemon", "start", check=True)
    gate.touch()
    view = wait_for_status(exp_id, "done", "failed", "stopped")
    assert kills == 10, "the experiment outlived ten crashes"
    assert view["status"] == "done"
    trials = view["trials"]
    listing = "; ".join(f"{t['id']} {t['status']} {t['error']} retry_of={t['retry_of']}" for t in trials)
    assert len(trials) == 12, listing
    assert len({json.dumps(t["params"], sort_keys=True) for t in trials}) == 12
    store = Store(home, readonly=True)
    for t in trials:
        assert t["status"] == "succeeded", t
        steps = [(m.seq, m.step) for m in store.metrics(exp_id, t["id"])]
        assert steps == [(i, i + 1) for i in range(STEPS)] + [(STEPS, None)], (t["id"], steps)


def test_after_a_reboot_running_trials_are_interrupted_and_run_again(tmp_path, home, daemon):
    write_trial(tmp_path, STEPPING_TRIAL)
    space = {"x": {"_type": "uniform", "_value": [0, 1]}, "pace": {"_type": "choice", "_value": [0.5]}}
    exp_id = submit(write_config(tmp_path, search_space=space, max_trials=3, concurrency=2))
    wait_until(lambda: sum(t["steps"] for t in show(exp_id)["trials"]) >= 2, "two metrics")
    os.kill(recorded_daemon_pid(home), signal.SIGKILL)
    kill_leftover_trials(home)  # a reboot takes every trial process with it
    automl("daemon", "start", check=True)
    view = wait_for_status(exp_id, "done")
    interrupted = [t for t in view["trials"] if t["status"] == "interrupted"]
    assert interrupted and all("machine restart" in t["error"] for t in interrupted)
    for t in interrupted:
        lines = (home / "experiments" / exp_id / "trials" / str(t["id"]) / "metrics.jsonl").read_text().splitlines()
        assert t["steps"] == len(lines) > 0, "every metric the interrupted trial reported is kept"
    reruns = [t for t in view["trials"] if t["retry_of"] in {i["id"] for i in interrupted}]
    assert sorted(t["params"]["x"] for t in reruns) == sorted(t["params"]["x"] for t in interrupted)
    succeeded = [t for t in view["trials"] if t["status"] == "succeeded"]
    assert len(succeeded) == 3 and all(t["steps"] == STEPS for t in succeeded)


def test_after_a_crash_asha_remembers_its_rungs(tmp_path, home, daemon):
    """The weak last trial reaches ASHA's first rung only after the daemon was killed and started again: the
    restarted daemon must still know the three values recorded there before, and stop it (a stopper that forgot
    them would let it go on, as ASHA lets every trial go on at a rung with fewer than eta values)."""
    gate = tmp_path / "gate"
    write_trial(
        tmp_path,
        f"""
        import os
        while params['x'] == 0.0 and not os.path.exists({str(gate)!r}):
            time.sleep(0.05)
        for step in range(9):
            trial.report(params['x'])
            time.sleep(0.5 if params['x'] == 0.0 else 0.1)
        trial.report_final(params['x'])
        """,
    )
    config = write_config(
        tmp_path,
        tuner={"name": "GridSearch"},
        max_trials=4,
        concurrency=1,
        search_space={"x": {"_type": "choice", "_value": [1.0, 0.9, 0.8, 0.0]}},
        stopper={"name": "ASHA", "args": {"min_resource": 1, "max_resource": 9, "reduction_factor": 4}},
    )
    exp_id = submit(config)
    wait_until(
        lambda: any(t["params"]["x"] == 0.0 and t["status"] == "running" for t in show(exp_id)["trials"]),
        "the weak trial to run",
    )
    os.kill(recorded_daemon_pid(home), signal.SIGKILL)
    automl("daemon", "start", check=True)
    gate.touch()
    view = wait_for_status(exp_id, "done", "failed", "stopped")
    trials = {t["params"]["x"]: t for t in view["trials"]}
    statuses = {x: t["status"] for x, t in trials.items()}
    assert statuses == {1.0: "succeeded", 0.9: "succeeded", 0.8: "succeeded", 0.0: "early_stopped"}, statuses
    weak = trials[0.0]
    assert "stopped early by ASHA at step 1" in weak["error"], weak


def test_graceful_restart_keeps_trials_running_and_loses_nothing(tmp_path, home, daemon):
    write_trial(tmp_path, STEPPING_TRIAL)
    space = {"x": {"_type": "uniform", "_value": [0, 1]}, "pace": {"_type": "choice", "_value": [0.4]}}
    exp_id = submit(write_config(tmp_path, search_space=space, max_trials=3, concurrency=3))
    running = wait_until(
        lambda: (lambda ts: ts if len(ts) == 3 else None)(
            [t for t in show(exp_id)["trials"] if t["status"] == "running"]
        ),
        "three running trials",
    )
    automl("daemon", "restart", check=True)
    view = wait_for_status(exp_id, "done")
    assert [t["id"] for t in view["trials"]] == [t["id"] for t in running], "the same trials, none re-run"
    assert [(t["status"], t["steps"]) for t in view["trials"]] == [("succeeded", STEPS)] * 3


def test_two_clients_at_once(tmp_path, daemon):
    write_trial(tmp_path, STEPPING_TRIAL)
    exp_id = submit(write_config(tmp_path, max_trials=2))
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "automl", "daemon", "status", "--json"], stdout=subprocess.PIPE, text=True
        )
        for _ in range(4)
    ]
    outputs = [json.loads(p.communicate(timeout=60)[0]) for p in procs]
    assert all(o["running"] and o["pid"] == outputs[0]["pid"] for o in outputs)
    wait_for_status(exp_id, "done")


def test_subscribers_receive_an_experiments_live_events(tmp_path, daemon):
    from automl.control.client import Client

    write_trial(tmp_path, STEPPING_TRIAL)
    exp_id = submit(write_config(tmp_path, max_trials=2, concurrency=1))
    seen: list[tuple[str, dict]] = []
    with Client(daemon / "daemon.sock", timeout=60) as client:
        for event in client.subscribe(experiment=exp_id):
            assert event["experiment"] == exp_id
            seen.append((event["event"], event["data"]))
            if event["event"] == "experiment_status" and event["data"]["status"] == "done":
                break
    kinds = [kind for kind, _ in seen]
    assert "trial_started" in kinds and "trial_ended" in kinds
    metrics = [data for kind, data in seen if kind == "trial_metric" and data["kind"] == "intermediate"]
    assert metrics and all(isinstance(m["step"], int) for m in metrics)


def test_status_reports_the_daemons_memory_and_event_loop_lag(home):
    automl("daemon", "start", check=True)
    try:
        status = wait_until(
            lambda: (lambda s: s if s["loop_lag_ms"] else None)(
                json.loads(automl("daemon", "status", "--json", check=True).stdout)
            ),
            "a loop lag sample",
        )
        lag = status["loop_lag_ms"]
        assert 0 <= lag["p50"] <= lag["p99"] <= lag["max"] and lag["samples"] >= 1, lag
        rss = psutil.Process(status["pid"]).memory_info().rss / 2**20
        assert 0.5 * rss < status["rss_mib"] < 2 * rss, (status["rss_mib"], rss)
        text = automl("daemon", "status", check=True).stdout
        assert text.splitlines()[1].startswith("memory "), text
        assert "event-loop lag over the last" in text and "p99" in text, text
    finally:
        automl("daemon", "stop", check=True)


def test_a_blocked_event_loop_shows_as_lag():
    """A loop blocked for 0.2 s wakes the lag gauge at least 0.15 s late (its 50 ms sleep lies within the block)."""
    import asyncio

    from automl.engine.loop_lag import LoopLag

    async def block_once() -> dict:
        lag = LoopLag()
        gauge = asyncio.get_running_loop().create_task(lag.run())
        await asyncio.sleep(0.12)
        time.sleep(0.2)
        await asyncio.sleep(0.12)
        gauge.cancel()
        return lag.summary()

    summary = asyncio.run(block_once())
    assert summary["max"] >= 150 and summary["samples"] >= 2, summary
