"""Exporting trial configurations: the best, the top K, or all, as YAML, JSON, CSV or command-line args."""

from __future__ import annotations

import csv
import io
import json
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import UserError
from .states import TrialStatus

if TYPE_CHECKING:
    from .store import TrialRecord

# The export formats, and the one an output file's suffix asks for. This module imports
# nothing heavy at its top, so the command line's parser can take its choices from here.
FORMATS = ("yaml", "json", "csv", "args")
SUFFIXES = {".yaml": "yaml", ".yml": "yaml", ".json": "json", ".csv": "csv", ".txt": "args", ".args": "args"}


def format_for(output: str | None) -> str:
    """The format `-o FILE`'s suffix names (YAML on standard output); UserError for a suffix that names none."""
    if output is None:
        return "yaml"
    suffix = Path(output).suffix.lower()
    if suffix not in SUFFIXES:
        named = f"its suffix {suffix!r}" if suffix else "a name without a suffix"
        raise UserError(
            f"-o {output}: cannot tell the format from {named}; end it in {', '.join(SUFFIXES)}, or give --format"
        )
    return SUFFIXES[suffix]


def ranked(trials: list[TrialRecord], mode: str) -> list[TrialRecord]:
    """Succeeded trials, best first (ties: the earlier trial first)."""
    return sorted(_succeeded(trials), key=_rank(mode))


def best_of(trials: list[TrialRecord], mode: str) -> TrialRecord | None:
    """The first of `ranked(trials, mode)`, or None, without sorting them all."""
    return min(_succeeded(trials), key=_rank(mode), default=None)


def _succeeded(trials: list[TrialRecord]) -> list[TrialRecord]:
    return [t for t in trials if t.status == TrialStatus.SUCCEEDED and t.value is not None]


def _rank(mode: str) -> Callable[[TrialRecord], tuple[float, int]]:
    """The sort key of `ranked`: the value, best first, then the id."""
    sign = -1 if mode == "maximize" else 1
    return lambda t: (sign * t.value, t.id)


def flatten(params: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested-choice params as flat dotted names: {'opt': {'_name': 'sgd', 'm': 0.9}} -> opt=sgd, opt.m=0.9."""
    if not prefix and not _has_nested(params):
        return dict(params)  # the common case, and 10,000 trials' worth of it for `automl show`: a copy
    flat: dict[str, Any] = {}
    for name, value in params.items():
        key = f"{prefix}{name}"
        if isinstance(value, dict):
            if "_name" in value:
                flat[key] = value["_name"]
            flat.update(flatten({k: v for k, v in value.items() if k != "_name"}, f"{key}."))
        else:
            flat[key] = value
    return flat


def _has_nested(params: dict[str, Any]) -> bool:
    """Whether any param is a nested choice (a loop: cheaper than `any()` over a generator)."""
    for value in params.values():
        if isinstance(value, dict):
            return True
    return False


def render_best(trial: TrialRecord, fmt: str) -> str:
    """The best trial's params alone, in `fmt`."""
    if fmt == "json":
        return json.dumps(trial.params, indent=2) + "\n"
    if fmt == "yaml":
        return _yaml(trial.params)
    if fmt == "args":
        return as_args(trial.params) + "\n"
    return _csv([trial])


def render_many(
    trials: list[TrialRecord], fmt: str, with_status: bool = False, columns: list[str] | None = None
) -> str:
    """Several trials: a list of {trial, value, params} (plus status for --all), CSV rows or one args line each;
    CSV params in the order of `columns` (see `param_columns`) when given."""
    if fmt == "csv":
        return _csv(trials, with_status, columns)
    if fmt == "args":
        return "".join(as_args(t.params) + "\n" for t in trials)
    records = [  # the status as its plain string: YAML cannot represent an enum
        {"trial": t.id, **({"status": t.status.value} if with_status else {}), "value": t.value, "params": t.params}
        for t in trials
    ]
    if fmt == "json":
        return json.dumps(records, indent=2) + "\n"
    return _yaml(records)


def as_args(params: dict[str, Any]) -> str:
    """`--name value` words, quoted for a POSIX shell; non-string values in JSON spelling (true, null)."""
    words = []
    for name, value in flatten(params).items():
        words += [f"--{name}", value if isinstance(value, str) else json.dumps(value)]
    return shlex.join(words)


def _yaml(data: Any) -> str:
    import yaml  # on use: the command line imports this module for its format names

    return yaml.safe_dump(data, sort_keys=False)


def param_columns(trials: list[TrialRecord]) -> list[str]:
    """Flat param names in the order the experiment's trials (by id) first have them: the CSV columns of every
    selection of its trials, so that `--top` and `--all` list them alike."""
    return list(dict.fromkeys(name for t in sorted(trials, key=lambda t: t.id) for name in flatten(t.params)))


def _csv(trials: list[TrialRecord], with_status: bool = False, order: list[str] | None = None) -> str:
    rows = [flatten(t.params) for t in trials]
    present = set().union(*rows) if rows else set()
    columns = [name for name in order or param_columns(trials) if name in present]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["trial", *(["status"] if with_status else []), "value", *columns])
    for trial, row in zip(trials, rows, strict=True):
        value = "" if trial.value is None else repr(trial.value)
        writer.writerow(
            [trial.id, *([trial.status] if with_status else []), value, *(_cell(row.get(c)) for c in columns)]
        )
    return out.getvalue()


def _cell(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value)
