"""Trials that end while the daemon is down keep their true end time, CPU time and peak memory."""

from __future__ import annotations

import json
import os
import signal
import time

from tests.helpers import (
    automl,
    recorded_daemon_pid,
    show,
    submit,
    wait_for_status,
    wait_until,
    write_config,
    write_trial,
)

MIB = 200


def test_trials_that_end_while_the_daemon_is_down_keep_their_true_end_and_usage(tmp_path, home, daemon):
    gate = tmp_path / "gate"
    write_trial(
        tmp_path,
        f"""
        import os
        while not os.path.exists({str(gate)!r}):
            time.sleep(0.05)
        block = b"x" * ({MIB} * 2**20)
        begun = time.process_time()
        while time.process_time() - begun < 1.0:
            pass
        trial.report_final(len(block) / 2**20)
        """,
    )
    exp_id = submit(write_config(tmp_path, max_trials=2, concurrency=2))
    wait_until(lambda: [t["status"] for t in show(exp_id)["trials"]] == ["running", "running"], "two running trials")
    os.kill(recorded_daemon_pid(home), signal.SIGKILL)
    gate.touch()
    trial_dirs = [home / "experiments" / exp_id / "trials" / str(n) for n in (1, 2)]
    wait_until(lambda: all((d / "exit_code").exists() for d in trial_dirs), "both trials' recorded exit codes")
    time.sleep(1.0)
    restarted = time.time()
    automl("daemon", "start", check=True)
    view = wait_for_status(exp_id, "done")
    for t, trial_dir in zip(view["trials"], trial_dirs, strict=True):
        recorded = json.loads((trial_dir / "usage.json").read_text())
        assert t["status"] == "succeeded" and t["value"] == MIB, t
        assert t["ended"] == recorded["ended"] < restarted, "the trial's own end, not the restart"
        assert abs(t["ended"] - os.stat(trial_dir / "exit_code").st_mtime) < 1.0
        assert t["cpu_seconds"] >= 0.5, t
        assert t["peak_rss_mib"] >= 0.75 * MIB, t
