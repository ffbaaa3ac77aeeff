"""Malformed configs: every one is a user error (exit 2) naming the field, and nothing is started or written.

Each case is one file's text; `bad_config_cases()` and `try_config()` are reusable by a benchmark.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
import yaml

from tests.helpers import automl, submit

TRIAL = "from automl import trial\ntrial.report_final(1.0)\n"
BASE = {
    "name": "bad",
    "command": "python trial.py",
    "tuner": {"name": "Random"},
    "max_trials": 1,
    "search_space": {"x": {"_type": "uniform", "_value": [0, 1]}},
}


def _yaml(**changes: object) -> str:
    return yaml.safe_dump({**BASE, **changes})


def _nested_choices(depth: int) -> str:
    """A JSON config whose search space nests `depth` choices, one inside the other."""
    space = '{"_type": "choice", "_value": [1]}'
    for level in range(depth):
        space = f'{{"_type": "choice", "_value": [{{"_name": "n{level}", "y": {space}}}]}}'
    head = json.dumps({k: v for k, v in BASE.items() if k != "search_space"})[:-1]
    return f'{head}, "search_space": {{"x": {space}}}}}'


def _alias_bomb(tail: str) -> str:
    """Under 300 bytes of YAML whose anchors, each nine uses of the one before, expand to 9**7 values under `tail`."""
    lines = ["a: &a [" + ", ".join(["x"] * 9) + "]"]
    for prev, name in zip("abcdef", "bcdefg", strict=True):
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 9) + "]")
    return "\n".join(lines) + "\n" + tail


LAUGHS = _alias_bomb("name: t\ncommand: python trial.py\nsearch_space: {x: {_type: choice, _value: *g}}\n")


def bad_config_cases() -> list[tuple[str, str, str, str]]:
    """(case id, file name, file text, what the message must say) for every malformed config."""
    return [
        ("alias-bomb", "laughs.yml", LAUGHS, "once its aliases are expanded"),
        (
            "recursive-anchor",
            "self.yml",
            "name: t\ncommand: python trial.py\nsearch_space: &s {x: {_type: choice, _value: [*s]}}\n",
            "contains itself",
        ),
        ("3000-deep-choices-json", "deep.json", _nested_choices(3000), "nests deeper than"),
        ("3000-deep-choices-yaml", "deep.yml", _nested_choices(3000), "nests deeper than"),
        ("150-deep-choices", "deep150.json", _nested_choices(150), "nests deeper than"),
        ("nul-in-command", "nul.yml", _yaml(command="python tri\0al.py"), "field 'command': holds a NUL byte"),
        ("nul-in-command-list", "nul.yml", _yaml(command=["python", "tri\0al.py"]), "field 'command.1'"),
        ("nul-in-working-dir", "nul.yml", _yaml(working_dir="/tm\0p"), "field 'working_dir'"),
        ("nul-in-env-value", "nul.yml", _yaml(env={"A": "b\0c"}), "field 'env.A'"),
        ("nul-in-env-name", "nul.yml", _yaml(env={"A\0": "b"}), "a name holds a NUL byte"),
        (
            "nul-in-search-space-file",
            "nul.yml",
            _yaml(search_space=None, search_space_file="s\0.json"),
            "field 'search_space_file'",
        ),
        ("env-name-with-equals", "env.yml", _yaml(env={"A=B": "c"}), "field 'env': environment variable names"),
        ("env-name-empty", "env.yml", _yaml(env={"": "c"}), "field 'env': environment variable names"),
        (
            "randint-beyond-int64",
            "int.yml",
            _yaml(search_space={"x": {"_type": "randint", "_value": [0, 2**70]}}),
            "parameter 'x': randint bounds and their distance must fit 64-bit integers",
        ),
        (
            "randint-span-beyond-int64",
            "int.yml",
            _yaml(search_space={"x": {"_type": "randint", "_value": [-(2**62), 2**62]}}),
            "must fit 64-bit",
        ),
        (
            "uniform-overflows",
            "float.yml",
            _yaml(search_space={"x": {"_type": "uniform", "_value": [-1.7e308, 1.7e308]}}),
            "parameter 'x': uniform [-1.7e+308, 1.7e+308] spans more than a float can hold",
        ),
        (
            "lognormal-overflows",
            "float.yml",
            _yaml(search_space={"x": {"_type": "lognormal", "_value": [1000, 1]}}),
            "parameter 'x': lognormal [1000, 1]: exp(mu + 20 sigma) overflows",
        ),
        (
            "infinite-duration",
            "inf.yml",
            _yaml() + "max_duration: .inf\n",
            "field 'max_duration': a duration must be a finite number",
        ),
        ("nan-timeout", "nan.yml", _yaml() + "trial_timeout: .nan\n", "field 'trial_timeout': a duration must be"),
        (
            "infinite-duration-string",
            "inf.yml",
            _yaml(max_duration="9" * 400 + "d"),
            "field 'max_duration': a duration must be a finite number",
        ),
        (
            "unbalanced-quote",
            "quote.yml",
            _yaml(command="python 'trial.py"),
            "field 'command': the shell cannot split it",
        ),
        ("huge-value-shown-short", "long.yml", _yaml(name=[0] * 100_000), "characters)"),
    ]


CASES = bad_config_cases()


def try_config(folder: Path, file_name: str, text: str, *command: str) -> tuple[int, str]:
    """Write the config into `folder` next to a trial script and give it to `automl COMMAND... FILE`."""
    (folder / "trial.py").write_text(TRIAL)
    path = folder / file_name
    path.write_text(text)
    result = automl(*command, str(path), timeout=120)
    return result.returncode, result.stderr


def _experiments_written(home: Path) -> list[str]:
    """Experiment rows and folders in the data directory (there must be none after a refused config)."""
    rows = []
    if (home / "automl.db").exists():
        with sqlite3.connect(home / "automl.db") as conn:
            rows = [row[0] for row in conn.execute("SELECT id FROM experiments")]
    folders = [p.name for p in (home / "experiments").iterdir()] if (home / "experiments").exists() else []
    return rows + folders


def _one_error(code: int, stderr: str, expected: str) -> None:
    assert code == 2, stderr
    assert stderr.startswith("automl: error: ") and "Traceback" not in stderr, stderr
    assert expected in stderr, stderr
    assert len(stderr) < 2000, f"the message is {len(stderr)} characters long"


@pytest.mark.parametrize("case_id, file_name, text, expected", CASES, ids=[c[0] for c in CASES])
def test_run_refuses_a_malformed_config(tmp_path, home, case_id, file_name, text, expected):
    code, stderr = try_config(tmp_path, file_name, text, "run")
    _one_error(code, stderr, expected)
    assert _experiments_written(home) == []


SUBMITTED = [
    "alias-bomb",
    "recursive-anchor",
    "3000-deep-choices-json",
    "nul-in-env-value",
    "randint-beyond-int64",
    "infinite-duration",
    "unbalanced-quote",
]


def test_submit_refuses_malformed_configs_and_the_daemon_goes_on(tmp_path, home):
    automl("daemon", "start", check=True)
    try:
        for _, file_name, text, expected in [c for c in CASES if c[0] in SUBMITTED]:
            code, stderr = try_config(tmp_path, file_name, text, "submit")
            _one_error(code, stderr, expected)
        status = json.loads(automl("daemon", "status", "--json", check=True).stdout)
        assert status["running"] is True and status["experiments"] == []
    finally:
        automl("daemon", "stop")
    assert _experiments_written(home) == []


def test_convert_refuses_an_alias_bomb_and_deep_nesting(tmp_path, home):
    nni_head = "trialCommand: python trial.py\ntrialConcurrency: 1\ntrainingService: {platform: local}\n"
    bomb = LAUGHS.replace("name: t\ncommand: python trial.py\nsearch_space:", nni_head + "searchSpace:")
    _one_error(*try_config(tmp_path, "nni.yml", bomb, "convert"), "once its aliases are expanded")
    deep = "trialCommand: python trial.py\ntrialConcurrency: 1\nsearchSpace: " + "[" * 3000 + "]" * 3000 + "\n"
    _one_error(*try_config(tmp_path, "nni.yml", deep, "convert"), "nests deeper than")


def test_update_refuses_an_infinite_duration(tmp_path, home):
    """JSON reads 1e400 as infinity: a live update must refuse it as the config does."""
    automl("daemon", "start", check=True)
    try:
        (tmp_path / "trial.py").write_text("import time\nfrom automl import trial\ntime.sleep(30)\n")
        config = tmp_path / "ok.yml"
        config.write_text(_yaml(max_trials=1))
        exp_id = submit(config)
        _one_error(
            *(lambda r: (r.returncode, r.stderr))(automl("update", exp_id, "--max-duration", "9" * 400)), "finite"
        )
        automl("stop", exp_id, check=True)
    finally:
        automl("daemon", "stop")
