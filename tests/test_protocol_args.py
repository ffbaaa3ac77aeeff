"""Each daemon op's arguments are checked against its model in the protocol: a mistake is a user error that names
the argument and what it must be, and a valid request reaches its handler with typed arguments."""

from __future__ import annotations

from typing import Any

import pytest

from automl.control import protocol
from automl.daemon import OPERATIONS, OPS


def refusal(op: str, args: dict[str, Any]) -> protocol.ProtocolError:
    with pytest.raises(protocol.ProtocolError) as refused:
        protocol.parse_op_args(op, OPERATIONS[op].args, args)
    return refused.value


@pytest.mark.parametrize(
    ("op", "args", "message"),
    [
        ("stop", {"experiment": "x", "force": True}, "unknown argument(s) 'force' for stop; allowed: experiment"),
        ("status", {"verbose": 1}, "unknown argument(s) 'verbose' for status; allowed: none"),
        (
            "update",
            {"experiment": "x", "b": 1, "a": 2},
            "unknown argument(s) 'a', 'b' for update; allowed: experiment, ",
        ),
        ("pause", {}, "argument 'experiment' is missing; it must be a string"),
        ("pause", {"experiment": None}, "argument 'experiment' must be a string: an experiment id"),
        ("kill", {"experiment": "x", "trial": "3"}, "argument 'trial' must be an integer: a trial id, got '3'"),
        ("kill", {"experiment": "x", "trial": True}, "argument 'trial' must be an integer: a trial id, got True"),
        ("submit", {"config": 1}, "argument 'config' must be a string: the path of a config file, got 1"),
        (
            "submit",
            {"config": "c.yml", "environment": {"A": 1}},
            "'environment' must be an object of strings, got an object",
        ),
        ("resume", {"experiment": "x", "environment": []}, "'environment' must be an object of strings, got an array"),
        (
            "update",
            {"experiment": "x", "concurrency": 1.5},
            "argument 'concurrency' must be an integer or null, got 1.5",
        ),
    ],
)
def test_a_bad_argument_is_a_user_error_naming_it(op: str, args: dict[str, Any], message: str) -> None:
    refused = refusal(op, args)
    assert refused.code == protocol.USER_ERROR
    assert message in refused.message, refused.message


def test_valid_arguments_arrive_typed_with_defaults() -> None:
    update = protocol.parse_op_args("update", OPERATIONS["update"].args, {"experiment": "x", "max_trials": 5})
    assert update == protocol.UpdateArgs(experiment="x", max_trials=5)
    assert (update.concurrency, update.max_duration) == (None, None)
    submit = protocol.parse_op_args("submit", OPERATIONS["submit"].args, {"config": "c.yml", "environment": {"A": "1"}})
    assert submit == protocol.SubmitArgs(config="c.yml", environment={"A": "1"})


def test_every_op_has_a_handler_and_an_argument_model() -> None:
    assert OPS == ("ping", "status", "gpus", "shutdown", "submit", "pause", "stop", "resume", "kill", "update")
    for op in OPS:
        assert issubclass(OPERATIONS[op].args, protocol.OpArgs), op
        assert OPERATIONS[op].args.model_config["extra"] == "forbid", op
