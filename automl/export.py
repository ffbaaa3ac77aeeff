"""Exporting trial configurations: the best, the top K, or all, as YAML, JSON, CSV or command-line args."""

from __future__ import annotations

import csv
import io
import json
import shlex
from typing import Any

import yaml

from .store import Trial

FORMATS = ("yaml", "json", "csv", "args")


def ranked(trials: list[Trial], mode: str) -> list[Trial]:
    """Succeeded trials, best first (ties: the earlier trial first)."""
    done = [t for t in trials if t.status == "succeeded" and t.value is not None]
    sign = -1 if mode == "maximize" else 1
    return sorted(done, key=lambda t: (sign * t.value, t.id))


def flatten(params: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested-choice params as flat dotted names: {'opt': {'_name': 'sgd', 'm': 0.9}} -> opt=sgd, opt.m=0.9."""
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


def render_best(trial: Trial, fmt: str) -> str:
    """The best trial's params alone, in `fmt`."""
    if fmt == "json":
        return json.dumps(trial.params, indent=2) + "\n"
    if fmt == "yaml":
        return yaml.safe_dump(trial.params, sort_keys=False)
    if fmt == "args":
        return as_args(trial.params) + "\n"
    return _csv([trial])


def render_many(trials: list[Trial], fmt: str, with_status: bool = False, columns: list[str] | None = None) -> str:
    """Several trials: a list of {trial, value, params} (plus status for --all), CSV rows or one args line each;
    CSV params in the order of `columns` (see `param_columns`) when given."""
    if fmt == "csv":
        return _csv(trials, with_status, columns)
    if fmt == "args":
        return "".join(as_args(t.params) + "\n" for t in trials)
    records = [
        {"trial": t.id, **({"status": t.status} if with_status else {}), "value": t.value, "params": t.params}
        for t in trials
    ]
    if fmt == "json":
        return json.dumps(records, indent=2) + "\n"
    return yaml.safe_dump(records, sort_keys=False)


def as_args(params: dict[str, Any]) -> str:
    """`--name value` words, quoted for a POSIX shell; non-string values in JSON spelling (true, null)."""
    words = []
    for name, value in flatten(params).items():
        words += [f"--{name}", value if isinstance(value, str) else json.dumps(value)]
    return shlex.join(words)


def param_columns(trials: list[Trial]) -> list[str]:
    """Flat param names in the order the experiment's trials (by id) first have them: the CSV columns of every
    selection of its trials, so that `--top` and `--all` list them alike."""
    return list(dict.fromkeys(name for t in sorted(trials, key=lambda t: t.id) for name in flatten(t.params)))


def _csv(trials: list[Trial], with_status: bool = False, order: list[str] | None = None) -> str:
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
