"""Search spaces in NNI's JSON format: validation with messages that say what is allowed."""

from __future__ import annotations

import math
from numbers import Real
from typing import Any

from .errors import UserError

# _type -> (number of values, what they mean)
ARITY: dict[str, tuple[int, str]] = {
    "randint": (2, "[low, high]"),
    "uniform": (2, "[low, high]"),
    "quniform": (3, "[low, high, q]"),
    "loguniform": (2, "[low, high]"),
    "qloguniform": (3, "[low, high, q]"),
    "normal": (2, "[mu, sigma]"),
    "qnormal": (3, "[mu, sigma, q]"),
    "lognormal": (2, "[mu, sigma]"),
    "qlognormal": (3, "[mu, sigma, q]"),
}
TYPES = ("choice", *ARITY)


def validate(space: Any, source: str = "search space") -> dict[str, Any]:
    """Check a search space in NNI's format and return it; raise UserError naming the bad parameter."""
    _check_space(space, source, prefix="")
    return space


def parameter_types(space: dict[str, Any]) -> dict[str, str]:
    """Every parameter's dotted name and `_type`, nested choices included."""
    found: dict[str, str] = {}
    for name, spec in space.items():
        found[name] = spec["_type"]
        if spec["_type"] == "choice":
            for option in spec["_value"]:
                if isinstance(option, dict) and "_name" in option:
                    sub = {k: v for k, v in option.items() if k != "_name"}
                    for sub_name, sub_type in parameter_types(sub).items():
                        found[f"{name}.{sub_name}"] = sub_type
    return found


def _check_space(space: Any, source: str, prefix: str) -> None:
    if not isinstance(space, dict):
        raise UserError(f"{source}: must be a mapping of parameter name to {{_type, _value}}, "
                        f"got {type(space).__name__}")
    if not space and not prefix:
        raise UserError(f"{source}: is empty; define at least one parameter")
    for name, spec in space.items():
        _check_parameter(f"{prefix}{name}", spec, source)


def _check_parameter(name: str, spec: Any, source: str) -> None:
    where = f"{source}: parameter '{name}'"
    if not isinstance(spec, dict) or "_type" not in spec or "_value" not in spec:
        raise UserError(f"{where}: must be an object with '_type' and '_value'")
    extra = set(spec) - {"_type", "_value"}
    if extra:
        raise UserError(f"{where}: unknown key(s) {sorted(extra)}; only '_type' and '_value' are allowed")
    kind, values = spec["_type"], spec["_value"]
    if kind not in TYPES:
        raise UserError(f"{where}: unknown _type {kind!r}; allowed: {', '.join(TYPES)}")
    if not isinstance(values, list):
        raise UserError(f"{where}: _value must be a list, got {type(values).__name__}")
    if kind == "choice":
        _check_choice(name, values, where, source)
    else:
        _check_numeric(kind, values, where)


def _check_choice(name: str, values: list[Any], where: str, source: str) -> None:
    if not values:
        raise UserError(f"{where}: choice needs at least one option")
    nested = [v for v in values if isinstance(v, dict)]
    for option in nested:
        if "_name" not in option:
            raise UserError(f"{where}: a nested choice option must have a '_name' key, got {option}")
        sub = {k: v for k, v in option.items() if k != "_name"}
        _check_space(sub, source, prefix=f"{name}[{option['_name']}].")
    names = [v["_name"] for v in nested]
    if len(set(map(repr, names))) != len(names):
        raise UserError(f"{where}: nested choice options must have distinct '_name's, got {names}")


def _check_numeric(kind: str, values: list[Any], where: str) -> None:
    arity, meaning = ARITY[kind]
    if len(values) != arity:
        raise UserError(f"{where}: {kind} takes {arity} values {meaning}, got {len(values)}")
    if not all(isinstance(v, Real) and not isinstance(v, bool) and math.isfinite(v) for v in values):
        raise UserError(f"{where}: {kind} values {meaning} must be finite numbers, got {values}")
    a, b = values[0], values[1]
    if kind in ("normal", "qnormal", "lognormal", "qlognormal"):
        if b <= 0:
            raise UserError(f"{where}: {kind} needs sigma > 0, got {b}")
    elif a >= b:
        raise UserError(f"{where}: {kind} needs low < high, got low={a}, high={b}")
    if kind == "randint" and not (float(a).is_integer() and float(b).is_integer()):
        raise UserError(f"{where}: randint bounds must be integers, got {values}")
    if kind in ("loguniform", "qloguniform") and a <= 0:
        raise UserError(f"{where}: {kind} needs low > 0 (it samples the logarithm), got low={a}")
    if arity == 3 and values[2] <= 0:
        raise UserError(f"{where}: {kind} needs q > 0, got q={values[2]}")
