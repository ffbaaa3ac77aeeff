"""Reading the JSON-lines metrics file a trial appends to, and extracting the objective from each record."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .store import Metric


@dataclass
class ReadResult:
    """New metrics since the last read, the new file offset, and the first problem found (a reason to fail)."""

    metrics: list[Metric]
    offset: int
    problem: str | None = None


def read_new(path: Path, offset: int, next_seq: int, objective: str) -> ReadResult:
    """Parse the complete lines appended after `offset`; a partial last line is left for the next read."""
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read()
    except FileNotFoundError:
        return ReadResult([], offset)
    end = data.rfind(b"\n") + 1
    metrics: list[Metric] = []
    problem = None
    for line in data[:end].splitlines():
        if not line.strip():
            continue
        metric, issue = _parse(line, next_seq + len(metrics), objective)
        metrics.append(metric)
        problem = problem or issue
    return ReadResult(metrics, offset + end, problem)


def objective_value(value: Any, objective: str) -> tuple[float | None, str | None]:
    """The objective from a reported value (a number, or a dict holding the objective key) and any problem."""
    if isinstance(value, dict):
        if objective not in value:
            return None, f"reported metrics {sorted(value)} lack the objective '{objective}'"
        value = value[objective]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None, f"non-numeric metric {value!r}"
    if not math.isfinite(value):
        return None, f"metric is {value}"
    return float(value), None


def _parse(line: bytes, seq: int, objective: str) -> tuple[Metric, str | None]:
    try:
        record = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raw = {"unparsed": line.decode(errors="replace")}
        return Metric(seq, "invalid", None, None, raw, 0.0), f"unreadable metrics line {raw['unparsed'][:80]!r}"
    if not isinstance(record, dict) or record.get("kind") not in ("intermediate", "final"):
        return Metric(seq, "invalid", None, None, {"unparsed": record}, 0.0), f"malformed metrics record {record!r}"
    value, problem = objective_value(record.get("value"), objective)
    step = record.get("step") if isinstance(record.get("step"), int) else None
    where = "final result" if record["kind"] == "final" else f"step {step}"
    when = record.get("time") if isinstance(record.get("time"), (int, float)) else 0.0
    return Metric(seq, record["kind"], step, value, record, when), (f"{where}: {problem}" if problem else None)
