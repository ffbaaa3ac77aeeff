"""Reading the JSON-lines metrics file a trial appends to, and extracting the objective from each record."""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .store import Metric

_MAX_STEP = 2**62
_MAX_TIME = 2**40


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
            return None, f"reported metrics {sorted(map(str, value))} lack the objective '{objective}'"
        value = value[objective]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None, f"non-numeric metric {_short(value)}"
    try:
        number = float(value)
    except OverflowError:
        return None, f"metric {_short(value)} is out of range"
    if not math.isfinite(number):
        return None, f"metric is {number}"
    return number, None


def _parse(line: bytes, seq: int, objective: str) -> tuple[Metric, str | None]:
    try:
        record = json.loads(line)
    except (ValueError, RecursionError):
        text = line.decode(errors="replace")
        return _invalid(seq, text), f"unreadable metrics line {text[:80]!r}"
    if not isinstance(record, dict) or record.get("kind") not in ("intermediate", "final"):
        return _invalid(seq, line.decode(errors="replace")), f"malformed metrics record {_short(record)}"
    step, when = record.get("step"), record.get("time")
    if step is not None and (isinstance(step, bool) or not isinstance(step, int) or not 0 <= step < _MAX_STEP):
        return _invalid(seq, line.decode(errors="replace")), f"bad step {_short(step)} in a metrics record"
    if not isinstance(when, (int, float)) or isinstance(when, bool) or not 0 <= when < _MAX_TIME:
        when = time.time()
    value, problem = objective_value(record.get("value"), objective)
    where = "final result" if record["kind"] == "final" else f"step {step}"
    return Metric(seq, record["kind"], step, value, record, float(when)), (f"{where}: {problem}" if problem else None)


def _invalid(seq: int, text: str) -> Metric:
    return Metric(seq, "invalid", None, None, {"unparsed": text[:1000]}, time.time())


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
