"""The search-space parser: every NNI type accepted, every malformed space refused with a clear message."""

import pytest

from automl.config.search_space import (
    constant_warnings,
    constants,
    parameter_types,
    validate,
    with_constants_as_choices,
)
from automl.errors import UserError

FULL_SPACE = {
    "opt": {
        "_type": "choice",
        "_value": [
            {"_name": "sgd", "momentum": {"_type": "uniform", "_value": [0.5, 0.99]}},
            {"_name": "adam"},
        ],
    },
    "act": {"_type": "choice", "_value": ["relu", "tanh"]},
    "layers": {"_type": "randint", "_value": [1, 4]},
    "dropout": {"_type": "uniform", "_value": [0.0, 0.5]},
    "width": {"_type": "quniform", "_value": [32, 256, 32]},
    "lr": {"_type": "loguniform", "_value": [1e-4, 1e-1]},
    "batch": {"_type": "qloguniform", "_value": [16, 256, 16]},
    "shift": {"_type": "normal", "_value": [0, 1]},
    "qshift": {"_type": "qnormal", "_value": [0, 1, 0.5]},
    "scale": {"_type": "lognormal", "_value": [0, 1]},
    "qscale": {"_type": "qlognormal", "_value": [0, 1, 0.1]},
}


def test_every_type_is_accepted_and_listed():
    assert validate(FULL_SPACE) is FULL_SPACE
    types = parameter_types(FULL_SPACE)
    assert types["opt.momentum"] == "uniform"
    assert {t for name, t in types.items()} == {
        "choice",
        "randint",
        "uniform",
        "quniform",
        "loguniform",
        "qloguniform",
        "normal",
        "qnormal",
        "lognormal",
        "qlognormal",
    }


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"_type": "choice", "_value": []}, "at least one option"),
        ({"_type": "uniform", "_value": [2, 1]}, "low <= high"),
        ({"_type": "qloguniform", "_value": [8, 4, 1]}, "low <= high"),
        ({"_type": "randint", "_value": [5, 2]}, "low < high"),
        ({"_type": "randint", "_value": [3, 3]}, "low < high (high is excluded)"),
        ({"_type": "randint", "_value": [0.5, 2]}, "must be integers"),
        ({"_type": "loguniform", "_value": [0, 1]}, "low > 0"),
        ({"_type": "qloguniform", "_value": [-1, 10, 1]}, "low > 0"),
        ({"_type": "normal", "_value": [0, -1]}, "sigma >= 0"),
        ({"_type": "quniform", "_value": [0, 10, 0]}, "q > 0"),
        ({"_type": "gaussian", "_value": [0, 1]}, "unknown _type 'gaussian'; allowed: choice, randint"),
        ({"_type": "uniform", "_value": [0, 1, 2]}, "uniform takes 2 values [low, high], got 3"),
        ({"_type": "qnormal", "_value": [0, 1]}, "qnormal takes 3 values [mu, sigma, q], got 2"),
        ({"_type": "uniform", "_value": ["a", 1]}, "must be finite numbers"),
        ({"_type": "uniform", "_value": 3}, "_value must be a list"),
        ({"_value": [1, 2]}, "must be an object with '_type' and '_value'"),
        ({"_type": "uniform", "_value": [0, 1], "extra": 1}, "unknown key(s) ['extra']"),
        ({"_type": "choice", "_value": [{"_name": "sgd"}, {"momentum": 1}]}, "needs a '_name' in every option"),
        ({"_type": "choice", "_value": [{"_name": "sgd"}, "adam"]}, "needs a '_name' in every option"),
        ({"_type": "choice", "_value": [{"_name": "a"}, {"_name": "a"}]}, "distinct '_name'"),
    ],
)
def test_malformed_parameters_are_refused_naming_the_parameter(spec, message):
    with pytest.raises(UserError) as e:
        validate({"p": spec}, "space.json")
    assert "space.json: parameter 'p'" in str(e.value)
    assert message in str(e.value)


def test_errors_inside_a_nested_choice_name_the_path():
    space = {"opt": {"_type": "choice", "_value": [{"_name": "sgd", "m": {"_type": "uniform", "_value": [1, 0]}}]}}
    with pytest.raises(UserError, match=r"parameter 'opt\[sgd\]\.m': uniform needs low <= high"):
        validate(space)


@pytest.mark.parametrize("space", [{}, [], "x", None])
def test_empty_or_non_mapping_spaces_are_refused(space):
    with pytest.raises(UserError):
        validate(space)


def test_choice_of_plain_mappings_is_a_choice_of_values_as_in_nni():
    sets = [{"optimizer": "Adam", "learning_rate": 1e-5}, {"optimizer": "SGD", "learning_rate": 0.01}]
    space = {"combine_params": {"_type": "choice", "_value": sets}}
    assert validate(space) is space
    assert parameter_types(space) == {"combine_params": "choice"}


SINGLE_VALUES = {
    "u": ({"_type": "uniform", "_value": [0.5, 0.5]}, 0.5),
    "lu": ({"_type": "loguniform", "_value": [0.01, 0.01]}, 0.01),
    "qu": ({"_type": "quniform", "_value": [32, 32, 8]}, 32.0),
    "qlu": ({"_type": "qloguniform", "_value": [4, 4, 2]}, 4.0),
    "ri": ({"_type": "randint", "_value": [3, 4]}, 3),
    "n": ({"_type": "normal", "_value": [1.5, 0]}, 1.5),
    "qn": ({"_type": "qnormal", "_value": [1.4, 0, 0.5]}, 1.5),
    "ln": ({"_type": "lognormal", "_value": [0, 0]}, 1.0),
}


def test_single_value_ranges_are_constants_with_one_warning_each():
    space = {name: spec for name, (spec, _) in SINGLE_VALUES.items()}
    space["wide"] = {"_type": "uniform", "_value": [0, 1]}
    space["opt"] = {
        "_type": "choice",
        "_value": [{"_name": "sgd", "m": {"_type": "uniform", "_value": [0.9, 0.9]}}, {"_name": "adam"}],
    }
    assert validate(space) is space
    found = constants(space)
    assert {path: value for path, (_, _, value) in found.items()} == {
        **{name: value for name, (_, value) in SINGLE_VALUES.items()},
        "opt[sgd].m": 0.9,
    }
    assert isinstance(found["ri"][2], int) and isinstance(found["qu"][2], float)
    warnings = constant_warnings(space, "exp.yml: search space")
    assert len(warnings) == len(found)
    assert (
        "exp.yml: search space: parameter 'u' is uniform [0.5, 0.5], a single value: it runs as the constant 0.5"
        in warnings
    )
    as_choices = with_constants_as_choices(space)
    assert as_choices["u"] == {"_type": "choice", "_value": [0.5]}
    assert as_choices["ri"] == {"_type": "choice", "_value": [3]}
    assert as_choices["wide"] == space["wide"]
    assert as_choices["opt"]["_value"][0] == {"_name": "sgd", "m": {"_type": "choice", "_value": [0.9]}}
    assert space["u"] == {"_type": "uniform", "_value": [0.5, 0.5]}


def test_ordinary_ranges_are_not_constants():
    assert constants(FULL_SPACE) == {}
    assert constant_warnings(FULL_SPACE) == []
