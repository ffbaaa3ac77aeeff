"""`notify: {command: [...]}`: a command run when an experiment ends, with its id, name, status and best value in
its environment; its failure is logged and changes nothing else."""

from __future__ import annotations

import json
import sys
import time

from tests.helpers import automl, show, write_config, write_trial

WRITE_ENV = (
    "import json, os, sys; json.dump({k: v for k, v in os.environ.items() if k.startswith('AUTOML_')}, "
    "open(sys.argv[1], 'w'))"
)


def test_the_notify_command_gets_the_experiment_in_its_environment(tmp_path, home):
    write_trial(tmp_path, "trial.report_final(params['x'])\n")
    out = tmp_path / "notified.json"
    config = write_config(tmp_path, max_trials=2, notify={"command": [sys.executable, "-c", WRITE_ENV, str(out)]})
    automl("run", str(config), check=True)
    view = show("test")
    told = json.loads(out.read_text())
    assert {k: told[k] for k in told if k != "AUTOML_HOME"} == {
        "AUTOML_EXPERIMENT_ID": view["id"],
        "AUTOML_EXPERIMENT_NAME": "test",
        "AUTOML_EXPERIMENT_STATUS": "done",
        "AUTOML_BEST_VALUE": repr(view["best"]["value"]),
        "AUTOML_BEST_TRIAL": str(view["best"]["id"]),
        "AUTOML_METRIC": "default",
    }


def test_a_failing_notify_command_is_logged_and_changes_nothing(tmp_path, home):
    write_trial(tmp_path, "trial.report_final(params['x'])\n")
    config = write_config(tmp_path, max_trials=1, notify={"command": "sh -c 'echo no mail server >&2; exit 3'"})
    result = automl("run", str(config))
    assert result.returncode == 0, result.stderr
    assert "notify command exited with code 3: no mail server" in result.stderr
    assert show("test")["status"] == "done"
    log = (home / "experiments" / show("test")["id"] / "experiment.log").read_text()
    assert "notify command exited with code 3" in log


def test_the_daemon_runs_the_notify_command_when_an_experiment_ends(tmp_path, home):
    write_trial(tmp_path, "trial.report_final(params['x'])\n")
    out = tmp_path / "notified.json"
    config = write_config(tmp_path, max_trials=1, notify={"command": [sys.executable, "-c", WRITE_ENV, str(out)]})
    automl("daemon", "start", check=True)
    try:
        exp_id = automl("submit", str(config), check=True).stdout.strip()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not out.exists():
            time.sleep(0.1)
        time.sleep(0.2)
        told = json.loads(out.read_text())
        assert (told["AUTOML_EXPERIMENT_ID"], told["AUTOML_EXPERIMENT_STATUS"]) == (exp_id, "done")
    finally:
        automl("daemon", "stop")
