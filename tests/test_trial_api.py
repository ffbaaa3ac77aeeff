"""automl.trial: standalone use, inside an experiment, value checks, and that it stays dependency-free."""

import json
import os
import subprocess
import sys

import pytest


def _run(code: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("AUTOML_")}
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=full_env, timeout=60)


def test_import_pulls_in_no_heavy_dependency():
    result = _run(
        "import sys, automl.trial; "
        "print(sorted(m for m in ('pydantic', 'nni', 'torch', 'numpy', 'yaml') if m in sys.modules))"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_standalone_uses_defaults_and_prints_metrics():
    result = _run(
        "from automl import trial\n"
        "p = trial.get_params({'lr': 0.1})\n"
        "print(p, trial.trial_id())\n"
        "trial.report(0.5); trial.report({'default': 0.7, 'loss': 1.0}, step=7); trial.report_final(0.9)"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "{'lr': 0.1} None"
    assert "[automl] step 1: 0.5" in result.stderr
    assert "[automl] step 7: {'default': 0.7, 'loss': 1.0}" in result.stderr
    assert "[automl] final: 0.9" in result.stderr


def test_inside_an_experiment_params_override_defaults_and_metrics_are_appended(tmp_path):
    params, metrics = tmp_path / "params.json", tmp_path / "metrics.jsonl"
    params.write_text(json.dumps({"lr": 0.01, "opt": {"_name": "sgd", "m": 0.9}}))
    result = _run(
        "from automl import trial\n"
        "p = trial.get_params({'lr': 0.1, 'epochs': 3})\n"
        "print(sorted(p.items()))\n"
        "trial.report(1); trial.report(2.5); trial.report_final({'default': 3, 'extra': 4})",
        env={"AUTOML_PARAMS_FILE": str(params), "AUTOML_METRICS_FILE": str(metrics)},
    )
    assert result.returncode == 0, result.stderr
    assert "('epochs', 3), ('lr', 0.01), ('opt', {'_name': 'sgd', 'm': 0.9})" in result.stdout
    records = [json.loads(line) for line in metrics.read_text().splitlines()]
    assert [(r["kind"], r["step"], r["value"]) for r in records] == [
        ("intermediate", 1, 1.0),
        ("intermediate", 2, 2.5),
        ("final", None, {"default": 3.0, "extra": 4.0}),
    ]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        ("trial.report('high')", "metric must be a number, got 'high'"),
        ("trial.report(None)", "metric must be a number"),
        ("trial.report(True)", "metric must be a number"),
        ("trial.report({'default': 'x'})", "metric 'default' must be a number"),
        ("trial.report({})", "at least one number"),
        ("trial.report(1.0, step='3')", "step must be an int"),
        ("trial.report_final(1); trial.report_final(2)", "report_final() was already called"),
    ],
)
def test_bad_values_raise_at_the_call(call, message):
    result = _run(f"from automl import trial\n{call}")
    assert result.returncode != 0
    assert message in result.stderr


def test_numpy_like_scalars_are_accepted(tmp_path):
    metrics = tmp_path / "m.jsonl"
    result = _run(
        "import numpy as np\nfrom automl import trial\ntrial.report(np.float32(0.25))\n"
        "trial.report_final({'default': np.float64(0.5)})",
        env={"AUTOML_METRICS_FILE": str(metrics)},
    )
    assert result.returncode == 0, result.stderr
    assert [json.loads(line)["value"] for line in metrics.read_text().splitlines()] == [0.25, {"default": 0.5}]
