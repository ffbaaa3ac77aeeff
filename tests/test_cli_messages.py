"""Helpful errors and output: 'did you mean', no repeated text, an unknown -o suffix refused, CSV columns alike
for every selection, `ls` in the dashboard's order, a finished experiment without a success said in words."""

from __future__ import annotations

import csv
import io
import json

from tests.helpers import automl, write_config, write_trial


def test_a_misspelled_command_or_choice_gets_a_suggestion(home):
    result = automl("shwo", "x")
    assert result.returncode == 2 and "unknown command 'shwo'; did you mean 'show'?" in result.stderr
    result = automl("export", "x", "--best", "--format", "yml")
    assert result.returncode == 2 and "did you mean 'yaml'?" in result.stderr


def test_a_misspelled_config_field_gets_a_suggestion_and_values_are_said_once(tmp_path, home):
    config = write_config(tmp_path, max_duration="10 minutes")
    config.write_text(config.read_text().replace("max_trials:", "max_trails:"))
    result = automl("run", str(config))
    assert result.returncode == 2
    assert "field 'max_trails': unknown field; did you mean 'max_trials'?" in result.stderr
    assert result.stderr.count("'10 minutes'") == 1, result.stderr
    assert not home.exists() or not (home / "experiments").exists() or not any((home / "experiments").iterdir())


def test_export_refuses_a_suffix_that_names_no_format(tmp_path, home):
    write_trial(tmp_path, "trial.report_final(params['x'])\n")
    automl("run", str(write_config(tmp_path, max_trials=2)), check=True)
    result = automl("export", "test", "--best", "-o", str(tmp_path / "best.yalm"))
    assert result.returncode == 2 and "'.yalm'" in result.stderr and "--format" in result.stderr
    assert not (tmp_path / "best.yalm").exists()
    automl("export", "test", "--best", "-o", str(tmp_path / "best.yml"), check=True)
    assert "x:" in (tmp_path / "best.yml").read_text()


def test_csv_columns_are_in_the_same_order_for_top_and_all(tmp_path, home):
    write_trial(tmp_path, "trial.report_final(params['x'])\n")
    space = {
        "opt": {
            "_type": "choice",
            "_value": [
                {"_name": "sgd", "momentum": {"_type": "uniform", "_value": [0, 1]}},
                {"_name": "adam", "beta": {"_type": "uniform", "_value": [0, 1]}},
            ],
        },
        "x": {"_type": "uniform", "_value": [0, 1]},
    }
    automl("run", str(write_config(tmp_path, search_space=space, max_trials=8, concurrency=4)), check=True)
    every = next(csv.reader(io.StringIO(automl("export", "test", "--all", "--format", "csv", check=True).stdout)))
    top = next(csv.reader(io.StringIO(automl("export", "test", "--top", "8", "--format", "csv", check=True).stdout)))
    assert {"opt.momentum", "opt.beta"} <= set(every), "the seed draws both optimizers"
    assert top == [c for c in every if c != "status"]


def test_ls_lists_newest_first_and_a_finished_experiment_without_a_success_says_so(tmp_path, home):
    write_trial(tmp_path, "sys.exit(3)\n")
    for name in ("old.yml", "new.yml"):
        automl("run", str(write_config(tmp_path, name, max_trials=2, max_failures=5)))
    listed = json.loads(automl("ls", "--json", check=True).stdout)
    assert [e["created"] for e in listed] == sorted((e["created"] for e in listed), reverse=True)
    newest = listed[0]["id"]
    text = automl("show", newest, check=True).stdout
    assert "best       none: no trial succeeded (2 ran)" in text
    result = automl("export", newest, "--best")
    assert result.returncode == 1 and result.stderr.strip().endswith("has no succeeded trial")


def test_a_misspelled_tuner_or_stopper_gets_a_suggestion_and_the_names_allowed(tmp_path, home):
    config = write_config(tmp_path, tuner={"name": "TPEE"}, stopper={"name": "Medianstp"})
    result = automl("run", str(config))
    assert result.returncode == 2
    assert "unknown tuner 'TPEE'; did you mean 'TPE'? available: TPE, Random," in result.stderr
    assert "'Medianstp'; did you mean 'Medianstop'? available: ASHA, Hyperband, Medianstop" in result.stderr
    assert not home.exists() or not (home / "experiments").exists() or not any((home / "experiments").iterdir())
