"""Early stopping end to end: a stopper ends real trial processes, the tuner learns their last value, and NNI
configs with an assessor or an advisor run with one."""

from __future__ import annotations

import json

import yaml

from tests.helpers import automl, show, write_config, write_trial

STEPPING = """
for step in range(9):
    trial.report(params['x'])
    time.sleep(0.15)
trial.report_final(params['x'])
"""


def _grid(tmp_path, values, stopper):
    """A config that runs each value of x once, in order, one trial at a time, under `stopper`."""
    return write_config(
        tmp_path,
        tuner={"name": "GridSearch"},
        max_trials=len(values),
        concurrency=1,
        search_space={"x": {"_type": "choice", "_value": values}},
        stopper=stopper,
    )


def test_asha_stops_the_weak_trials_and_the_tuner_learns_their_last_value(tmp_path, home):
    write_trial(tmp_path, STEPPING)
    config = _grid(
        tmp_path,
        [1.0, 0.9, 0.8, 0.1, 0.05, 0.0],
        {"name": "ASHA", "args": {"min_resource": 1, "max_resource": 9, "reduction_factor": 3}},
    )
    automl("run", str(config), check=True)
    trials = {t["params"]["x"]: t for t in show("test")["trials"]}
    assert trials[1.0]["status"] == "succeeded" and trials[1.0]["steps"] == 9
    for x in (0.1, 0.05, 0.0):
        t = trials[x]
        assert t["status"] == "early_stopped", t
        assert "stopped early by ASHA at step" in t["error"]
        assert t["steps"] < 9, "the process was ended before it reported every step"
        assert t["value"] == x, "the tuner learns the last intermediate value"
        assert t["exit_code"] is not None and t["exit_code"] < 0, "it was ended by a signal"
    best = json.loads(automl("export", "test", "--best", "--format", "json", check=True).stdout)
    assert best == {"x": 1.0}


def test_without_learning_from_stopped_trials_their_value_is_none(tmp_path, home):
    write_trial(tmp_path, STEPPING)
    config = _grid(
        tmp_path,
        [1.0, 0.9, 0.8, 0.0],
        {"name": "asha", "learn_from": "none", "args": {"max_resource": 9, "reduction_factor": 3}},
    )
    automl("run", str(config), check=True)
    stopped = [t for t in show("test")["trials"] if t["status"] == "early_stopped"]
    assert stopped and all(t["value"] is None for t in stopped)


BURST = """
trial.report(params['x'])
for step in range(3):
    trial.report(100 + params['x'])
for step in range(5):
    time.sleep(0.15)
    trial.report(100 + params['x'])
trial.report_final(params['x'])
"""


def test_learning_from_rungs_keeps_the_value_judged_even_when_the_trial_ran_on_before_it_was_stopped(tmp_path, home):
    write_trial(tmp_path, BURST)
    config = _grid(
        tmp_path,
        [1.0, 0.9, 0.8, 0.0],
        {"name": "ASHA", "learn_from": "rung", "args": {"min_resource": 1, "max_resource": 9, "reduction_factor": 3}},
    )
    automl("run", str(config), check=True)
    stopped = [t for t in show("test")["trials"] if t["status"] == "early_stopped"]
    assert {t["params"]["x"] for t in stopped} == {0.8, 0.0}, "judged at step 1 against 1.0"
    for t in stopped:
        assert "at step 1" in t["error"]
        assert t["steps"] > 1, "its next reports were written at once, before the stop reached it"
        assert t["value"] == t["params"]["x"], "the value at the step it was judged at, not its last"


def test_an_nni_config_with_an_assessor_runs_with_it(tmp_path, home):
    (tmp_path / "nni_trial.py").write_text(
        "import time\nimport nni\nx = nni.get_next_parameter()['x']\n"
        "for step in range(8):\n    nni.report_intermediate_result(x)\n    time.sleep(0.15)\n"
        "nni.report_final_result(x)\n"
    )
    (tmp_path / "space.json").write_text(json.dumps({"x": {"_type": "choice", "_value": [1.0, 0.2, 0.1]}}))
    (tmp_path / "config.yml").write_text(
        yaml.safe_dump(
            {
                "searchSpaceFile": "space.json",
                "trialCommand": "python3 nni_trial.py",
                "trialConcurrency": 1,
                "maxTrialNumber": 3,
                "tuner": {"name": "GridSearch", "classArgs": {"optimize_mode": "maximize"}},
                "assessor": {"name": "Medianstop", "classArgs": {"optimize_mode": "maximize", "start_step": 2}},
                "trainingService": {"platform": "local"},
            }
        )
    )
    automl("run", str(tmp_path / "config.yml"), check=True)
    statuses = {t["params"]["x"]: t["status"] for t in show("config")["trials"]}
    assert statuses[1.0] == "succeeded"
    assert "early_stopped" in (statuses[0.2], statuses[0.1]), statuses
