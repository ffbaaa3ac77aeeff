"""The user's own NNI Tuner and Assessor classes, loaded and called as NNI does, in `automl run` and the daemon."""

from __future__ import annotations

import json
import math
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from automl.config.model import load_config
from automl.errors import UserError
from automl.stoppers import check_stopper, create_stopper
from automl.tuners import NoMoreTrials, UserCodeError, create_tuner
from tests.helpers import automl, show, submit, wait_for_status, wait_until

TUNER_MODULE = '''
import json
import numpy as np
import nni
from nni.tuner import Tuner


class RecordingTuner(Tuner):
    """Writes every call NNI makes into `record`; raises in the method named `fail_in`."""

    def __init__(self, record, optimize_mode=None, fail_in=None, limit=100):
        self.record, self.fail_in, self.limit, self.count = record, fail_in, limit, 0
        self._log("__init__", optimize_mode)

    def _log(self, *event):
        with open(self.record, "a") as f:
            f.write(json.dumps(event) + "\\n")
        if event[0] == self.fail_in:
            raise ValueError(f"boom in {event[0]}\\nsecond line")

    def update_search_space(self, search_space):
        self._log("update_search_space", search_space)

    def generate_parameters(self, parameter_id, **kwargs):
        if self.count >= self.limit:
            raise nni.NoMoreTrialError("no more")
        self.count += 1
        self._log("generate_parameters", parameter_id)
        return {"x": np.float64(self.count / 10), "n": np.int64(self.count)}

    def receive_trial_result(self, parameter_id, parameters, value, **kwargs):
        self._log("receive_trial_result", parameter_id, parameters, value)

    def trial_end(self, parameter_id, success, **kwargs):
        self._log("trial_end", parameter_id, success)

    def import_data(self, data):
        self._log("import_data", data)


class NotATuner:
    pass
'''

ASSESSOR_MODULE = '''
import json
from nni.assessor import Assessor, AssessResult


class StopAt(Assessor):
    """Stops every trial at its `step`-th report; records its calls; raises in the method named `fail_in`."""

    def __init__(self, record, step, fail_in=None):
        self.record, self.step, self.fail_in = record, step, fail_in

    def _log(self, *event):
        with open(self.record, "a") as f:
            f.write(json.dumps(event) + "\\n")
        if event[0] == self.fail_in:
            raise RuntimeError(f"assessor broke in {event[0]}")

    def assess_trial(self, trial_job_id, trial_history):
        self._log("assess_trial", trial_job_id, trial_history)
        return AssessResult.Bad if len(trial_history) >= self.step else AssessResult.Good

    def trial_end(self, trial_job_id, success):
        self._log("trial_end", trial_job_id, success)


class SaysFalse(Assessor):
    def assess_trial(self, trial_job_id, trial_history):
        return len(trial_history) < 2


class SaysMaybe(Assessor):
    def assess_trial(self, trial_job_id, trial_history):
        return "maybe"
'''

NNI_TRIAL = """
import time
import nni
params = nni.get_next_parameter()
for step in range(STEPS):
    nni.report_intermediate_result(params["x"] * (step + 1))
    time.sleep(PACE)
nni.report_final_result(params["x"])
"""

SPACE: dict[str, Any] = {"x": {"_type": "uniform", "_value": [0, 1]}, "c": {"_type": "uniform", "_value": [2, 2]}}


@pytest.fixture
def code(tmp_path: Path) -> Path:
    """A code directory holding my_tuner.py and my_assessor.py."""
    folder = tmp_path / "strategies"
    folder.mkdir()
    (folder / "my_tuner.py").write_text(TUNER_MODULE)
    (folder / "my_assessor.py").write_text(ASSESSOR_MODULE)
    return folder


def _records(path: Path) -> list[list[Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _tuner(code: Path, tmp_path: Path, **args: Any) -> Any:
    return create_tuner(
        None,
        {"record": str(tmp_path / "tuner.jsonl"), **args},
        SPACE,
        "maximize",
        class_name="my_tuner.RecordingTuner",
        code_directory=code,
    )


# the adapters, in process


def test_a_custom_tuner_is_called_as_nni_calls_it(code: Path, tmp_path: Path) -> None:
    tuner = _tuner(code, tmp_path, optimize_mode="minimize")
    first = tuner.ask(0)
    assert tuner.ask(1) == {"x": 0.2, "n": 2}
    assert first == {"x": 0.1, "n": 1} and type(first["x"]) is float and type(first["n"]) is int
    tuner.tell(0, 0.5)
    tuner.tell(1, None)
    tuner.restore([({"x": 0.7, "n": 7}, 0.25), ({"x": 0.8, "n": 8}, None)])
    assert _records(tmp_path / "tuner.jsonl") == [
        ["__init__", "minimize"],
        ["update_search_space", SPACE],
        ["generate_parameters", 0],
        ["generate_parameters", 1],
        ["receive_trial_result", 0, {"x": 0.1, "n": 1}, 0.5],
        ["trial_end", 0, True],
        ["trial_end", 1, False],
        ["import_data", [{"parameter": {"x": 0.7, "n": 7}, "value": 0.25}]],
    ]


def test_optimize_mode_reaches_the_class_only_when_its_class_args_name_it(code: Path, tmp_path: Path) -> None:
    _tuner(code, tmp_path)
    assert _records(tmp_path / "tuner.jsonl")[0] == ["__init__", None]


def test_a_custom_tuner_that_runs_out_answers_none(code: Path, tmp_path: Path) -> None:
    tuner = _tuner(code, tmp_path, limit=1)
    assert tuner.ask(0) is not None
    assert tuner.ask(1) is None


def test_parameters_a_custom_tuner_delivers_later_are_handed_out(code: Path, tmp_path: Path) -> None:
    (code / "late_tuner.py").write_text(
        textwrap.dedent('''
        from nni.tuner import Tuner

        class LateTuner(Tuner):
            """Answers nothing at once; delivers through st_callback once two requests wait."""

            def update_search_space(self, search_space):
                self.waiting = []

            def generate_multiple_parameters(self, parameter_id_list, **kwargs):
                self.waiting += parameter_id_list
                if len(self.waiting) == 2:
                    for pid in self.waiting:
                        kwargs["st_callback"](pid, {"from": pid})
                return []
    ''')
    )
    tuner = create_tuner(None, {}, SPACE, "maximize", class_name="late_tuner.LateTuner", code_directory=code)
    assert tuner.ask(0) is None
    assert [tuner.ask(1), tuner.ask(2)] == [{"from": 0}, {"from": 1}]


@pytest.mark.parametrize(
    ("method", "key"),
    [
        ("generate_parameters", "ask"),
        ("receive_trial_result", "tell"),
        ("trial_end", "tell"),
        ("import_data", "restore"),
    ],
)
def test_an_exception_in_the_class_names_the_class_and_method(
    code: Path, tmp_path: Path, method: str, key: str
) -> None:
    tuner = _tuner(code, tmp_path, fail_in=method)
    with pytest.raises(UserCodeError) as error:
        if key == "ask":
            tuner.ask(0)
        elif key == "tell":
            tuner.ask(0)
            tuner.tell(0, 1.0)
        else:
            tuner.restore([({"x": 0.5}, 1.0)])
    assert str(error.value) == f"my_tuner.RecordingTuner.{method} raised ValueError: boom in {method}"


def test_no_more_trial_error_from_generate_multiple_parameters_ends_the_search(code: Path) -> None:
    (code / "done_tuner.py").write_text(
        textwrap.dedent("""
        import nni
        from nni.tuner import Tuner

        class DoneTuner(Tuner):
            def update_search_space(self, search_space):
                pass

            def generate_multiple_parameters(self, parameter_id_list, **kwargs):
                raise nni.NoMoreTrialError("all done")
    """)
    )
    tuner = create_tuner(None, {}, SPACE, "maximize", class_name="done_tuner.DoneTuner", code_directory=code)
    with pytest.raises(NoMoreTrials, match="all done"):
        tuner.ask(0)


@pytest.mark.parametrize(
    ("class_name", "args", "words"),
    [
        ("missing_module.Tuner", {}, ["missing_module.Tuner", "cannot import module 'missing_module'", "strategies"]),
        ("my_tuner.Missing", {}, ["my_tuner.Missing", "has no 'Missing'"]),
        ("my_tuner.NotATuner", {}, ["my_tuner.NotATuner", "not a subclass of nni.tuner.Tuner"]),
        ("my_tuner.RecordingTuner", {"record": "r", "colour": 1}, ["invalid classArgs", "colour"]),
        ("my_tuner.RecordingTuner", {}, ["invalid classArgs", "record"]),
        (
            "my_tuner.RecordingTuner",
            {"record": "r", "fail_in": "update_search_space"},
            ["update_search_space raised ValueError: boom"],
        ),
        ("RecordingTuner", {}, ["'module.Class'"]),
    ],
)
def test_a_tuner_class_that_cannot_be_loaded_is_a_user_error(
    code: Path, tmp_path: Path, monkeypatch, class_name: str, args: dict[str, Any], words: list[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError) as error:
        create_tuner(None, args, SPACE, "maximize", class_name=class_name, code_directory=code)
    for word in words:
        assert word in str(error.value)


def test_a_custom_assessor_judges_whole_histories_as_nni_does(code: Path, tmp_path: Path) -> None:
    record = tmp_path / "assessor.jsonl"
    stopper = create_stopper(
        None, {"record": str(record), "step": 3}, "minimize", class_name="my_assessor.StopAt", code_directory=code
    )
    assert stopper.mode == "minimize"
    assert [stopper.report(7, step, value) for step, value in ((1, 0.5), (2, None), (2, 9.0), (3, 0.1))] == [
        False,
        False,
        False,
        True,
    ]
    stopper.ended(7, "early_stopped", 0.1)
    stopper.ended(8, "failed", None)  # never reported: NNI does not tell the assessor
    stopper.restore([(9, [0.2, 0.3], "succeeded"), (10, [0.4], "running")])
    assert stopper.report(10, 2, 0.6) is False
    calls = _records(record)
    assert [call[:2] for call in calls[:3]] == [["assess_trial", "7"]] * 3
    assert calls[0][2] == [0.5] and calls[2][2][::2] == [0.5, 0.1] and math.isnan(calls[2][2][1])
    assert calls[3:] == [
        ["trial_end", "7", False],
        ["assess_trial", "9", [0.2, 0.3]],
        ["trial_end", "9", True],
        ["assess_trial", "10", [0.4, 0.6]],
    ]


def test_an_assessor_may_answer_with_a_bool_and_nothing_else(code: Path) -> None:
    says_false = create_stopper(None, {}, "maximize", class_name="my_assessor.SaysFalse", code_directory=code)
    assert [says_false.report(1, step, 1.0) for step in (1, 2)] == [False, True]
    maybe = create_stopper(None, {}, "maximize", class_name="my_assessor.SaysMaybe", code_directory=code)
    with pytest.raises(UserCodeError, match=r"my_assessor.SaysMaybe.assess_trial returned 'maybe', not an Assess"):
        maybe.report(1, 1, 1.0)


def test_an_exception_in_an_assessor_is_not_swallowed(code: Path, tmp_path: Path) -> None:
    stopper = create_stopper(
        None,
        {"record": str(tmp_path / "a"), "step": 3, "fail_in": "assess_trial"},
        "maximize",
        class_name="my_assessor.StopAt",
        code_directory=code,
    )
    with pytest.raises(UserCodeError, match=r"^my_assessor.StopAt.assess_trial raised RuntimeError: assessor broke"):
        stopper.report(1, 1, 0.5)


@pytest.mark.parametrize(
    ("class_name", "args", "words"),
    [
        ("my_assessor.Nope", {}, ["has no 'Nope'"]),
        ("my_tuner.RecordingTuner", {"record": "r"}, ["not a subclass of nni.assessor.Assessor"]),
        ("my_assessor.StopAt", {"record": "r"}, ["invalid classArgs", "step"]),
    ],
)
def test_an_assessor_class_that_cannot_be_loaded_is_a_user_error(
    code: Path, class_name: str, args: dict[str, Any], words: list[str]
) -> None:
    with pytest.raises(UserError) as error:
        check_stopper(None, args, "maximize", class_name=class_name, code_directory=code)
    for word in words:
        assert word in str(error.value)


def test_modules_of_the_same_name_in_two_code_directories_are_each_their_own(tmp_path: Path) -> None:
    for version in ("one", "two"):
        folder = tmp_path / version
        folder.mkdir()
        (folder / "same_name.py").write_text(
            textwrap.dedent(f'''
            from nni.tuner import Tuner

            class T(Tuner):
                def update_search_space(self, search_space):
                    pass

                def generate_parameters(self, parameter_id, **kwargs):
                    return {{"version": "{version}"}}
        ''')
        )
    for version in ("one", "two"):
        tuner = create_tuner(None, {}, SPACE, "maximize", class_name="same_name.T", code_directory=tmp_path / version)
        assert tuner.ask(0) == {"version": version}


# config


def _write(folder: Path, **fields: Any) -> Path:
    config: dict[str, Any] = {
        "name": "custom",
        "command": "python trial.py",
        "search_space": SPACE,
        "max_trials": 3,
        "concurrency": 1,
        **fields,
    }
    path = folder / "exp.yml"
    path.write_text(yaml.safe_dump(config))
    (folder / "trial.py").write_text(NNI_TRIAL.replace("STEPS", "3").replace("PACE", "0.01"))
    return path


def test_config_resolves_code_directory_against_the_config_folder(code: Path, tmp_path: Path) -> None:
    config, _ = load_config(
        _write(
            tmp_path,
            tuner={"class_name": "my_tuner.RecordingTuner", "code_directory": "strategies", "args": {"record": "r"}},
        )
    )
    assert config.tuner.code_directory == code
    assert config.tuner.name == "my_tuner.RecordingTuner"
    assert config.tuner.class_name == "my_tuner.RecordingTuner"


@pytest.mark.parametrize(
    ("tuner", "words"),
    [
        ({"name": "TPE", "class_name": "my_tuner.RecordingTuner"}, ["field 'tuner'", "not both"]),
        ({"name": "TPE", "code_directory": "strategies"}, ["code_directory is only used with class_name"]),
        ({"class_name": "my_tuner.RecordingTuner", "code_directory": "nowhere"}, ["tuner.code_directory", "nowhere"]),
    ],
)
def test_config_mistakes_about_custom_classes_are_user_errors(
    code: Path, tmp_path: Path, tuner: dict[str, Any], words: list[str]
) -> None:
    with pytest.raises(UserError) as error:
        load_config(_write(tmp_path, tuner=tuner))
    for word in words:
        assert word in str(error.value)


def test_config_checks_a_custom_assessor_class_when_loading(code: Path, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="field 'stopper'.*my_assessor.StopAt: invalid classArgs"):
        load_config(_write(tmp_path, stopper={"class_name": "my_assessor.StopAt", "code_directory": "strategies"}))
    with pytest.raises(UserError, match="field 'stopper'.*give name"):
        load_config(_write(tmp_path, stopper={"args": {}}))


# end to end


def _only_experiment() -> str:
    (experiment,) = json.loads(automl("ls", "--json", check=True).stdout)
    return experiment["id"]


def _custom_config(
    tmp_path: Path,
    tuner_args: dict[str, Any] | None = None,
    assessor_args: dict[str, Any] | None = None,
    steps: int = 3,
    code_directory: str = "strategies",
    **fields: Any,
) -> Path:
    config: dict[str, Any] = {
        "name": "custom",
        "command": "python trial.py",
        "search_space": SPACE,
        "tuner": {
            "class_name": "my_tuner.RecordingTuner",
            "code_directory": code_directory,
            "args": {"record": str(tmp_path / "tuner.jsonl"), **(tuner_args or {})},
        },
        "max_trials": 3,
        "concurrency": 1,
        **fields,
    }
    if assessor_args is not None:
        config["stopper"] = {
            "class_name": "my_assessor.StopAt",
            "code_directory": code_directory,
            "args": {"record": str(tmp_path / "assessor.jsonl"), **assessor_args},
        }
    (tmp_path / "trial.py").write_text(NNI_TRIAL.replace("STEPS", str(steps)).replace("PACE", "0.3"))
    path = tmp_path / "exp.yml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_automl_run_drives_a_custom_tuner_and_assessor(code: Path, tmp_path: Path, home: Path) -> None:
    config = _custom_config(tmp_path, {"optimize_mode": "maximize"}, {"step": 2}, steps=8)
    result = automl("run", str(config))
    assert result.returncode == 0, result.stderr
    exp_id = _only_experiment()
    view = show(exp_id)
    assert [(t["status"], t["steps"]) for t in view["trials"]] == [("early_stopped", 2)] * 3
    assert all("my_assessor.StopAt" in t["error"] for t in view["trials"])
    calls = _records(tmp_path / "tuner.jsonl")
    assert calls[:2] == [["__init__", "maximize"], ["update_search_space", SPACE]]
    assert [call[0] for call in calls[2:]] == ["generate_parameters", "receive_trial_result", "trial_end"] * 3
    assert calls[3] == ["receive_trial_result", 0, {"x": 0.1, "n": 1}, pytest.approx(0.2)]
    judged = _records(tmp_path / "assessor.jsonl")
    trial_ids = [str(t["id"]) for t in view["trials"]]
    assert [call for call in judged if call[0] == "assess_trial"][:2] == [
        ["assess_trial", trial_ids[0], [pytest.approx(0.1)]],
        ["assess_trial", trial_ids[0], [pytest.approx(0.1), pytest.approx(0.2)]],
    ]
    assert ["trial_end", trial_ids[0], False] in judged


def test_automl_run_refuses_a_class_that_cannot_load_and_stores_nothing(code: Path, tmp_path: Path, home: Path) -> None:
    config = _custom_config(tmp_path, {"colour": "red"})
    result = automl("run", str(config))
    assert result.returncode == 2
    assert "my_tuner.RecordingTuner: invalid classArgs" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (home / "experiments").exists() or not any((home / "experiments").iterdir())
    assert json.loads(automl("ls", "--json", check=True).stdout) == []


def test_an_exception_in_a_custom_tuner_fails_the_experiment(code: Path, tmp_path: Path, home: Path) -> None:
    result = automl("run", str(_custom_config(tmp_path, {"fail_in": "receive_trial_result"})))
    assert result.returncode == 1
    exp_id = _only_experiment()
    view = show(exp_id)
    assert view["status"] == "failed"
    assert "my_tuner.RecordingTuner.receive_trial_result raised ValueError: boom" in view["error"]
    assert "\n" not in view["error"]
    log = (home / "experiments" / exp_id / "experiment.log").read_text()
    assert "Traceback" in log and "boom in receive_trial_result" in log


def test_in_the_daemon_a_failing_class_fails_its_experiment_only(code: Path, tmp_path: Path, daemon) -> None:
    broken = submit(_custom_config(tmp_path, {"fail_in": "generate_parameters"}))
    view = wait_for_status(broken, "failed")
    assert "my_tuner.RecordingTuner.generate_parameters raised ValueError: boom" in view["error"]
    (tmp_path / "second").mkdir()
    judged = submit(
        _custom_config(
            tmp_path / "second", assessor_args={"step": 1, "fail_in": "assess_trial"}, code_directory="../strategies"
        )
    )
    view = wait_for_status(judged, "failed")
    assert "my_assessor.StopAt.assess_trial raised RuntimeError: assessor broke" in view["error"]
    refused = automl("submit", str(_custom_config(tmp_path, {"record": 1, "bogus": 2})))
    assert refused.returncode == 2 and "invalid classArgs" in refused.stderr
    (tmp_path / "third").mkdir()
    healthy = submit(_custom_config(tmp_path / "third", steps=1, code_directory="../strategies"))
    assert [t["status"] for t in wait_for_status(healthy, "done")["trials"]] == ["succeeded"] * 3
    assert json.loads(automl("daemon", "status", "--json", check=True).stdout)["running"] is True


def test_a_custom_tuner_is_built_again_and_fed_history_after_a_daemon_restart(
    code: Path,
    tmp_path: Path,
    daemon,
) -> None:
    exp_id = submit(_custom_config(tmp_path, steps=4, max_trials=3))
    wait_until(lambda: [t for t in show(exp_id)["trials"] if t["status"] == "succeeded"], "a succeeded trial")
    automl("daemon", "restart", check=True)
    view = wait_for_status(exp_id, "done")
    assert [t["status"] for t in view["trials"]] == ["succeeded"] * 3
    calls = _records(tmp_path / "tuner.jsonl")
    assert [call[0] for call in calls].count("__init__") == 2
    restarted = max(i for i, call in enumerate(calls) if call[0] == "__init__")
    assert calls[restarted + 1][0] == "update_search_space"
    assert calls[restarted + 2][0] == "import_data"
    assert {"parameter": {"x": 0.1, "n": 1}, "value": 0.1} in calls[restarted + 2][1]
