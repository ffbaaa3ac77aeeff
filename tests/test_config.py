"""Config loading: our format, NNI v2 files, and every kind of bad config (clear message, exit 2, store untouched)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from automl.config.model import load_config, parse_duration
from automl.errors import UserError
from tests.helpers import automl, write_config, write_trial


@pytest.fixture
def project(tmp_path: Path) -> Path:
    write_trial(tmp_path, "trial.report_final(params['x'])\n")
    (tmp_path / "space.json").write_text(json.dumps({"x": {"_type": "uniform", "_value": [0, 1]}}))
    return tmp_path


def test_our_format_resolves_paths_and_loads_the_space_file(project):
    path = write_config(
        project,
        search_space=None,
        search_space_file="space.json",
        max_duration="1.5h",
        trial_timeout=90,
        resources={"cpus": 2, "gpus": 0.5},
        tuner={"name": "tpe"},
    )
    config, warnings = load_config(path)
    assert warnings == []
    assert config.working_dir == project.resolve()
    assert config.search_space == {"x": {"_type": "uniform", "_value": [0, 1]}}
    assert config.max_duration == 5400 and config.trial_timeout == 90
    assert config.tuner.name == "TPE"
    assert config.argv() == ["python", "trial.py"]


def test_command_with_shell_syntax_runs_through_sh_and_lists_run_as_given(project):
    config, _ = load_config(write_config(project, command="python trial.py > out.txt"))
    assert config.argv() == ["/bin/sh", "-c", "python trial.py > out.txt"]
    config, _ = load_config(write_config(project, command=["python", "trial.py", "--name", "a b"]))
    assert config.argv() == ["python", "trial.py", "--name", "a b"]


def test_nni_v2_config_translates(project):
    nni = {
        "experimentName": "nni-exp",
        "searchSpaceFile": "space.json",
        "trialCommand": "python3 trial.py",
        "trialCodeDirectory": ".",
        "trialConcurrency": 3,
        "maxTrialNumber": 12,
        "maxExperimentDuration": "10m",
        "maxTrialDuration": "2m",
        "trialGpuNumber": 1,
        "logLevel": "info",
        "tuner": {"name": "TPE", "classArgs": {"optimize_mode": "maximize", "seed": 3}},
        "trainingService": {"platform": "local", "useActiveGpu": True, "maxTrialNumberPerGpu": 2, "gpuIndices": "0,2"},
    }
    path = project / "config.yml"
    path.write_text(yaml.safe_dump(nni))
    config, warnings = load_config(path)
    assert config.name == "nni-exp" and config.concurrency == 3 and config.max_trials == 12
    assert config.max_duration == 600 and config.trial_timeout == 120
    assert config.objective.mode == "maximize" and config.tuner.args == {"seed": 3}
    assert config.resources.gpus == 1
    assert (config.gpu.indices, config.gpu.max_trials_per_gpu, config.gpu.use_active_gpu) == ([0, 2], 2, True)
    assert warnings == [f"{path}: 'logLevel' is ignored: automl writes its own log"]


@pytest.mark.parametrize(("tuner", "mode"), [("Random", "maximize"), ("TPE", "minimize")])
def test_nni_tuner_without_optimize_mode_takes_nni_direction(project, tuner, mode):
    path = project / "config.yml"
    path.write_text(
        yaml.safe_dump(
            {
                "searchSpaceFile": "space.json",
                "trialCommand": "python3 trial.py",
                "trialConcurrency": 1,
                "tuner": {"name": tuner},
                "trainingService": {"platform": "local"},
            }
        )
    )
    assert load_config(path)[0].objective.mode == mode


@pytest.mark.parametrize(
    ("value", "seconds"), [(30, 30), ("45s", 45), ("10m", 600), ("1.5h", 5400), ("2d", 172800), (" 5 m ", 300)]
)
def test_durations(value, seconds):
    assert parse_duration(value) == seconds


BAD_CONFIGS = [
    ({"concurrency": 0}, "field 'concurrency': Input should be greater than or equal to 1"),
    ({"max_trials": "many"}, "field 'max_trials'"),
    ({"max_duration": "10 minutes"}, "expected seconds or a duration such as '90s'"),
    ({"colour": "red"}, "field 'colour': unknown field; allowed here: name, command"),
    (
        {"objective": {"metric": "acc", "mode": "up"}},
        "field 'objective.mode': Input should be 'maximize' or 'minimize'",
    ),
    ({"objective": {"goal": "max"}}, "field 'objective.goal': unknown field; allowed here: metric, mode"),
    ({"tuner": {"name": "Magic"}}, "unknown tuner 'Magic'; available: TPE"),
    ({"search_space_file": "space.json"}, "give exactly one of search_space (inline) or search_space_file"),
    ({"search_space": None}, "give exactly one of search_space"),
    ({"search_space": None, "search_space_file": "nope.json"}, "cannot read"),
    ({"search_space": {"x": {"_type": "uniform", "_value": [2, 1]}}}, "parameter 'x': uniform needs low <= high"),
    ({"command": ""}, "command must not be empty"),
    ({"command": "python missing.py"}, "script"),
    ({"command": "no-such-program-xyz --flag"}, "program 'no-such-program-xyz' not found on PATH"),
    ({"working_dir": "nowhere"}, "field 'working_dir': folder"),
    ({"resources": {"gpus": 1.5}}, "gpus must be a whole number"),
    ({"retries": -1}, "field 'retries'"),
]
BAD_TUNER_ARGS = [  # refused when the tuner is created, before anything is written
    ({"stopper": {"name": "ASHA", "args": {"reduction_factor": 1}}}, "field 'stopper': ASHA: invalid classArgs"),
    ({"stopper": {"name": "asha", "learn_from": "worst"}}, "learn_from"),
    (
        {"tuner": {"name": "GPTuner"}, "stopper": {"name": "asha", "learn_from": "rung"}},
        "needs a tuner that learns from the order of results alone (TPE, Random, Evolution, GridSearch, BatchTuner)",
    ),
    ({"tuner": {"name": "TPE", "args": {"no_such_arg": 1}}}, "no_such_arg"),
    ({"tuner": {"name": "TPE", "args": {"optimize_mode": "minimize"}}}, "optimize_mode"),
]
BAD_FILES = [
    ("missing.yml", None, "config file not found"),
    ("broken.yml", "name: [unclosed", "not valid YAML"),
    ("broken.json", "{", "not valid JSON"),
    ("list.yml", "- a\n- b\n", "the config must be a mapping"),
]
BAD_NNI = [
    ({"trainingService": {"platform": "remote"}}, "'remote' is not supported; allowed: local"),
    ({"trainingService": {"platform": "local", "foo": 1}}, "trainingService': unknown field(s) foo"),
    ({"nniManagerPort": 1}, "unknown NNI field(s) nniManagerPort"),
    ({"assessor": {"name": "Oracle"}}, "unknown early-stopping strategy 'Oracle'"),
    ({"assessor": {"name": "ASHA", "classArgs": {"eta": 3}}}, "ASHA has no classArgs 'eta'"),
    ({"advisor": {"name": "SMAC"}, "tuner": None}, "'advisor.name': 'SMAC' is not supported"),
    ({"advisor": {"name": "Hyperband"}}, "give either 'tuner' or 'advisor', not both"),
    ({"useAnnotation": True}, "'useAnnotation: true' is not supported"),
    ({"trainingService": {"platform": "local", "gpuIndices": "a,b"}}, "gpuIndices"),
    ({"trialCommand": None}, "field 'trialCommand': required"),
    ({"tuner": {"name": "TPE", "classArgs": 5}}, "field 'tuner.classArgs': must be a mapping"),
    ({"tuner": {"name": "TPE", "classArgs": {"optimize_mode": "up"}}}, "'tuner.classArgs.optimize_mode'"),
]


def _nni_config(project: Path, **changes) -> Path:
    base = {
        "searchSpaceFile": "space.json",
        "trialCommand": "python3 trial.py",
        "trialConcurrency": 1,
        "tuner": {"name": "Random"},
        "trainingService": {"platform": "local"},
    }
    base.update(changes)
    path = project / "nni.yml"
    path.write_text(yaml.safe_dump({k: v for k, v in base.items() if v is not None}))
    return path


def _bad_config_paths(project: Path) -> list[tuple[Path, str]]:
    cases = []
    for i, (fields, message) in enumerate(BAD_CONFIGS + BAD_TUNER_ARGS):
        cases.append((write_config(project, name=f"bad{i}.yml", **fields), message))
    for name, text, message in BAD_FILES:
        if text is not None:
            (project / name).write_text(text)
        cases.append((project / name, message))
    for i, (changes, message) in enumerate(BAD_NNI):
        path = _nni_config(project, **changes).rename(project / f"nni{i}.yml")
        cases.append((path, message))
    return cases


@pytest.mark.parametrize(("fields", "message"), BAD_CONFIGS)
def test_bad_configs_raise_user_errors(project, fields, message):
    with pytest.raises(UserError) as e:
        load_config(write_config(project, **fields))
    assert message in str(e.value)


def test_every_bad_config_exits_2_with_a_clear_message_and_leaves_the_store_untouched(project, home):
    good = write_config(project, name="good.yml", max_trials=1, concurrency=1)
    automl("run", str(good), check=True)
    before = (automl("ls", "--json", check=True).stdout, sorted(p.name for p in (home / "experiments").iterdir()))
    failures = []
    for path, message in _bad_config_paths(project):
        result = automl("run", str(path))
        if result.returncode != 2 or message not in result.stderr or "Traceback" in result.stderr:
            failures.append(f"{path.name}: exit {result.returncode}, wanted {message!r}\n{result.stderr}")
    assert not failures, "\n".join(failures)
    after = (automl("ls", "--json", check=True).stdout, sorted(p.name for p in (home / "experiments").iterdir()))
    assert after == before


def test_a_bad_config_on_a_fresh_machine_creates_no_data_directory(project, home):
    result = automl("run", str(write_config(project, concurrency=0)))
    assert result.returncode == 2
    assert not home.exists()


def test_a_stored_config_validates_again_as_the_daemon_resumes_it(project):
    from automl.config.model import config_from_store

    config, _ = load_config(write_config(project, search_space=None, search_space_file="space.json"))
    again = config_from_store(config.model_dump(mode="json"))
    assert again.search_space == config.search_space and again.search_space_file is None
    assert again.model_dump(exclude={"search_space_file"}) == config.model_dump(exclude={"search_space_file"})


def test_nni_assessors_and_advisors_become_stoppers(project):
    config, _ = load_config(
        _nni_config(
            project, assessor={"name": "Medianstop", "classArgs": {"optimize_mode": "minimize", "start_step": 3}}
        )
    )
    assert (config.stopper.name, config.stopper.args) == ("Medianstop", {"start_step": 3})
    config, _ = load_config(
        _nni_config(
            project,
            assessor={"name": "asha", "classArgs": {"min_resource": 1, "max_resource": 27, "reduction_factor": 3}},
        )
    )
    assert (config.stopper.name, config.stopper.args["max_resource"]) == ("ASHA", 27)
    config, warnings = load_config(
        _nni_config(
            project,
            tuner=None,
            advisor={
                "name": "BOHB",
                "classArgs": {
                    "optimize_mode": "maximize",
                    "min_budget": 1,
                    "max_budget": 27,
                    "eta": 3,
                    "num_samples": 64,
                },
            },
        )
    )
    assert (config.tuner.name, config.objective.mode) == ("TPE", "maximize")
    assert config.stopper.model_dump(exclude_none=True) == {
        "name": "Hyperband",
        "args": {"min_resource": 1, "max_resource": 27, "reduction_factor": 3},
        "learn_from": "last",
    }
    assert any("num_samples" in w for w in warnings)
    config, _ = load_config(_nni_config(project, tuner=None, advisor={"name": "Hyperband", "classArgs": {"R": 9}}))
    assert (config.tuner.name, config.stopper.args) == ("Random", {"max_resource": 9, "reduction_factor": 3})
    assert config.fixed_params == {"TRIAL_BUDGET": 9}


def test_the_launcher_is_checked_before_anything_is_written(project, home):
    local_with_address = write_config(project, launcher={"name": "local", "address": "127.0.0.1:6379"})
    result = automl("run", str(local_with_address))
    assert result.returncode == 2 and "launcher" in result.stderr and "only apply to the ray launcher" in result.stderr
    no_address = write_config(project, launcher={"name": "ray"})
    result = automl("run", str(no_address))
    assert result.returncode == 2 and "launcher.address" in result.stderr and "--ray" in result.stderr
    not_an_address = write_config(project, launcher={"name": "ray", "address": "head-node"})
    result = automl("run", str(not_an_address))
    assert result.returncode == 2 and "is not HOST:PORT" in result.stderr
    local_with_timeout = write_config(project, launcher={"name": "local", "reconnect_timeout": "5m"})
    result = automl("run", str(local_with_timeout))
    assert result.returncode == 2 and "reconnect_timeout only apply to the ray launcher" in result.stderr
    assert not (home / "automl.db").exists()


def test_the_reconnect_timeout_takes_a_duration():
    from automl.config.model import LauncherSpec

    assert LauncherSpec(name="ray", address="h:1", reconnect_timeout="10m").reconnect_timeout == 600
    assert LauncherSpec(name="ray", address="h:1").reconnect_timeout == 600
    with pytest.raises(ValueError, match="reconnect_timeout"):
        LauncherSpec(name="ray", address="h:1", reconnect_timeout="0s")
