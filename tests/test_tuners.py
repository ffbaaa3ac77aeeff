"""NNI's tuners behind our Tuner interface, run for real: names, classArgs, spaces, pending trials."""

from __future__ import annotations

import json
import math
import random
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from automl.errors import UserError
from automl.tuners import TUNER_NAMES, NoMoreTrials, Tuner, canonical_tuner_name, create_tuner
from tests.helpers import automl, show, submit, wait_for_status, wait_until, write_config

MIXED_SPACE: dict[str, Any] = {
    "lr": {"_type": "loguniform", "_value": [1e-4, 1e-1]},
    "dropout": {"_type": "uniform", "_value": [0.0, 0.5]},
    "layers": {"_type": "randint", "_value": [1, 5]},
    "width": {"_type": "quniform", "_value": [16, 128, 16]},
    "act": {"_type": "choice", "_value": ["relu", "gelu", "tanh"]},
    "decay": {"_type": "qloguniform", "_value": [1e-5, 1e-2, 1e-5]},
    "init": {"_type": "normal", "_value": [0.0, 1.0]},
    "shift": {"_type": "qnormal", "_value": [0.0, 2.0, 0.5]},
    "scale": {"_type": "lognormal", "_value": [0.0, 0.5]},
    "bias": {"_type": "qlognormal", "_value": [1.0, 0.5, 0.1]},
}
NESTED_SPACE: dict[str, Any] = {
    "x": {"_type": "uniform", "_value": [0.0, 1.0]},
    "optimizer": {
        "_type": "choice",
        "_value": [
            {"_name": "sgd", "momentum": {"_type": "uniform", "_value": [0.0, 0.99]}},
            {"_name": "adam", "beta1": {"_type": "quniform", "_value": [0.8, 0.99, 0.01]}},
            {"_name": "plain"},
        ],
    },
}
NUMERIC_SPACE: dict[str, Any] = {
    "x": {"_type": "uniform", "_value": [0.0, 1.0]},
    "n": {"_type": "randint", "_value": [1, 8]},
    "q": {"_type": "quniform", "_value": [0, 10, 2]},
    "c": {"_type": "choice", "_value": [8, 1, 4]},
}
BATCH_SPACE: dict[str, Any] = {
    "combine_params": {"_type": "choice", "_value": [{"lr": 10.0**-i, "bs": 2**i} for i in range(30)]}
}

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

RUNS: dict[str, tuple[dict[str, Any], dict[str, Any], int]] = {
    "TPE": ({"tpe_args": {"n_startup_jobs": 8}}, {**MIXED_SPACE, **NESTED_SPACE}, 25),
    "Random": ({"seed": 1}, {**MIXED_SPACE, **NESTED_SPACE}, 25),
    "Anneal": ({"parallel_optimize": True}, {**MIXED_SPACE, **NESTED_SPACE}, 25),
    "TPE_legacy": ({}, {**MIXED_SPACE, **NESTED_SPACE}, 25),
    "Evolution": ({"population_size": 6}, {**MIXED_SPACE, **NESTED_SPACE}, 25),
    "GridSearch": ({}, {**MIXED_SPACE, **NESTED_SPACE}, 25),
    "BatchTuner": ({}, BATCH_SPACE, 25),
    "GPTuner": (
        {"cold_start_num": 4, "selection_num_warm_up": 200, "selection_num_starting_points": 2},
        {**NUMERIC_SPACE, "lr": {"_type": "loguniform", "_value": [1e-4, 1e-1]}},
        10,
    ),
    "MetisTuner": ({"cold_start_num": 3, "selection_num_starting_points": 3}, NUMERIC_SPACE, 9),
    "PBTTuner": ({"population_size": 4}, MIXED_SPACE, 25),
}


def test_every_supported_tuner_has_a_run() -> None:
    assert set(RUNS) == set(TUNER_NAMES)


@pytest.mark.parametrize("name", TUNER_NAMES)
def test_tuner_with_pending_trials_gives_fresh_legal_plain_params(name: str, tmp_path) -> None:
    args, space, asks = RUNS[name]
    if name == "PBTTuner":
        args = {**args, "all_checkpoint_dir": str(tmp_path)}
    tuner = create_tuner(name, args, space, "minimize")
    issued = _run_with_pending(tuner, asks, pending=4, objective=_objective)
    assert issued, f"{name} proposed nothing"
    assert len({_signature(p) for p in issued}) == len(issued), f"{name} repeated a parameter set"
    for params in issued:
        assert json.loads(json.dumps(params)) == params
        _assert_plain(params)
        if name == "BatchTuner":
            assert params in space["combine_params"]["_value"]
        else:
            _assert_in_space(space, params, extra={"load_checkpoint_dir", "save_checkpoint_dir"})


def test_names_are_case_insensitive_and_accept_nni_aliases() -> None:
    assert canonical_tuner_name("tpe") == "TPE"
    assert canonical_tuner_name("GridSearch") == "GridSearch"
    assert canonical_tuner_name("gp") == "GPTuner"
    assert canonical_tuner_name("Batch") == "BatchTuner"
    assert canonical_tuner_name("metistuner") == "MetisTuner"
    assert canonical_tuner_name("PBT") == "PBTTuner"


def test_unknown_name_lists_the_available_ones() -> None:
    with pytest.raises(UserError) as error:
        create_tuner("Bayes", {}, NUMERIC_SPACE, "maximize")
    message = str(error.value)
    assert "'Bayes'" in message
    assert all(name in message for name in TUNER_NAMES)


@pytest.mark.parametrize("name", ["SMAC", "DNGOTuner", "PPOTuner", "NetworkMorphism", "RegularizedEvolution"])
def test_unavailable_nni_tuner_says_why(name: str) -> None:
    with pytest.raises(UserError, match="not available: .+") as error:
        create_tuner(name, {}, NUMERIC_SPACE, "maximize")
    assert name in str(error.value)


@pytest.mark.parametrize(
    ("name", "args", "words"),
    [
        ("TPE", {"sed": 1}, ["TPE", "'sed'", "seed", "tpe_args"]),
        ("TPE", {"seed": "one"}, ["TPE", "classArgs.seed", "integer"]),
        ("TPE", {"tpe_args": {"gama": 0.2}}, ["TPE", "tpe_args", "'gama'", "gamma"]),
        ("TPE", {"tpe_args": {"constant_liar_type": "often"}}, ["constant_liar_type", "'best'", "'often'"]),
        ("TPE", {"tpe_args": {"n_startup_jobs": 2, "gamma": 1.0}}, ["n_startup_jobs", "at least 3"]),
        ("Evolution", {"population_size": 0}, ["Evolution", "population_size", "integer >= 1"]),
        ("GPTuner", {"utility": "best"}, ["GPTuner", "utility", "'ei'"]),
        ("GPTuner", {"kappa": True}, ["GPTuner", "kappa", "number"]),
        ("MetisTuner", {"exploration_probability": 2}, ["MetisTuner", "exploration_probability", "[0, 1]"]),
        ("GridSearch", {"seed": 3}, ["GridSearch", "'seed'", "optimize_mode"]),
        ("BatchTuner", {"population_size": 3}, ["BatchTuner", "'population_size'"]),
        ("Anneal", {"constant_liar_type": "best"}, ["Anneal", "constant_liar_type", "'min'"]),
        ("PBTTuner", {"all_checkpoint_dir": ""}, ["PBTTuner", "all_checkpoint_dir", "non-empty path"]),
    ],
)
def test_bad_class_args_name_the_tuner_and_argument(
    name: str, args: dict[str, Any], words: list[str], monkeypatch
) -> None:
    monkeypatch.delenv("NNI_CHECKPOINT_DIRECTORY", raising=False)
    space = BATCH_SPACE if name == "BatchTuner" else NUMERIC_SPACE
    with pytest.raises(UserError) as error:
        create_tuner(name, args, space, "maximize")
    for word in words:
        assert word in str(error.value)


def test_a_bad_class_arg_is_refused_before_nni_is_imported() -> None:
    code = (
        "import sys\n"
        "from automl.errors import UserError\n"
        "from automl.tuners import TUNER_NAMES, create_tuner\n"
        "for name in TUNER_NAMES:\n"
        "    try:\n"
        "        create_tuner(name, {'no_such_arg': 1}, {'x': {'_type': 'uniform', '_value': [0, 1]}}, 'maximize')\n"
        "    except UserError as e:\n"
        "        assert 'no_such_arg' in str(e), e\n"
        "assert 'nni' not in sys.modules, 'nni was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_class_args_that_nni_accepts_are_accepted() -> None:
    create_tuner(
        "TPE",
        {"seed": 3, "tpe_args": {"constant_liar_type": "none", "gamma": 0.5}},
        NUMERIC_SPACE,
        "minimize",
    )
    create_tuner("TPE", {"tpe_args": {"constant_liar_type": None}}, NUMERIC_SPACE, "minimize")
    create_tuner("GPTuner", {"kappa": 5, "xi": 0.01, "utility": "ucb"}, NUMERIC_SPACE, "maximize")
    create_tuner("Evolution", {"optimize_mode": "maximize", "population_size": 10}, NUMERIC_SPACE, "maximize")


def _proposals_while_trials_run(args: dict[str, Any]) -> list[dict[str, Any]]:
    """TPE past its start-up, then asked three times with the trials it proposed still running."""
    tuner = create_tuner("TPE", {"seed": 7, **args}, NUMERIC_SPACE, "minimize")
    for key in range(25):
        params = tuner.ask(key)
        tuner.tell(key, (params["x"] - 0.3) ** 2 + params["n"])
    return [tuner.ask(key) for key in range(25, 28)]


def test_tpe_runs_without_a_constant_liar_unless_one_is_named() -> None:
    without = _proposals_while_trials_run({"tpe_args": {"constant_liar_type": "none"}})
    assert _proposals_while_trials_run({}) == without
    assert _proposals_while_trials_run({"tpe_args": {"constant_liar_type": "best"}}) != without


def test_optimize_mode_must_agree_with_the_experiment() -> None:
    with pytest.raises(UserError, match="optimize_mode is 'minimize'.*'maximize'"):
        create_tuner("TPE", {"optimize_mode": "minimize"}, NUMERIC_SPACE, "maximize")


@pytest.mark.parametrize(
    ("name", "space", "words"),
    [
        ("GPTuner", {"x": {"_type": "normal", "_value": [0, 1]}}, ["GPTuner", "'x'", "'normal'", "uniform"]),
        ("GPTuner", {"act": {"_type": "choice", "_value": ["relu", "tanh"]}}, ["'act'", "numbers"]),
        ("GPTuner", NESTED_SPACE, ["'optimizer'", "nested"]),
        (
            "MetisTuner",
            {"lr": {"_type": "loguniform", "_value": [1e-4, 1]}},
            ["MetisTuner", "'lr'", "loguniform"],
        ),
        ("MetisTuner", {"flag": {"_type": "choice", "_value": [True, False]}}, ["'flag'", "numbers"]),
        ("PBTTuner", NESTED_SPACE, ["PBTTuner", "'optimizer'", "nested"]),
        ("BatchTuner", NUMERIC_SPACE, ["BatchTuner", "combine_params", "choice"]),
        ("TPE", {}, ["TPE", "empty"]),
    ],
)
def test_unsupported_search_space_is_rejected_up_front(name: str, space: dict[str, Any], words: list[str]) -> None:
    args = {"all_checkpoint_dir": "/tmp/checkpoints"} if name == "PBTTuner" else {}
    with pytest.raises(UserError) as error:
        create_tuner(name, args, space, "maximize")
    for word in words:
        assert word in str(error.value)


def test_grid_search_exhausts_a_finite_space() -> None:
    space = {"a": {"_type": "choice", "_value": ["x", "y"]}, "b": {"_type": "randint", "_value": [0, 3]}}
    tuner = create_tuner("GridSearch", {}, space, "maximize")
    issued = [tuner.ask(key) for key in range(6)]
    assert len({_signature(p) for p in issued}) == 6
    with pytest.raises(NoMoreTrials):
        tuner.ask(6)


def test_random_search_exhausts_a_finite_space_without_repeats() -> None:
    space = {"a": {"_type": "choice", "_value": [1, 2, 3]}, "b": {"_type": "choice", "_value": [True, False]}}
    tuner = create_tuner("Random", {"seed": 7}, space, "maximize")
    issued = [tuner.ask(key) for key in range(6)]
    assert sorted(_signature(p) for p in issued) == sorted(
        _signature({"a": a, "b": b}) for a in (1, 2, 3) for b in (True, False)
    )
    with pytest.raises(NoMoreTrials):
        tuner.ask(6)


def test_evolution_waits_for_results_then_hands_out_more() -> None:
    tuner = create_tuner("Evolution", {"population_size": 2}, NUMERIC_SPACE, "maximize")
    first, second = tuner.ask(0), tuner.ask(1)
    assert first is not None and second is not None
    assert tuner.ask(2) is None
    assert tuner.ask(2) is None
    tuner.tell(0, 0.5)
    third = tuner.ask(2)
    assert third is not None
    assert tuner.ask(3) is None
    tuner.tell(1, None)
    fourth = tuner.ask(3)
    assert fourth is not None
    assert len({_signature(p) for p in (first, second, third, fourth)}) == 4


def test_pbt_releases_the_next_generation_when_the_current_one_ends(tmp_path) -> None:
    tuner = create_tuner(
        "PBTTuner", {"all_checkpoint_dir": str(tmp_path), "population_size": 2}, NUMERIC_SPACE, "maximize"
    )
    first, second = tuner.ask(0), tuner.ask(1)
    assert first is not None and second is not None
    assert tuner.ask(2) is None
    tuner.tell(0, 0.9)
    assert tuner.ask(2) is None
    tuner.tell(1, 0.1)
    third, fourth = tuner.ask(2), tuner.ask(3)
    assert third is not None and fourth is not None
    assert {third["load_checkpoint_dir"], fourth["load_checkpoint_dir"]} <= {
        first["save_checkpoint_dir"],
        second["save_checkpoint_dir"],
    }


def test_restored_sets_are_never_proposed_again() -> None:
    space = {"a": {"_type": "choice", "_value": [1, 2, 3, 4]}, "b": {"_type": "randint", "_value": [0, 2]}}
    done = [({"a": 1, "b": 0}, 0.5), ({"a": 2, "b": 1}, None), ({"a": 4, "b": 1}, 0.0)]
    for name in ("GridSearch", "Random", "TPE", "Anneal", "Evolution"):
        tuner = create_tuner(name, {}, space, "maximize")
        tuner.restore(done)
        issued = _all_proposals(tuner, lambda params: float(params["a"]))
        assert len(issued) == 5, name
        assert not {_signature(p) for p in issued} & {_signature(p) for p, _ in done}, name


def test_restored_results_steer_tpe() -> None:
    space = {"x": {"_type": "uniform", "_value": [0.0, 1.0]}}
    rng = random.Random(0)
    history = [({"x": x}, (x - 0.8) ** 2) for x in (rng.random() for _ in range(60))]
    restored = create_tuner("TPE", {"seed": 5}, space, "minimize")
    restored.restore(history)
    fresh = create_tuner("TPE", {"seed": 5}, space, "minimize")
    near = [abs(restored.ask(key)["x"] - 0.8) for key in range(10)]
    anywhere = [abs(fresh.ask(key)["x"] - 0.8) for key in range(10)]
    assert sorted(near)[5] < 0.1
    assert sorted(near)[5] < sorted(anywhere)[5]


@pytest.mark.parametrize("name", ["TPE", "Anneal", "TPE_legacy", "Evolution", "Random", "GridSearch"])
def test_restore_accepts_nested_history(name: str) -> None:
    source = create_tuner("Random", {"seed": 4}, NESTED_SPACE, "minimize")
    history = [(source.ask(key), float(key % 5)) for key in range(25)]
    tuner = create_tuner(name, {}, NESTED_SPACE, "minimize")
    tuner.restore(history)
    issued = _run_with_pending(tuner, 10, pending=2, objective=_objective)
    assert issued
    assert not {_signature(p) for p in issued} & {_signature(p) for p, _ in history}


def test_batch_tuner_restore_skips_sets_already_run() -> None:
    tuner = create_tuner("BatchTuner", {}, BATCH_SPACE, "maximize")
    values = BATCH_SPACE["combine_params"]["_value"]
    tuner.restore([(values[0], 0.0), (values[1], None)])
    issued = []
    with pytest.raises(NoMoreTrials):
        for key in range(40):
            issued.append(tuner.ask(key))
    assert issued == values[2:]


def test_nested_choice_comes_back_as_a_named_dict() -> None:
    tuner = create_tuner("TPE", {"seed": 2, "tpe_args": {"n_startup_jobs": 5}}, NESTED_SPACE, "maximize")
    names = set()
    for key in range(30):
        params = tuner.ask(key)
        optimizer = params["optimizer"]
        names.add(optimizer["_name"])
        expected = {"sgd": {"_name", "momentum"}, "adam": {"_name", "beta1"}, "plain": {"_name"}}
        assert set(optimizer) == expected[optimizer["_name"]]
        tuner.tell(key, params["x"])
    assert names == {"sgd", "adam", "plain"}


def test_failed_and_non_finite_results_do_not_break_the_tuner() -> None:
    tuner = create_tuner("GPTuner", RUNS["GPTuner"][0], NUMERIC_SPACE, "maximize")
    for key in range(7):
        params = tuner.ask(key)
        assert params is not None
        tuner.tell(key, [None, math.nan, math.inf, 1.0][key % 4])
    tuner.tell(99, 1.0)
    with pytest.raises(ValueError):
        tuner.ask(0) and tuner.ask(0)


def test_using_tuners_keeps_stdout_stderr_and_root_logger_clean() -> None:
    code = """
import logging, sys
sys.path.insert(0, "tests")
from test_tuners import RUNS, _objective, _run_with_pending
from automl.tuners import create_tuner
before = list(logging.getLogger().handlers)
for name in ("TPE", "Evolution", "MetisTuner", "GPTuner", "Anneal"):
    args, space, _ = RUNS[name]
    _run_with_pending(create_tuner(name, args, space, "maximize"), 7, pending=2, objective=_objective)
assert logging.getLogger().handlers == before
assert logging.getLogger().level == logging.WARNING
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "" and result.stderr == ""


def test_importing_the_package_does_not_import_nni() -> None:
    code = "import sys, automl.tuners; assert 'nni' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_tpe_loads_neither_sklearn_gaussian_processes_nor_hyperopt() -> None:
    code = """
import sys
from automl.tuners import create_tuner
tuner = create_tuner("TPE", {}, {"x": {"_type": "uniform", "_value": [0, 1]}}, "maximize")
tuner.tell(0, tuner.ask(0)["x"])
loaded = sorted(m for m in sys.modules if m.startswith(("sklearn.gaussian_process", "hyperopt")))
assert not loaded, loaded
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def _run_with_pending(tuner: Tuner, asks: int, pending: int, objective) -> list[dict[str, Any]]:
    rng = random.Random(42)
    issued: list[dict[str, Any]] = []
    running: dict[int, dict[str, Any]] = {}
    for key in range(asks):
        try:
            params = tuner.ask(key)
        except NoMoreTrials:
            break
        if params is not None:
            issued.append(params)
            running[key] = params
        if running and (len(running) >= pending or params is None):
            finished = rng.choice(sorted(running))
            params = running.pop(finished)
            tuner.tell(finished, None if rng.random() < 0.1 else objective(params))
    return issued


def _objective(params: dict[str, Any]) -> float:
    return sum(float(v) for v in params.values() if isinstance(v, (int, float)) and not isinstance(v, bool))


def _signature(params: dict[str, Any]) -> str:
    return json.dumps(params, sort_keys=True)


def _assert_plain(value: Any) -> None:
    if isinstance(value, dict):
        assert all(type(k) is str for k in value)
        for item in value.values():
            _assert_plain(item)
    elif isinstance(value, list):
        for item in value:
            _assert_plain(item)
    else:
        assert type(value) in (str, int, float, bool, type(None)), f"{value!r} is a {type(value).__name__}"


def _assert_in_space(space: dict[str, Any], params: dict[str, Any], extra: set[str] = frozenset()) -> None:
    declared = {name for name in space if name != "_name"}
    assert set(params) - {"_name"} - set(extra) == declared
    for name in declared:
        kind, values, value = space[name]["_type"], space[name]["_value"], params[name]
        if kind == "choice":
            if isinstance(value, dict):
                option = next(o for o in values if isinstance(o, dict) and o.get("_name") == value["_name"])
                _assert_in_space(option, value)
            else:
                assert value in values and type(value) is type(values[values.index(value)]), (name, value)
        elif kind == "randint":
            assert type(value) is int and values[0] <= value < values[1], (name, value)
        else:
            assert type(value) is float, (name, value)
            if kind in ("uniform", "quniform", "loguniform", "qloguniform"):
                assert values[0] <= value <= values[1], (name, value)
            if kind.startswith("q"):
                steps = value / values[2]
                assert abs(steps - round(steps)) < 1e-6 or value in values[:2], (name, value)
            if "log" in kind:
                assert value > 0, (name, value)


NNI_BATCH_SPACE: dict[str, Any] = {
    "combine_params": {
        "_type": "choice",
        "_value": [
            {"optimizer": "Adam", "learning_rate": 0.00001},
            {"optimizer": "Adam", "learning_rate": 0.0001},
            {"optimizer": "SGD", "learning_rate": 0.01},
        ],
    }
}


def _all_proposals(tuner: Tuner, value: Callable[[dict[str, Any]], float] = lambda params: 1.0) -> list[dict[str, Any]]:
    """Every set the tuner proposes until it has no more, each told `value(params)` at once."""
    issued = []
    with pytest.raises(NoMoreTrials):
        for key in range(100):
            params = tuner.ask(key)
            assert params is not None
            issued.append(params)
            tuner.tell(key, value(params))
    return issued


def test_batch_tuner_hands_out_each_parameter_set_as_it_is() -> None:
    tuner = create_tuner("BatchTuner", {}, NNI_BATCH_SPACE, "maximize")
    assert _all_proposals(tuner) == NNI_BATCH_SPACE["combine_params"]["_value"]


def test_batch_tuner_hands_out_a_plain_value_under_the_parameter_name() -> None:
    space = {"combine_params": {"_type": "choice", "_value": [0.1, "adam", {"lr": 0.5}]}}
    tuner = create_tuner("BatchTuner", {}, space, "maximize")
    assert _all_proposals(tuner) == [{"combine_params": 0.1}, {"combine_params": "adam"}, {"lr": 0.5}]


def test_pbt_without_a_checkpoint_folder_uses_the_experiments_folder(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("NNI_CHECKPOINT_DIRECTORY", raising=False)
    tuner = create_tuner("PBTTuner", {"population_size": 2}, NUMERIC_SPACE, "maximize")
    with pytest.raises(RuntimeError, match="experiment's folder"):
        tuner.ask(0)
    tuner.use_folder(tmp_path / "exp")
    first, second = tuner.ask(0), tuner.ask(1)
    assert first is not None and second is not None
    for params in (first, second):
        assert params["save_checkpoint_dir"].startswith(str(tmp_path / "exp" / "checkpoints") + "/")


def test_pbt_checkpoint_folder_from_class_args_or_nni_variable_wins(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("NNI_CHECKPOINT_DIRECTORY", str(tmp_path / "nni"))
    from_env = create_tuner("PBTTuner", {"population_size": 2}, NUMERIC_SPACE, "maximize")
    given = create_tuner(
        "PBTTuner", {"population_size": 2, "all_checkpoint_dir": str(tmp_path / "mine")}, NUMERIC_SPACE, "maximize"
    )
    for tuner, folder in ((from_env, "nni"), (given, "mine")):
        tuner.use_folder(tmp_path / "exp")
        params = tuner.ask(0)
        assert params is not None
        assert params["save_checkpoint_dir"].startswith(str(tmp_path / folder) + "/")


SINGLE_VALUE_SPACE: dict[str, Any] = {
    "u": {"_type": "uniform", "_value": [0.5, 0.5]},
    "lu": {"_type": "loguniform", "_value": [0.01, 0.01]},
    "qu": {"_type": "quniform", "_value": [32, 32, 8]},
    "qlu": {"_type": "qloguniform", "_value": [4, 4, 2]},
    "ri": {"_type": "randint", "_value": [3, 4]},
    "n": {"_type": "normal", "_value": [1.5, 0]},
    "qn": {"_type": "qnormal", "_value": [1.4, 0, 0.5]},
    "ln": {"_type": "lognormal", "_value": [0, 0]},
    "qln": {"_type": "qlognormal", "_value": [0, 0, 0.5]},
}
SINGLE_VALUES = {"u": 0.5, "lu": 0.01, "qu": 32.0, "qlu": 4.0, "ri": 3, "n": 1.5, "qn": 1.5, "ln": 1.0, "qln": 1.0}
SINGLE_VALUE_RUNS: dict[str, tuple[dict[str, Any], frozenset[str], int]] = {
    "TPE": ({"tpe_args": {"n_startup_jobs": 3}}, frozenset(SINGLE_VALUES), 8),
    "Random": ({}, frozenset(SINGLE_VALUES), 8),
    "Anneal": ({}, frozenset(SINGLE_VALUES), 8),
    "TPE_legacy": ({}, frozenset(SINGLE_VALUES), 8),
    "Evolution": ({"population_size": 3}, frozenset(SINGLE_VALUES), 8),
    "GridSearch": ({}, frozenset(SINGLE_VALUES), 8),
    "PBTTuner": ({"population_size": 2}, frozenset(SINGLE_VALUES), 4),
    "GPTuner": (
        {"cold_start_num": 2, "selection_num_warm_up": 50, "selection_num_starting_points": 1},
        frozenset({"u", "lu", "qu", "qlu", "ri"}),
        4,
    ),
    "MetisTuner": ({"cold_start_num": 2, "selection_num_starting_points": 2}, frozenset({"u", "qu", "ri"}), 4),
}


def test_every_tuner_but_batch_has_a_single_value_run() -> None:
    assert set(SINGLE_VALUE_RUNS) == set(TUNER_NAMES) - {"BatchTuner"}


@pytest.mark.parametrize("name", sorted(SINGLE_VALUE_RUNS))
def test_single_value_ranges_run_as_their_constant(name: str, tmp_path) -> None:
    args, types, asks = SINGLE_VALUE_RUNS[name]
    if name == "PBTTuner":
        args = {**args, "all_checkpoint_dir": str(tmp_path)}
    space = {key: spec for key, spec in SINGLE_VALUE_SPACE.items() if key in types}
    space["x"] = {"_type": "choice", "_value": list(range(asks))}
    tuner = create_tuner(name, args, space, "maximize")
    issued = _run_with_pending(tuner, asks, pending=1, objective=lambda params: float(params["x"]))
    assert len(issued) >= 2, name
    for params in issued:
        assert {key: params[key] for key in types} == {key: SINGLE_VALUES[key] for key in types}, name
        assert all(type(params[key]) is type(SINGLE_VALUES[key]) for key in types), name


# end to end: `automl run` and the daemon on our own config

PBT_TRIAL = """
import os
import time
import nni
params = nni.get_next_parameter()
load = os.path.join(params["load_checkpoint_dir"], "model.txt")
if params["load_checkpoint_dir"] != params["save_checkpoint_dir"] and not os.path.isfile(load):
    raise SystemExit(f"no checkpoint in {load}")
start = float(open(load).read()) if os.path.isfile(load) else 0.0
time.sleep(params.get("pace", 0))
os.makedirs(params["save_checkpoint_dir"], exist_ok=True)
with open(os.path.join(params["save_checkpoint_dir"], "model.txt"), "w") as f:
    f.write(str(start + params["x"]))
nni.report_final_result(start + params["x"])
"""


def _run_config(folder, trial: str, **fields: Any):
    (folder / "trial.py").write_text(trial)
    return write_config(folder, **fields)


def _experiment_id() -> str:
    (experiment,) = json.loads(automl("ls", "--json", check=True).stdout)
    return experiment["id"]


def test_automl_run_takes_nnis_batch_tuner_example_as_it_is(tmp_path, home) -> None:
    (tmp_path / "search_space.json").write_text(json.dumps(NNI_BATCH_SPACE))
    trial = "import nni\nparams = nni.get_next_parameter()\nnni.report_final_result(params['learning_rate'])\n"
    config = _run_config(
        tmp_path,
        trial,
        search_space_file="search_space.json",
        search_space=None,
        tuner={"name": "BatchTuner"},
        max_trials=10,
        concurrency=1,
    )
    result = automl("run", str(config))
    assert result.returncode == 0, result.stderr
    trials = show(_experiment_id())["trials"]
    assert [t["params"] for t in trials] == NNI_BATCH_SPACE["combine_params"]["_value"]
    assert [t["status"] for t in trials] == ["succeeded"] * 3


def test_automl_run_warns_once_and_runs_a_single_value_range_as_its_constant(tmp_path, home) -> None:
    space = {"x": {"_type": "uniform", "_value": [0, 1]}, "lr": {"_type": "loguniform", "_value": [0.01, 0.01]}}
    config = _run_config(
        tmp_path,
        "import nni\nnni.report_final_result(nni.get_next_parameter()['lr'])\n",
        search_space=space,
        tuner={"name": "TPE"},
        max_trials=3,
    )
    result = automl("run", str(config))
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("automl: warning: ")]
    assert warnings == [
        f"automl: warning: {config}: search space: parameter 'lr' is loguniform [0.01, 0.01], "
        "a single value: it runs as the constant 0.01"
    ]
    assert [t["params"]["lr"] for t in show(_experiment_id())["trials"]] == [0.01] * 3


def test_automl_run_pbt_keeps_checkpoints_in_the_experiment_folder(tmp_path, home, monkeypatch) -> None:
    monkeypatch.delenv("NNI_CHECKPOINT_DIRECTORY", raising=False)
    config = _run_config(
        tmp_path,
        PBT_TRIAL,
        search_space={"x": {"_type": "uniform", "_value": [0, 1]}},
        tuner={"name": "PBTTuner", "args": {"population_size": 2}},
        max_trials=6,
        concurrency=2,
    )
    result = automl("run", str(config))
    assert result.returncode == 0, result.stderr
    exp_id = _experiment_id()
    trials = show(exp_id)["trials"]
    assert [t["status"] for t in trials] == ["succeeded"] * 6
    folder = home / "experiments" / exp_id / "checkpoints"
    assert all(t["params"]["save_checkpoint_dir"].startswith(f"{folder}/") for t in trials)
    loaded = [t for t in trials if t["params"]["load_checkpoint_dir"] != t["params"]["save_checkpoint_dir"]]
    assert len(loaded) == 4
    assert all((Path(t["params"]["save_checkpoint_dir"]) / "model.txt").is_file() for t in trials)


def test_pbt_in_the_daemon_goes_on_with_its_checkpoints_after_a_restart(tmp_path, home, daemon) -> None:
    space = {"x": {"_type": "uniform", "_value": [0, 1]}, "pace": {"_type": "choice", "_value": [0.5]}}
    exp_id = submit(
        _run_config(
            tmp_path,
            PBT_TRIAL,
            search_space=space,
            max_trials=6,
            concurrency=2,
            tuner={"name": "PBTTuner", "args": {"population_size": 2}},
        )
    )
    wait_until(lambda: [t for t in show(exp_id)["trials"] if t["status"] == "succeeded"], "a succeeded trial")
    automl("daemon", "restart", check=True)
    trials = wait_for_status(exp_id, "done")["trials"]
    assert [t["status"] for t in trials] == ["succeeded"] * 6
    folder = home / "experiments" / exp_id / "checkpoints"
    assert all(t["params"]["save_checkpoint_dir"].startswith(f"{folder}/") for t in trials)
    assert any(t["params"]["load_checkpoint_dir"] != t["params"]["save_checkpoint_dir"] for t in trials)
    saved = [t["params"]["save_checkpoint_dir"] for t in trials]
    assert len(set(saved)) == len(saved), "no member of a generation runs twice into the same folder"


def _pbt_record(root: Path, member: int, generation: int, load: int | None = None) -> dict[str, Any]:
    save = root / str(member) / str(generation)
    save.mkdir(parents=True, exist_ok=True)
    loaded = save if load is None else root / str(load) / str(generation - 1)
    return {"x": 0.5, "load_checkpoint_dir": str(loaded), "save_checkpoint_dir": str(save)}


def test_pbt_resumes_in_the_generation_it_was_in_without_running_a_member_twice(tmp_path) -> None:
    args = {"all_checkpoint_dir": str(tmp_path), "population_size": 3}
    gen0 = [_pbt_record(tmp_path, member, 0) for member in range(3)]
    done1, running1 = _pbt_record(tmp_path, 0, 1, load=0), _pbt_record(tmp_path, 1, 1, load=0)
    tuner = create_tuner("PBTTuner", args, NUMERIC_SPACE, "maximize")
    tuner.restore([(gen0[0], 0.9), (gen0[1], None), (gen0[2], 0.1), (done1, 0.95)], [running1])
    third = tuner.ask(0)
    assert third is not None and third["save_checkpoint_dir"] == str(tmp_path / "2" / "1"), (
        "only the member never handed out is proposed"
    )
    assert third["load_checkpoint_dir"].endswith("/0")
    assert tuner.ask(1) is None, "the next generation waits for the member still running"
    tuner.tell(0, 0.5)
    assert tuner.ask(1) is None
    tuner.restore([(running1, 0.7)])
    fourth = tuner.ask(1)
    assert fourth is not None and fourth["save_checkpoint_dir"].endswith("/2")


def test_pbt_resumes_a_first_generation_in_progress_and_from_nothing(tmp_path) -> None:
    args = {"all_checkpoint_dir": str(tmp_path), "population_size": 2}
    tuner = create_tuner("PBTTuner", args, NUMERIC_SPACE, "maximize")
    first = _pbt_record(tmp_path, 0, 0)
    tuner.restore([(first, 0.4)])
    second = tuner.ask(0)
    assert second is not None and second["save_checkpoint_dir"] == str(tmp_path / "1" / "0")
    fresh = create_tuner("PBTTuner", args, NUMERIC_SPACE, "maximize")
    fresh.restore([])
    assert fresh.ask(0) is not None
