"""`automl export`: every format round-tripped through the real CLI."""

from __future__ import annotations

import csv
import io
import json
import shlex

import pytest
import yaml

from tests.helpers import automl, show, write_config, write_trial

SPACE = {
    "lr": {"_type": "loguniform", "_value": [1e-4, 1e-1]},
    "act": {"_type": "choice", "_value": ["relu", "gelu tanh"]},
    "opt": {
        "_type": "choice",
        "_value": [{"_name": "sgd", "momentum": {"_type": "uniform", "_value": [0.5, 0.9]}}, {"_name": "adam"}],
    },
}


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    """A finished experiment of 6 trials (one failed), shared by the tests below."""
    folder = tmp_path_factory.mktemp("export")
    home = folder / "home"
    mp = pytest.MonkeyPatch()
    mp.setenv("AUTOML_HOME", str(home))
    write_trial(folder, "if trial.trial_id() == '3':\n    sys.exit(1)\ntrial.report_final(params['lr'])\n")
    result = automl(
        "run",
        str(
            write_config(
                folder,
                search_space=SPACE,
                max_trials=6,
                concurrency=2,
                objective={"metric": "default", "mode": "minimize"},
            )
        ),
    )
    assert result.returncode == 0, result.stderr
    view = show("test")
    yield view
    mp.undo()


def _export(*args: str) -> str:
    return automl("export", "test", *args, check=True).stdout


def _succeeded_best_first(view):
    done = [t for t in view["trials"] if t["status"] == "succeeded"]
    return sorted(done, key=lambda t: t["value"])


def test_best_as_json_and_yaml_is_exactly_the_params(experiment):
    best = _succeeded_best_first(experiment)[0]
    assert experiment["best"]["id"] == best["id"]
    assert json.loads(_export("--best", "--format", "json")) == best["params"]
    assert yaml.safe_load(_export("--best", "--format", "yaml")) == best["params"]
    assert yaml.safe_load(_export("--best")) == best["params"]


def test_best_as_args_parses_back(experiment):
    params = experiment["best"]["params"]
    words = shlex.split(_export("--best", "--format", "args"))
    parsed = dict(zip(words[0::2], words[1::2], strict=True))
    expected = {"--lr": json.dumps(params["lr"]), "--act": params["act"], "--opt": params["opt"]["_name"]}
    if params["opt"]["_name"] == "sgd":
        expected["--opt.momentum"] = json.dumps(params["opt"]["momentum"])
    assert parsed == expected
    assert float(parsed["--lr"]) == params["lr"]


def test_top_k_as_json(experiment):
    top = json.loads(_export("--top", "3", "--format", "json"))
    expected = _succeeded_best_first(experiment)[:3]
    assert top == [{"trial": t["id"], "value": t["value"], "params": t["params"]} for t in expected]


def test_all_as_csv_has_one_row_per_trial(experiment):
    rows = list(csv.DictReader(io.StringIO(_export("--all", "--format", "csv"))))
    assert [int(r["trial"]) for r in rows] == [t["id"] for t in experiment["trials"]]
    for row, t in zip(rows, experiment["trials"], strict=True):
        assert row["status"] == t["status"]
        assert row["value"] == ("" if t["value"] is None else repr(t["value"]))
        assert float(row["lr"]) == t["params"]["lr"] and row["act"] == t["params"]["act"]
        assert row["opt"] == t["params"]["opt"]["_name"]
    assert "opt.momentum" in rows[0]


def test_all_as_yaml_and_json_gives_each_trial_with_its_status(experiment):
    expected = [(t["id"], t["status"]) for t in experiment["trials"]]
    for fmt, load in (("yaml", yaml.safe_load), ("json", json.loads)):
        records = load(_export("--all", "--format", fmt))
        assert [(r["trial"], r["status"]) for r in records] == expected, fmt


def test_output_file_format_follows_its_suffix(experiment, tmp_path):
    result = automl("export", "test", "--best", "-o", str(tmp_path / "best.json"))
    assert result.returncode == 0 and "wrote" in result.stderr
    assert json.loads((tmp_path / "best.json").read_text()) == experiment["best"]["params"]


def test_failed_trials_are_in_all_but_never_best(experiment):
    failed = [t for t in experiment["trials"] if t["status"] == "failed"]
    assert [t["id"] for t in failed] == [3]
    assert 3 not in [r["trial"] for r in json.loads(_export("--top", "10", "--format", "json"))]


def test_export_errors(experiment, tmp_path):
    assert automl("export", "nope", "--best").returncode == 2
    assert automl("export", "test").returncode == 2
    assert automl("export", "test", "--top", "0").returncode == 2
    result = automl("export", "test", "--best", "-o", str(tmp_path / "missing" / "best.yaml"))
    assert result.returncode == 2 and "cannot write" in result.stderr
