"""The control protocol of the daemon's Unix socket, version 1: newline-delimited JSON requests, replies and events.

Documented for users in docs/protocol.md. Requests and each op's arguments are validated with pydantic; replies
and events are plain dicts.

Contract: clients of other automl versions (scripts, dashboards, older and newer CLIs) speak this protocol. Ops,
arguments, reply fields, event kinds and error codes may be added; none is ever renamed, removed or given another
meaning. A change that breaks that needs a new PROTOCOL_VERSION.
"""

from __future__ import annotations

import json
import math
import time
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, ValidationError

from ..states import EventKind

PROTOCOL_VERSION = 1
MAX_MESSAGE_BYTES = 1024 * 1024
SUBSCRIBE = "subscribe"

BAD_REQUEST = "bad_request"
TOO_LARGE = "too_large"
UNSUPPORTED_VERSION = "unsupported_version"
USER_ERROR = "user_error"
INTERNAL = "internal"
FORBIDDEN = "forbidden"
OVERFLOW = "overflow"
BUSY = "busy"
IDLE = "idle"
ERROR_CODES = (BAD_REQUEST, TOO_LARGE, UNSUPPORTED_VERSION, USER_ERROR, INTERNAL, FORBIDDEN, OVERFLOW, BUSY, IDLE)

RequestId = int | str


class ProtocolError(Exception):
    """A request that cannot be served: the error code, the message, and the request's id when it could be read."""

    def __init__(self, code: str, message: str, request_id: RequestId | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.request_id = request_id


class Request(BaseModel):
    """One request line."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    v: StrictInt = Field(description=f"must be the protocol version, the integer {PROTOCOL_VERSION}")
    id: StrictInt | StrictStr = Field(description="must be an integer or a string")
    op: StrictStr = Field(min_length=1, description="must be a non-empty string naming the operation")
    args: dict[str, Any] = Field(default_factory=dict, description="must be an object")


class SubscribeArgs(BaseModel):
    """The arguments of `subscribe`: which experiment (None: all) and which event kinds (None: all)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    experiment: StrictStr | None = Field(default=None, description="must be an experiment id or null")
    events: list[StrictStr] | None = Field(default=None, description="must be a list of event kinds or null")


class OpArgs(BaseModel):
    """The arguments of one daemon op; every op's model lists all it takes, and anything else is refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class NoArgs(OpArgs):
    """`ping`, `status`, `gpus`, `shutdown`: no arguments."""


Environment = dict[StrictStr, StrictStr]
ENVIRONMENT = "must be an object of strings"
EXPERIMENT = "must be a string: an experiment id, a unique id prefix or a name"


class SubmitArgs(OpArgs):
    """`submit`: the config file's path, and the environment its trials run with (null: the daemon's)."""

    config: StrictStr = Field(description="must be a string: the path of a config file")
    environment: Environment | None = Field(default=None, description=ENVIRONMENT)


class ExperimentArgs(OpArgs):
    """`pause`, `stop`: which experiment."""

    experiment: StrictStr = Field(description=EXPERIMENT)


class ResumeArgs(ExperimentArgs):
    """`resume`: which experiment, and the environment an adopted orphan's trials run with (null: the daemon's)."""

    environment: Environment | None = Field(default=None, description=ENVIRONMENT)


class KillArgs(ExperimentArgs):
    """`kill`: which trial of which experiment."""

    trial: StrictInt = Field(description="must be an integer: a trial id")


class UpdateArgs(ExperimentArgs):
    """`update`: new limits for a running experiment; null leaves one as it is."""

    concurrency: StrictInt | None = Field(default=None, description="must be an integer or null")
    max_trials: StrictInt | None = Field(default=None, description="must be an integer or null")
    max_duration: Any = Field(default=None, description="must be a duration such as '2h' or a number of seconds")


def parse_request(line: bytes) -> Request:
    """Decode and validate one request line; raises ProtocolError saying what is wrong and what is allowed."""
    try:
        obj = json.loads(line.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError) as e:
        raise ProtocolError(BAD_REQUEST, f"not valid UTF-8 JSON: {e}") from None
    except RecursionError:
        raise ProtocolError(BAD_REQUEST, "JSON nested too deeply") from None
    if not isinstance(obj, dict):
        raise ProtocolError(BAD_REQUEST, f"a request must be a JSON object, not {_json_type(obj)}")
    request_id = obj.get("id") if _is_id(obj.get("id")) else None
    version = obj.get("v")
    if _is_int(version) and version != PROTOCOL_VERSION:
        raise ProtocolError(
            UNSUPPORTED_VERSION,
            f"protocol version {version} is not supported; this daemon speaks version {PROTOCOL_VERSION}",
            request_id,
        )
    try:
        return Request.model_validate(obj)
    except ValidationError as e:
        raise ProtocolError(BAD_REQUEST, "invalid request: " + _describe(Request, e), request_id) from None


def parse_subscribe_args(args: dict[str, Any]) -> SubscribeArgs:
    """Validate the arguments of `subscribe`; raises ProtocolError (bad_request) saying what is allowed."""
    try:
        return SubscribeArgs.model_validate(args)
    except ValidationError as e:
        raise ProtocolError(BAD_REQUEST, f"invalid args for {SUBSCRIBE}: " + _describe(SubscribeArgs, e)) from None


def parse_op_args(op: str, model: type[OpArgs], args: dict[str, Any]) -> OpArgs:
    """Validate an op's arguments; raises ProtocolError (user_error) naming each offending argument and what it
    must be, or the ones the op does not take and those it does."""
    try:
        return model.model_validate(args)
    except ValidationError as e:
        unknown = sorted(str(item["loc"][0]) for item in e.errors() if item["type"] == "extra_forbidden")
        if unknown:
            allowed = ", ".join(model.model_fields) or "none"
            message = f"unknown argument(s) {', '.join(map(repr, unknown))} for {op}; allowed: {allowed}"
        else:
            names = dict.fromkeys(str(item["loc"][0]) for item in e.errors() if item["loc"])
            message = "; ".join(_describe_argument(model, name, args) for name in names)
        raise ProtocolError(USER_ERROR, message) from None


def request_message(request_id: RequestId, op: str, args: dict[str, Any]) -> dict[str, Any]:
    """A request, as a client sends it."""
    return {"v": PROTOCOL_VERSION, "id": request_id, "op": op, "args": args}


def ok_reply(request_id: RequestId, result: Any) -> dict[str, Any]:
    """A successful reply carrying the operation's result."""
    return {"v": PROTOCOL_VERSION, "id": request_id, "ok": True, "result": result}


def error_reply(request_id: RequestId | None, code: str, message: str) -> dict[str, Any]:
    """A failed reply; `request_id` is None when the request's id could not be read."""
    return {"v": PROTOCOL_VERSION, "id": request_id, "ok": False, "error": {"code": code, "message": message}}


def event_message(
    kind: EventKind, experiment: str | None, data: dict[str, Any], at: float | None = None
) -> dict[str, Any]:
    """An event pushed to subscribers; `at` is its Unix time (now by default)."""
    return {
        "v": PROTOCOL_VERSION,
        "event": kind,
        "experiment": experiment,
        "time": time.time() if at is None else at,
        "data": data,
    }


def encode(message: dict[str, Any]) -> bytes:
    """One line of ASCII JSON with its newline; NaN and infinities become null, since JSON has no such numbers."""
    try:
        text = json.dumps(message, separators=(",", ":"), allow_nan=False)
    except ValueError:
        text = json.dumps(_finite(message), separators=(",", ":"), allow_nan=False)
    return text.encode("ascii") + b"\n"


def decode(line: bytes) -> dict[str, Any]:
    """Parse one reply or event line; raises ValueError unless it is a JSON object."""
    obj = json.loads(line.decode("utf-8"))
    if not isinstance(obj, dict):
        raise ValueError(f"expected a JSON object, got {_json_type(obj)}")
    return obj


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_id(value: Any) -> bool:
    return _is_int(value) or isinstance(value, str)


def _json_type(value: Any) -> str:
    names = {
        dict: "an object",
        list: "an array",
        str: "a string",
        bool: "a boolean",
        int: "a number",
        float: "a number",
    }
    return "null" if value is None else names.get(type(value), type(value).__name__)


def _describe(model: type[BaseModel], error: ValidationError) -> str:
    """One sentence per offending field, saying what the field must be (from the model's field descriptions)."""
    fields = model.model_fields
    parts: dict[str, str] = {}
    for item in error.errors():
        name = str(item["loc"][0]) if item["loc"] else ""
        if name in parts:
            continue
        if item["type"] == "missing":
            parts[name] = f"missing field '{name}'"
        elif item["type"] == "extra_forbidden":
            parts[name] = f"unknown field '{name}' (allowed: {', '.join(fields)})"
        elif name in fields:
            parts[name] = f"'{name}' {fields[name].description}"
        else:
            parts[name] = item["msg"]
    return "; ".join(parts.values())


def _describe_argument(model: type[BaseModel], name: str, args: dict[str, Any]) -> str:
    """What one argument must be and what it was (its JSON type when it is an object or an array)."""
    description = model.model_fields[name].description
    if name not in args:
        return f"argument '{name}' is missing; it {description}"
    value = args[name]
    shown = _json_type(value) if isinstance(value, (dict, list)) else repr(value)
    return f"argument '{name}' {description}, got {shown}"


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value
