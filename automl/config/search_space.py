"""Search spaces in NNI's JSON format: validation with messages that say what is allowed.

As in NNI, a bounded parameter whose range holds one value (low == high, a
randint of one integer, a normal with sigma 0) is a constant: `constants`
finds them, `constant_warnings` says so once, and `with_constants_as_choices`
gives tuners a space in which each is a one-value choice.
"""

from __future__ import annotations

import math
import sys
from numbers import Real
from typing import Any

from ..errors import UserError

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
_NORMAL_TYPES = ("normal", "qnormal", "lognormal", "qlognormal")
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
SIGMAS = 20.0  # how far from mu a normal sample is taken to reach, for the range checks
MAX_EXP = math.log(sys.float_info.max)  # the largest x whose exp(x) is a finite float


def validate(space: Any, source: str = "search space") -> dict[str, Any]:
    """Check a search space in NNI's format and return it; raise UserError naming the bad parameter."""
    _check_space(space, source, prefix="")
    return space


def parameter_types(space: dict[str, Any]) -> dict[str, str]:
    """Every parameter's dotted name and `_type`, nested choices included."""
    found: dict[str, str] = {}
    for name, spec in space.items():
        found[name] = spec["_type"]
        if spec["_type"] == "choice" and is_nested_choice(spec["_value"]):
            for option in spec["_value"]:
                sub = {k: v for k, v in option.items() if k != "_name"}
                for sub_name, sub_type in parameter_types(sub).items():
                    found[f"{name}.{sub_name}"] = sub_type
    return found


def is_nested_choice(options: list[Any]) -> bool:
    """Whether a choice's options are nested search spaces: all mappings with a `_name` (NNI's rule).

    Mappings without `_name` are plain values, e.g. BatchTuner's whole parameter sets.
    """
    return bool(options) and all(isinstance(option, dict) and "_name" in option for option in options)


def constants(space: dict[str, Any], prefix: str = "") -> dict[str, tuple[str, list[Any], float | int]]:
    """Each parameter whose range holds a single value: its path -> (type, _value, the value it always takes)."""
    found: dict[str, tuple[str, list[Any], float | int]] = {}
    for name, spec in space.items():
        if name == "_name":
            continue
        kind, values = spec["_type"], spec["_value"]
        if kind == "choice" and is_nested_choice(values):
            for option in values:
                found.update(constants(option, f"{prefix}{name}[{option['_name']}]."))
        elif (value := _constant(kind, values)) is not None:
            found[f"{prefix}{name}"] = (kind, values, value)
    return found


def constant_warnings(space: dict[str, Any], source: str = "search space") -> list[str]:
    """One warning per parameter that runs as a constant, naming it, its range and its value."""
    return [
        f"{source}: parameter '{path}' is {kind} {values}, a single value: it runs as the constant {value!r}"
        for path, (kind, values, value) in constants(space).items()
    ]


def with_constants_as_choices(space: dict[str, Any]) -> dict[str, Any]:
    """A copy of `space` in which every single-value parameter is a choice of that one value."""
    out: dict[str, Any] = {}
    for name, spec in space.items():
        if name == "_name":
            out[name] = spec
            continue
        kind, values = spec["_type"], spec["_value"]
        if kind == "choice" and is_nested_choice(values):
            out[name] = {"_type": "choice", "_value": [with_constants_as_choices(option) for option in values]}
        elif (value := _constant(kind, values)) is not None:
            out[name] = {"_type": "choice", "_value": [value]}
        else:
            out[name] = spec
    return out


def _constant(kind: str, values: list[Any]) -> float | int | None:
    """The one value a (valid) parameter can take, or None when it can take several."""
    if kind == "randint":
        return int(values[0]) if values[1] - values[0] == 1 else None
    if kind in _NORMAL_TYPES:
        if values[1] != 0:
            return None
        value = math.exp(values[0]) if kind.endswith("lognormal") else float(values[0])
        return float(round(value / values[2]) * values[2]) if kind.startswith("q") else value
    if kind in ARITY and values[0] == values[1]:
        return float(values[0])
    return None


def _check_space(space: Any, source: str, prefix: str) -> None:
    if not isinstance(space, dict):
        raise UserError(
            f"{source}: must be a mapping of parameter name to {{_type, _value}}, got {type(space).__name__}"
        )
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
    named = [v for v in values if isinstance(v, dict) and "_name" in v]
    if not named:
        return
    if len(named) != len(values):
        plain = next(v for v in values if not (isinstance(v, dict) and "_name" in v))
        raise UserError(
            f"{where}: a nested choice needs a '_name' in every option, got {plain!r}; "
            "options without '_name' are plain values only when no option has one"
        )
    for option in named:
        sub = {k: v for k, v in option.items() if k != "_name"}
        _check_space(sub, source, prefix=f"{name}[{option['_name']}].")
    names = [v["_name"] for v in named]
    if len(set(map(repr, names))) != len(names):
        raise UserError(f"{where}: nested choice options must have distinct '_name's, got {names}")


def _check_numeric(kind: str, values: list[Any], where: str) -> None:
    arity, meaning = ARITY[kind]
    if len(values) != arity:
        raise UserError(f"{where}: {kind} takes {arity} values {meaning}, got {len(values)}")
    if not all(isinstance(v, Real) and not isinstance(v, bool) and math.isfinite(v) for v in values):
        raise UserError(f"{where}: {kind} values {meaning} must be finite numbers, got {values}")
    a, b = values[0], values[1]
    if kind in _NORMAL_TYPES:
        if b < 0:
            raise UserError(f"{where}: {kind} needs sigma >= 0 (0 makes it the constant mu), got {b}")
    elif kind == "randint" and a >= b:
        raise UserError(f"{where}: randint needs low < high (high is excluded), got low={a}, high={b}")
    elif a > b:
        raise UserError(f"{where}: {kind} needs low <= high (low == high makes it a constant), got low={a}, high={b}")
    if kind == "randint" and not (float(a).is_integer() and float(b).is_integer()):
        raise UserError(f"{where}: randint bounds must be integers, got {values}")
    if kind in ("loguniform", "qloguniform") and a <= 0:
        raise UserError(f"{where}: {kind} needs low > 0 (it samples the logarithm), got low={a}")
    if arity == 3 and values[2] <= 0:
        raise UserError(f"{where}: {kind} needs q > 0, got q={values[2]}")
    _check_representable(kind, values, where)


def _check_representable(kind: str, values: list[Any], where: str) -> None:
    """Bounds the samplers can work with: randint bounds and their distance in 64-bit integers; a range (or 20
    sigmas around mu) whose width, and for the log types whose exponential, are finite floats."""
    a, b = values[0], values[1]
    if kind == "randint":
        if not (INT64_MIN <= a and b <= INT64_MAX and b - a <= INT64_MAX):
            raise UserError(
                f"{where}: randint bounds and their distance must fit 64-bit integers "
                f"(at most {INT64_MAX}), got {values}"
            )
        return
    low, high = (a - SIGMAS * b, a + SIGMAS * b) if kind in _NORMAL_TYPES else (a, b)
    if not math.isfinite(high - low):
        raise UserError(f"{where}: {kind} {values} spans more than a float can hold; use a narrower range")
    if kind.endswith("lognormal") and high > MAX_EXP:
        raise UserError(
            f"{where}: {kind} {values}: exp(mu + {SIGMAS:g} sigma) overflows a float; "
            f"keep mu + {SIGMAS:g} sigma below {MAX_EXP:.0f}"
        )
