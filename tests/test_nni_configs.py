"""NNI config files run with NNI 3.0's semantics: the optimize direction as NNI decides it, Hyperband and BOHB
with TRIAL_BUDGET, maxExperimentDuration, v1 files, custom classes, and `automl convert`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from automl.config.model import load_config
from automl.config.nni import translate
from automl.errors import UserError
from tests.helpers import automl, show

SPACE = {"x": {"_type": "uniform", "_value": [0, 1]}}

# An unmodified NNI trial script: its objective is x, reported after `steps` intermediate results.
NNI_TRIAL = """\
import nni
params = {'x': 0.5}
params.update(nni.get_next_parameter())
for step in range(3):
    nni.report_intermediate_result(params['x'] * (step + 1) / 3)
nni.report_final_result(params['x'])
"""

# NNI's mnist-advisor example reads its budget from the parameters: params['TRIAL_BUDGET'].
NNI_BUDGET_TRIAL = """\
import nni
params = nni.get_next_parameter()
budget = params['TRIAL_BUDGET']
for step in range(budget):
    nni.report_intermediate_result(params['x'])
nni.report_final_result(params['x'])
"""


def _project(folder: Path, trial: str = NNI_TRIAL) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "nni_trial.py").write_text(trial)
    (folder / "search_space.json").write_text(json.dumps(SPACE))
    return folder


def _v2(**changes: Any) -> dict[str, Any]:
    config = {
        "experimentName": "nni-exp",
        "searchSpaceFile": "search_space.json",
        "trialCommand": "python3 nni_trial.py",
        "trialCodeDirectory": ".",
        "trialConcurrency": 2,
        "maxTrialNumber": 4,
        "tuner": {"name": "Random"},
        "trainingService": {"platform": "local"},
    }
    config.update(changes)
    return {k: v for k, v in config.items() if v is not None}


def _write(folder: Path, config: dict[str, Any], name: str = "config.yml") -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


# 1. the optimize direction


@pytest.mark.parametrize(
    ("tuner", "mode", "mode_from"),
    [
        ("TPE", "minimize", "TPE's default"),
        ("tpe", "minimize", "TPE's default"),
        ("Anneal", "minimize", "Anneal's default"),
        ("TPE_legacy", "minimize", "TPE_legacy's default"),
        ("Evolution", "maximize", "Evolution's default"),
        ("GP", "maximize", "GPTuner's default"),
        ("MetisTuner", "maximize", "MetisTuner's default"),
        ("PBTTuner", "maximize", "PBTTuner's default"),
        ("Hyperband", "maximize", "Hyperband's default"),
        ("BOHB", "maximize", "BOHB's default"),
        ("Random", "maximize", "NNI's default, as Random has no direction"),
        ("GridSearch", "maximize", "NNI's default, as GridSearch has no direction"),
        ("Batch", "maximize", "NNI's default, as BatchTuner has no direction"),
    ],
)
def test_a_tuner_without_optimize_mode_takes_its_nni_default(tuner, mode, mode_from):
    config, warnings = translate(_v2(tuner={"name": tuner}), "c.yml")
    assert config["objective"] == {"metric": "default", "mode": mode, "mode_from": mode_from}
    assert [w for w in warnings if "direction" in w] == [
        f"c.yml: the optimize direction is {mode}, from {mode_from} (NNI's rule: the tuner's "
        "classArgs.optimize_mode, else the assessor's, else the tuner's default); "
        "set tuner.classArgs.optimize_mode to choose"
    ]


def test_the_direction_comes_from_the_tuner_then_the_advisor_then_the_assessor():
    stated = translate(_v2(tuner={"name": "TPE", "classArgs": {"optimize_mode": "maximize"}}), "c.yml")
    assert stated[0]["objective"] == {"metric": "default", "mode": "maximize"}
    assert not any("direction" in w for w in stated[1])
    advisor = translate(_v2(tuner=None, advisor={"name": "BOHB", "classArgs": {"optimize_mode": "minimize"}}), "c")
    assert advisor[0]["objective"] == {"metric": "default", "mode": "minimize"}
    assessed, _ = translate(
        _v2(tuner={"name": "TPE"}, assessor={"name": "Medianstop", "classArgs": {"optimize_mode": "maximize"}}), "c.yml"
    )
    assert assessed["objective"] == {"metric": "default", "mode": "maximize", "mode_from": "the assessor"}
    custom, _ = translate(_v2(tuner={"className": "my_tuner.MyTuner"}), "c.yml")
    assert custom["objective"]["mode"] == "maximize"
    assert custom["objective"]["mode_from"] == "NNI's default, as the custom tuner my_tuner.MyTuner has no direction"


def test_a_tuner_and_assessor_that_disagree_run_in_the_tuners_direction(tmp_path):
    _project(tmp_path)
    path = _write(
        tmp_path,
        _v2(
            tuner={"name": "TPE", "classArgs": {"optimize_mode": "maximize"}},
            assessor={"name": "Medianstop", "classArgs": {"optimize_mode": "minimize", "start_step": 2}},
        ),
    )
    config, warnings = load_config(path)
    assert (config.objective.mode, config.objective.mode_from) == ("maximize", None)
    assert config.stopper.args == {"start_step": 2}
    assert [w for w in warnings if "assessor" in w] == [
        f"{path}: assessor.classArgs.optimize_mode is minimize but the tuner's is maximize; the tuner's wins "
        "(NNI's rule) and the assessor runs with maximize"
    ]


def test_nnis_sklearn_example_with_random_and_medianstop_exports_its_most_accurate_trial(tmp_path, home):
    """NNI's sklearn-classification-v2.yml: tuner Random (no direction), assessor Medianstop maximizing."""
    _project(tmp_path, "import nni\nparams = nni.get_next_parameter()\nnni.report_final_result(params['x'])\n")
    path = _write(
        tmp_path,
        _v2(
            maxExperimentDuration="15m",
            trialGpuNumber=0,
            assessor={"name": "Medianstop", "classArgs": {"optimize_mode": "maximize"}},
        ),
    )
    result = automl("run", str(path))
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("the optimize direction is maximize, from the assessor") == 1, result.stderr
    view = show("nni-exp")
    values = [t["value"] for t in view["trials"] if t["status"] == "succeeded"]
    assert len(values) == 4 and len(set(values)) == 4, view["trials"]
    assert view["objective"] == {"metric": "default", "mode": "maximize", "mode_from": "the assessor"}
    best = json.loads(automl("export", "nni-exp", "--best", "--format", "json", check=True).stdout)
    assert best["x"] == max(values)
    assert "direction: maximize (from the assessor)" in automl("show", "nni-exp", check=True).stdout


def test_random_with_curvefitting_runs_maximizing(tmp_path, home):
    _project(tmp_path)
    path = _write(
        tmp_path,
        _v2(maxTrialNumber=3, assessor={"name": "Curvefitting", "classArgs": {"epoch_num": 3, "start_step": 2}}),
    )
    result = automl("run", str(path))
    assert result.returncode == 0, result.stderr
    view = show("nni-exp")
    assert view["objective"]["mode"] == "maximize"
    assert {t["status"] for t in view["trials"]} <= {"succeeded", "early_stopped"}, view["trials"]


# 2. Hyperband and BOHB, with TRIAL_BUDGET


@pytest.mark.parametrize(
    ("field", "algorithm", "budget"),
    [
        (
            "tuner",
            {
                "name": "Hyperband",
                "classArgs": {"R": 5, "eta": 3, "optimize_mode": "maximize", "exec_mode": "parallelism"},
            },
            5,
        ),
        (
            "advisor",
            {"name": "BOHB", "classArgs": {"min_budget": 1, "max_budget": 4, "eta": 2, "optimize_mode": "maximize"}},
            4,
        ),
    ],
)
def test_hyperband_and_bohb_trials_read_their_budget_from_trial_budget(tmp_path, home, field, algorithm, budget):
    _project(tmp_path, NNI_BUDGET_TRIAL)
    path = _write(tmp_path, _v2(**{"tuner": None, field: algorithm}))
    result = automl("run", str(path))
    assert result.returncode == 0, result.stderr
    view = show("nni-exp")
    assert view["tuner"]["name"] == ("Random" if algorithm["name"] == "Hyperband" else "TPE")
    succeeded = [t for t in view["trials"] if t["status"] == "succeeded"]
    assert succeeded and all(t["steps"] == budget for t in succeeded), view["trials"]
    assert all("TRIAL_BUDGET" not in t["params"] for t in view["trials"])


def test_hyperband_args_become_our_stopper_and_the_full_budget_a_fixed_parameter():
    for field in ("tuner", "advisor"):
        config, warnings = translate(
            _v2(**{"tuner": None, field: {"name": "Hyperband", "classArgs": {"R": 27, "exec_mode": "serial"}}}), "c.yml"
        )
        assert config["tuner"] == {"name": "Random", "args": {}}
        assert config["stopper"] == {"name": "Hyperband", "args": {"max_resource": 27, "reduction_factor": 3}}
        assert config["fixed_params"] == {"TRIAL_BUDGET": 27}
        assert any(f"{field} classArgs exec_mode ignored" in w for w in warnings)
    config, _ = translate(_v2(tuner={"name": "bohb"}), "c.yml")
    assert (config["tuner"]["name"], config["fixed_params"]) == ("TPE", {"TRIAL_BUDGET": 3})
    assert config["stopper"]["args"] == {"min_resource": 1, "max_resource": 3, "reduction_factor": 3}
    with pytest.raises(UserError, match="Hyperband stops trials itself; drop 'assessor'"):
        translate(_v2(tuner={"name": "Hyperband"}, assessor={"name": "Medianstop"}), "c.yml")


def test_a_fixed_parameter_that_is_also_searched_is_refused(tmp_path, home):
    _project(tmp_path)
    path = _write(
        tmp_path,
        {
            "name": "fixed",
            "command": "python3 nni_trial.py",
            "search_space_file": "search_space.json",
            "fixed_params": {"x": 1, "y": 2},
        },
    )
    result = automl("run", str(path))
    assert result.returncode == 2
    assert "field 'fixed_params': x also in the search space" in result.stderr
    assert not home.exists()


# 3. maxExperimentDuration


def test_max_experiment_duration_lets_running_trials_finish_like_nni():
    config, _ = translate(_v2(maxExperimentDuration="1h"), "c.yml")
    assert (config["max_duration"], config["on_max_duration"]) == ("1h", "finish")
    assert "on_max_duration" not in translate(_v2(), "c.yml")[0]


# 4. NNI v1 files


def _v1(**changes: Any) -> dict[str, Any]:
    """NNI's sklearn-classification.yml (v1), with its paths relative to a config folder beside the code."""
    config = {
        "authorName": "nni",
        "experimentName": "nni-v1",
        "maxExecDuration": "5m",
        "maxTrialNum": 3,
        "trialConcurrency": 2,
        "searchSpacePath": "../code/search_space.json",
        "tuner": {"builtinTunerName": "Random"},
        "assessor": {"builtinAssessorName": "Medianstop", "classArgs": {"optimize_mode": "maximize"}},
        "trial": {"codeDir": "../code", "command": "python3 nni_trial.py", "gpuNum": 0},
        "useAnnotation": False,
        "multiPhase": False,
        "multiThread": False,
        "trainingServicePlatform": "local",
    }
    config.update(changes)
    return {k: v for k, v in config.items() if v is not None}


def test_an_nni_v1_config_runs_with_paths_relative_to_its_folder(tmp_path, home):
    _project(tmp_path / "code")
    (tmp_path / "conf").mkdir()
    path = _write(tmp_path / "conf", _v1(localConfig={"useActiveGpu": False, "maxTrialNumPerGpu": 2}))
    result = automl("run", str(path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert 'Config field "authorName" is no longer supported' in result.stderr
    view = show("nni-v1")
    assert [t["status"] for t in view["trials"]] == ["succeeded"] * 3, view["trials"]
    assert view["objective"]["mode"] == "maximize"
    config, _ = load_config(path)
    assert config.working_dir == (tmp_path / "code").resolve() and config.max_duration == 300
    assert config.gpu.max_trials_per_gpu == 2 and config.on_max_duration == "finish"


def test_automl_convert_prints_v2_or_our_config_for_a_v1_file(tmp_path, home):
    _project(tmp_path / "code")
    (tmp_path / "conf").mkdir()
    path = _write(tmp_path / "conf", _v1())
    v2 = automl("convert", str(path), "--to", "nni", check=True)
    assert yaml.safe_load(v2.stdout) == {
        "experimentName": "nni-v1",
        "trialConcurrency": 2,
        "maxExperimentDuration": "5m",
        "maxTrialNumber": 3,
        "searchSpaceFile": "../code/search_space.json",
        "useAnnotation": False,
        "trialCommand": "python3 nni_trial.py",
        "trialCodeDirectory": "../code",
        "trialGpuNumber": 0,
        "tuner": {"name": "Random"},
        "assessor": {"name": "Medianstop", "classArgs": {"optimize_mode": "maximize"}},
        "trainingService": {"platform": "local"},
    }
    ours = automl("convert", str(path), check=True)
    assert yaml.safe_load(ours.stdout) == {
        "name": "nni-v1",
        "command": "python3 nni_trial.py",
        "working_dir": "../code",
        "search_space_file": "../code/search_space.json",
        "objective": {"metric": "default", "mode": "maximize"},
        "tuner": {"name": "Random", "args": {}},
        "stopper": {"name": "Medianstop", "args": {}},
        "max_trials": 3,
        "max_duration": "5m",
        "on_max_duration": "finish",
        "concurrency": 2,
        "resources": {"gpus": 0},
    }
    assert "from the assessor" in ours.stderr
    converted = tmp_path / "conf" / "automl.yml"
    converted.write_text(ours.stdout)
    assert automl("run", str(converted), check=True).returncode == 0
    assert [t["status"] for t in show("nni-v1")["trials"]] == ["succeeded"] * 3


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            _v1(trainingServicePlatform="remote"),
            "NNI's v1 config format with trainingServicePlatform: remote; only the local platform is supported",
        ),
        (_v1(multiPhase=True), "Multi-phase is no longer supported"),
        (_v1(localConfig={"gpuIndices": "0", "colour": "red"}), "localConfig not fully converted: {'colour': 'red'}"),
        (_v1(tuner={"codeDir": ".", "className": "MyTuner"}), "field 'classFileName' is required here"),
        (_v1(trial=None), "field 'trialCommand': required"),
        ({"name": "ours", "command": "python3 x.py", "search_space": SPACE}, "not an NNI config"),
    ],
)
def test_a_bad_nni_file_exits_2_with_a_clear_message(tmp_path, home, config, message):
    path = _write(tmp_path, config)
    command = ["convert", str(path), "--to", "nni"] if "not an NNI" in message else ["run", str(path)]
    result = automl(*command)
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert not home.exists()


def test_convert_refuses_a_bad_file_as_run_does(tmp_path):
    path = _write(tmp_path, _v1(multiPhase=True))
    for to in ("automl", "nni"):
        result = automl("convert", str(path), "--to", to)
        assert result.returncode == 2 and "Multi-phase is no longer supported" in result.stderr, result.stderr
        assert result.stdout == ""


# 5. custom tuners and assessors


def test_custom_tuners_and_assessors_translate_to_class_name_and_code_directory():
    config, _ = translate(
        _v2(
            tuner={
                "className": "my_tuner.MyTuner",
                "codeDirectory": "tuners",
                "classArgs": {"optimize_mode": "minimize", "seed": 1},
            },
            assessor={"className": "my_assessor.Stop", "classArgs": {"patience": 2}},
        ),
        "c.yml",
    )
    assert config["tuner"] == {
        "class_name": "my_tuner.MyTuner",
        "code_directory": "tuners",
        "args": {"optimize_mode": "minimize", "seed": 1},
    }
    assert config["stopper"] == {"class_name": "my_assessor.Stop", "args": {"patience": 2}}
    assert config["objective"] == {"metric": "default", "mode": "minimize"}
    with pytest.raises(UserError, match="unknown field\\(s\\) name"):
        translate(_v2(tuner={"className": "a.B", "name": "TPE"}), "c.yml")


def test_a_v1_custom_tuner_translates_like_nni_2():
    config, _ = translate(
        _v1(
            tuner={
                "codeDir": "../tuners",
                "classFileName": "demo_tuner.py",
                "className": "DemoTuner",
                "classArgs": {"optimize_mode": "maximize"},
            }
        ),
        "c.yml",
    )
    assert config["tuner"] == {
        "class_name": "demo_tuner.DemoTuner",
        "code_directory": "../tuners",
        "args": {"optimize_mode": "maximize"},
    }


# BatchTuner: NNI's mnist-batch-tune-keras space, and plain values handed out bare as NNI does

NNI_BATCH_TRIAL = """\
import json, nni
params = nni.get_next_parameter()
print(json.dumps(params))
nni.report_final_result(params['learning_rate'] if isinstance(params, dict) else float(params))
"""


@pytest.mark.parametrize(
    "values",
    [
        [{"optimizer": "Adam", "learning_rate": 0.001}, {"optimizer": "SGD", "learning_rate": 0.01}],
        [0.001, 0.01],
    ],
)
def test_nni_batch_tuner_runs_nni_spaces_and_hands_plain_values_out_bare(tmp_path, home, values):
    project = _project(tmp_path / "p", NNI_BATCH_TRIAL)
    (project / "search_space.json").write_text(json.dumps({"combine_params": {"_type": "choice", "_value": values}}))
    config = _write(project, _v2(tuner={"name": "BatchTuner"}, maxTrialNumber=10, trialConcurrency=1))
    result = automl("run", str(config))
    assert result.returncode == 0, result.stdout + result.stderr
    exp_id = json.loads(automl("ls", "--json", check=True).stdout)[0]["id"]
    view = show(exp_id)
    assert [t["status"] for t in view["trials"]] == ["succeeded"] * 2
    logs = [(home / "experiments" / exp_id / "trials" / str(t["id"]) / "trial.log").read_text() for t in view["trials"]]
    received = [json.loads(log.strip().splitlines()[-1].split(" PRINT ", 1)[1]) for log in logs]
    assert received == values, "each trial gets its value as NNI's BatchTuner hands it out"
