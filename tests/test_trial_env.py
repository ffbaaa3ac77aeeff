"""Trials run with the interpreter and environment of the shell that ran `automl run` or `automl submit`, even a
Python that has nni but no automl installed; an NNI script's printed output is found where NNI sends it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import yaml

from automl.daemon import daemon_pid
from tests.helpers import REPO, run_experiment_id, wait_until

STEPS = 3
# The CLI from this source tree without PYTHONPATH, so that nothing but the trial library can give a trial automl.
CLI = f"import sys; sys.path.insert(0, {str(REPO)!r}); from automl.cli import main; sys.exit(main(sys.argv[1:]))"
AUTOML_TRIAL = f"""
import sys
from automl import trial
params = trial.get_params()
print("prefix:", sys.prefix)
print("library:", trial.__file__)
for step in range({STEPS}):
    trial.report(params["x"] * step)
trial.report_final(params["x"])
"""
NNI_TRIAL = f"""
import sys
import nni
params = nni.get_next_parameter()
print("prefix:", sys.prefix)
for step in range({STEPS}):
    nni.report_intermediate_result({{"default": params["x"] * step, "loss": 1.0}})
nni.report_final_result(params["x"])
"""
SPACE = {"x": {"_type": "uniform", "_value": [0, 1]}}


@pytest.fixture(scope="module")
def bare_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtualenv whose Python has nni (the test interpreter's site-packages, by a .pth file) but no automl:
    packages installed editable are put on sys.path by .pth files of their own, which are not read from a
    folder that a .pth file adds."""
    venv = tmp_path_factory.mktemp("bare") / "venv"
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    site = next((venv / "lib").glob("python*/site-packages"))
    (site / "shared_packages.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    python = str(venv / "bin" / "python")
    env = _shell(venv)
    assert subprocess.run([python, "-c", "import nni"], env=env, cwd=venv, timeout=120).returncode == 0
    assert (
        subprocess.run([python, "-c", "import automl"], env=env, cwd=venv, capture_output=True, timeout=60).returncode
        != 0
    ), "the bare venv must not see automl"
    return venv


def _shell(venv: Path) -> dict[str, str]:
    """The environment of a shell with `venv` activated and no PYTHONPATH."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PATH"] = os.pathsep.join([str(venv / "bin"), os.environ["PATH"]])
    env["VIRTUAL_ENV"] = str(venv)
    return env


def _cli(env: dict[str, str], *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-c", CLI, *args], capture_output=True, text=True, env=env, timeout=timeout
    )
    assert result.returncode == 0, f"automl {' '.join(args)}: {result.stdout}\n{result.stderr}"
    return result


def _projects(folder: Path, concurrency: int = 2) -> dict[str, Path]:
    """An automl config running `python trial.py` and an NNI config running `python3 nni_trial.py`."""
    (folder / "trial.py").write_text(AUTOML_TRIAL)
    (folder / "nni_trial.py").write_text(NNI_TRIAL)
    (folder / "space.json").write_text(json.dumps(SPACE))
    (folder / "exp.yml").write_text(
        yaml.safe_dump(
            {
                "name": f"plain-{folder.name}",
                "command": "python trial.py",
                "search_space": SPACE,
                "tuner": {"name": "Random", "args": {"seed": 1}},
                "max_trials": 2,
                "concurrency": concurrency,
            }
        )
    )
    (folder / "config.yml").write_text(
        yaml.safe_dump(
            {
                "experimentName": f"nni-{folder.name}",
                "searchSpaceFile": "space.json",
                "trialCommand": "python3 nni_trial.py",
                "trialConcurrency": 2,
                "maxTrialNumber": 2,
                "tuner": {"name": "Random"},
                "trainingService": {"platform": "local"},
            }
        )
    )
    return {"plain": folder / "exp.yml", "nni": folder / "config.yml"}


def _check(env: dict[str, str], home: Path, exp_id: str, venv: Path) -> None:
    """Every trial succeeded with every metric, ran under `venv`'s Python, and `automl logs` shows its output."""
    view = json.loads(_cli(env, "show", exp_id, "--json").stdout)
    assert [(t["status"], t["steps"]) for t in view["trials"]] == [("succeeded", STEPS)] * 2, view["trials"]
    for t in view["trials"]:
        assert t["value"] == pytest.approx(t["params"]["x"])
        logs = _cli(env, "logs", exp_id, str(t["id"]))
        assert f"prefix: {venv}\n" in logs.stdout, logs
        trial_dir = home / "experiments" / view["id"] / "trials" / str(t["id"])
        if "library:" in logs.stdout:
            assert f"library: {trial_dir.parent.parent / 'trial_lib' / 'automl' / 'trial.py'}\n" in logs.stdout
        else:
            assert "PRINT prefix:" in (trial_dir / "trial.log").read_text(), "NNI sent print() to trial.log"
            assert f"==> {trial_dir / 'trial.log'} <==" in logs.stderr, "logs names the file it shows"


def test_automl_run_uses_the_shells_python_even_without_automl(tmp_path, home, bare_venv):
    env = _shell(bare_venv)
    for config in _projects(tmp_path).values():
        out = _cli(env, "run", str(config)).stdout
        exp_id = run_experiment_id(out)
        _check(env, home, exp_id, bare_venv)


def test_submit_sends_the_shells_environment_and_a_restarted_daemon_keeps_it(tmp_path, home, bare_venv):
    daemon_env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # `python` there has automl
    daemon = subprocess.Popen(
        [sys.executable, "-c", CLI, "daemon", "start", "--foreground"],
        env=daemon_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    env = _shell(bare_venv)
    try:
        wait_until(lambda: daemon_pid(home) is not None, "the daemon to answer")
        configs = _projects(tmp_path, concurrency=1)  # the second trial is started by the restarted daemon
        gate = tmp_path / "gate"
        (tmp_path / "trial.py").write_text(
            f"import os, time\nwhile not os.path.exists({str(gate)!r}):\n    time.sleep(0.05)\n" + AUTOML_TRIAL
        )
        ids = {kind: _cli(env, "submit", str(config)).stdout.strip() for kind, config in configs.items()}
        wait_until(lambda: _statuses(env, ids["plain"]) == ["running"], "the plain trial to run")
        _cli(daemon_env, "daemon", "stop")
        daemon.wait(60)
        daemon = subprocess.Popen(
            [sys.executable, "-c", CLI, "daemon", "start", "--foreground"],
            env=daemon_env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(lambda: daemon_pid(home) is not None, "the daemon to answer")
        gate.touch()
        for exp_id in ids.values():
            wait_until(
                lambda exp_id=exp_id: json.loads(_cli(env, "show", exp_id, "--json").stdout)["status"] == "done",
                f"experiment {exp_id} to be done",
            )
            _check(env, home, exp_id, bare_venv)
    finally:
        daemon.terminate()
        daemon.wait(60)


def test_the_command_is_looked_up_on_the_submitting_shells_path(tmp_path, home, bare_venv):
    tool = tmp_path / "bin" / "only-in-this-shell"
    tool.parent.mkdir()
    tool.write_text("#!/bin/sh\nexit 0\n")
    tool.chmod(0o755)
    (tmp_path / "exp.yml").write_text(
        yaml.safe_dump({"name": "lookup", "command": "only-in-this-shell", "search_space": SPACE, "max_trials": 1})
    )
    daemon_env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    daemon = subprocess.Popen(
        [sys.executable, "-c", CLI, "daemon", "start", "--foreground"],
        env=daemon_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: daemon_pid(home) is not None, "the daemon to answer")
        failed = subprocess.run(
            [sys.executable, "-c", CLI, "submit", str(tmp_path / "exp.yml")],
            env=daemon_env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert failed.returncode == 2 and "program 'only-in-this-shell' not found on PATH" in failed.stderr
        env = {**daemon_env, "PATH": os.pathsep.join([str(tool.parent), daemon_env["PATH"]])}
        assert _cli(env, "submit", str(tmp_path / "exp.yml")).stdout.strip()
    finally:
        daemon.terminate()
        daemon.wait(60)


def _statuses(env: dict[str, str], exp_id: str) -> list[str]:
    return [t["status"] for t in json.loads(_cli(env, "show", exp_id, "--json").stdout)["trials"]]
