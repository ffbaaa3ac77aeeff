"""The search-space parser: every NNI type accepted, every malformed space refused with a clear message."""

import pytest

from automl.errors import UserError
from automl.search_space import parameter_types, validate

FULL_SPACE = {
    "opt": {"_type": "choice", "_value": [
        {"_name": "sgd", "momentum": {"_type": "uniform", "_value": [0.5, 0.99]}},
        {"_name": "adam"},
    ]},
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
    assert {t for name, t in types.items()} == {"choice", "randint", "uniform", "quniform", "loguniform",
                                                 "qloguniform", "normal", "qnormal", "lognormal", "qlognormal"}


@pytest.mark.parametrize(("spec", "message"), [
    ({"_type": "choice", "_value": []}, "at least one option"),
    ({"_type": "uniform", "_value": [1, 1]}, "low < high"),
    ({"_type": "randint", "_value": [5, 2]}, "low < high"),
    ({"_type": "randint", "_value": [0.5, 2]}, "must be integers"),
    ({"_type": "loguniform", "_value": [0, 1]}, "low > 0"),
    ({"_type": "qloguniform", "_value": [-1, 10, 1]}, "low > 0"),
    ({"_type": "normal", "_value": [0, 0]}, "sigma > 0"),
    ({"_type": "quniform", "_value": [0, 10, 0]}, "q > 0"),
    ({"_type": "gaussian", "_value": [0, 1]}, "unknown _type 'gaussian'; allowed: choice, randint"),
    ({"_type": "uniform", "_value": [0, 1, 2]}, "uniform takes 2 values [low, high], got 3"),
    ({"_type": "qnormal", "_value": [0, 1]}, "qnormal takes 3 values [mu, sigma, q], got 2"),
    ({"_type": "uniform", "_value": ["a", 1]}, "must be finite numbers"),
    ({"_type": "uniform", "_value": 3}, "_value must be a list"),
    ({"_value": [1, 2]}, "must be an object with '_type' and '_value'"),
    ({"_type": "uniform", "_value": [0, 1], "extra": 1}, "unknown key(s) ['extra']"),
    ({"_type": "choice", "_value": [{"momentum": 1}]}, "must have a '_name' key"),
    ({"_type": "choice", "_value": [{"_name": "a"}, {"_name": "a"}]}, "distinct '_name'"),
])
def test_malformed_parameters_are_refused_naming_the_parameter(spec, message):
    with pytest.raises(UserError) as e:
        validate({"p": spec}, "space.json")
    assert "space.json: parameter 'p'" in str(e.value)
    assert message in str(e.value)


def test_errors_inside_a_nested_choice_name_the_path():
    space = {"opt": {"_type": "choice", "_value": [{"_name": "sgd", "m": {"_type": "uniform", "_value": [1, 0]}}]}}
    with pytest.raises(UserError, match=r"parameter 'opt\[sgd\]\.m': uniform needs low < high"):
        validate(space)


@pytest.mark.parametrize("space", [{}, [], "x", None])
def test_empty_or_non_mapping_spaces_are_refused(space):
    with pytest.raises(UserError):
        validate(space)
