"""How experiments end, said honestly: failed when their trials all fail, why a tuner stopped early, what
max_duration does, and one trial in full from `automl show EXP TRIAL`."""

from __future__ import annotations

import json

from tests.helpers import automl, run_experiment_id, show, write_config, write_trial


def test_an_experiment_whose_trials_all_fail_ends_failed_and_says_why(tmp_path, home):
    write_trial(tmp_path, "raise ModuleNotFoundError(\"No module named 'torchvision'\")\n")
    result = automl("run", str(write_config(tmp_path, max_trials=3, concurrency=1)))
    assert result.returncode == 1, result.stdout + result.stderr
    why = (
        "all 3 trials failed; most common error (3 of 3): exited with code 1: "
        "ModuleNotFoundError: No module named 'torchvision'"
    )
    assert f"failed: {why}" in result.stdout
    view = show(run_experiment_id(result.stdout))
    assert (view["status"], view["error"]) == ("failed", why)
    assert "error      " + why in automl("show", view["id"]).stdout


def test_max_failures_ends_a_broken_experiment_before_it_spends_its_budget(tmp_path, home):
    write_trial(tmp_path, "sys.exit(3)\n")
    result = automl("run", str(write_config(tmp_path, max_trials=50, concurrency=1, max_failures=3)))
    assert result.returncode == 1
    view = show(run_experiment_id(result.stdout))
    assert [t["status"] for t in view["trials"]] == ["failed"] * 3
    assert view["error"] == (
        "the first 3 trials all failed (max_failures: 3); most common error (3 of 3): exited with code 3"
    )


def test_failures_after_a_trial_worked_do_not_end_the_experiment(tmp_path, home):
    write_trial(tmp_path, "if trial.trial_id() != '1':\n    sys.exit(3)\ntrial.report_final(0.5)\n")
    result = automl("run", str(write_config(tmp_path, max_trials=5, concurrency=1, max_failures=2)))
    assert result.returncode == 0, result.stdout + result.stderr
    view = show(run_experiment_id(result.stdout))
    assert [t["status"] for t in view["trials"]] == ["succeeded"] + ["failed"] * 4
    assert (view["status"], view["error"], view["note"]) == ("done", None, "max_trials reached (5 trials)")


def test_a_tuner_out_of_configurations_says_so_while_running_and_after(tmp_path, home):
    write_trial(tmp_path, "trial.report_final(params['k'])\n")
    config = write_config(
        tmp_path,
        search_space={"k": {"_type": "choice", "_value": [1, 2]}},
        tuner={"name": "GridSearch"},
        max_trials=10,
        concurrency=1,
    )
    result = automl("run", str(config))
    assert result.returncode == 0, result.stderr
    note = "the tuner has no more configurations after 2: GridSearch: Search space fully explored"
    assert note in result.stdout.splitlines()
    assert f"done: {note}" in result.stdout
    view = show(run_experiment_id(result.stdout))
    assert (view["status"], view["note"]) == ("done", note)
    assert f"note       {note}" in automl("show", view["id"]).stdout


def test_on_max_duration_finish_lets_running_trials_end_and_starts_no_more(tmp_path, home):
    write_trial(tmp_path, "time.sleep(3)\ntrial.report_final(1.0)\n")
    config = write_config(tmp_path, max_trials=10, concurrency=2, max_duration=1, on_max_duration="finish")
    result = automl("run", str(config))
    assert result.returncode == 0, result.stderr
    view = show(run_experiment_id(result.stdout))
    assert [t["status"] for t in view["trials"]] == ["succeeded"] * 2
    assert view["status"] == "done"
    assert view["note"] == "max_duration reached: no new trials; 2 running trial(s) may finish"


def test_show_one_trial_gives_its_whole_curve_params_usage_and_files(tmp_path, home):
    write_trial(tmp_path, "for step in range(3):\n    trial.report(step / 10)\ntrial.report_final(0.25)\n")
    result = automl("run", str(write_config(tmp_path, max_trials=1, concurrency=1)))
    exp_id = run_experiment_id(result.stdout)
    view = json.loads(automl("show", exp_id, "1", "--json", check=True).stdout)
    assert (view["id"], view["status"], view["value"], view["experiment"]) == (1, "succeeded", 0.25, exp_id)
    assert [(p["kind"], p["step"], p["value"]) for p in view["curve"]] == [
        ("intermediate", 1, 0.0),
        ("intermediate", 2, 0.1),
        ("intermediate", 3, 0.2),
        ("final", None, 0.25),
    ]
    assert all(view["started"] <= p["time"] <= view["ended"] for p in view["curve"])
    assert set(view["params"]) == {"x", "k"} and view["cpu_seconds"] is not None
    assert json.loads(open(view["files"]["params"]).read()) == view["params"]
    text = automl("show", exp_id, "1", check=True).stdout
    assert f"trial 1 of test [{exp_id}]  status succeeded  default 0.25" in text
    assert "curve      4 report(s):" in text and view["files"]["stdout"] in text
    missing = automl("show", exp_id, "7")
    assert missing.returncode == 2 and f"experiment {exp_id} (test) has no trial 7" in missing.stderr
