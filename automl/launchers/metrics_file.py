"""Reading the JSON-lines metrics file a trial appends to, and extracting the objective from each record.

The file is the trial's, so it is untrusted: it is opened without following a symbolic link or blocking on a FIFO,
read only if it is a regular file of this user, and at most one chunk (a little over `MAX_LINE`) per look. A line
longer than `MAX_LINE`, or a file that was truncated below what was read or replaced by another, is a problem that
fails the trial.
"""

from __future__ import annotations

import errno
import json
import math
import os
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..store import Metric

MAX_LINE = 2**20  # bytes: the longest metrics line read; a longer one fails its trial
_CHUNK = MAX_LINE + 1  # bytes read per look: a whole line of MAX_LINE bytes and its newline
_MAX_STEP = 2**62
_MAX_TIME = 2**40
_KINDS = (
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)

Identity = tuple[int, int]  # (device, inode) of the file read: a different one means it was replaced


@dataclass
class ReadResult:
    """New metrics since the last read, the new file offset, the first problem found (a reason to fail), which
    file was read, and whether a whole chunk was read (more may be waiting)."""

    metrics: list[Metric]
    offset: int
    problem: str | None = None
    identity: Identity | None = None
    more: bool = False


class MetricsReader:
    """Reads one trial's metrics file a chunk at a time, remembering which file it read, so that a file replaced
    since the last read is noticed (a problem that fails the trial)."""

    def __init__(self, path: Path):
        self.path = path
        self._identity: Identity | None = None

    def read(self, offset: int, seq: int, objective: str, *, final: bool = False) -> ReadResult:
        """The records appended after byte `offset` (`seq` read so far), one chunk at most (see `read_new`)."""
        result = read_new(self.path, offset, seq, objective, identity=self._identity, final=final)
        self._identity = result.identity
        return result


class _Unreadable(Exception):
    """The metrics file is not one automl reads: the message says what it is."""


def read_new(
    path: Path, offset: int, next_seq: int, objective: str, *, identity: Identity | None = None, final: bool = False
) -> ReadResult:
    """Parse the complete lines appended after `offset`, one chunk at most; a partial last line is left for the
    next read, unless the trial has ended (`final`). `identity`: the file read before, to notice a replaced one."""
    try:
        data, identity = _read_chunk(path, offset, identity)
    except FileNotFoundError:
        return ReadResult([], offset, None if identity is None else f"{path.name} was removed", identity)
    except _Unreadable as e:
        return ReadResult([], offset, f"{path.name} {e}", identity)
    full = len(data) == _CHUNK
    end = len(data) if final and not full else data.rfind(b"\n") + 1
    if end == 0 and full:
        return ReadResult([], offset, f"{path.name} has a line longer than {MAX_LINE} bytes", identity)
    metrics: list[Metric] = []
    problem = None
    for line in data[:end].splitlines():
        if not line.strip():
            continue
        metric, issue = _parse(line, next_seq + len(metrics), objective)
        metrics.append(metric)
        problem = problem or issue
    return ReadResult(metrics, offset + end, problem, identity, more=full)


def _read_chunk(path: Path, offset: int, known: Identity | None) -> tuple[bytes, Identity]:
    """At most one chunk from `offset` of the file at `path`, and which file it is, if it is the trial's own
    regular file; opened without following a link and without blocking (a FIFO opens at once, and is refused)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as e:
        if e.errno == errno.ENOENT:
            raise FileNotFoundError(path) from e
        raise _Unreadable("is a symbolic link" if e.errno == errno.ELOOP else f"cannot be opened: {e.strerror}") from e
    try:
        info = os.fstat(fd)
        identity = (info.st_dev, info.st_ino)
        if not stat.S_ISREG(info.st_mode):
            kind = next((name for test, name in _KINDS if test(info.st_mode)), "a special file")
            raise _Unreadable(f"is {kind}, not a regular file")
        if info.st_uid != os.geteuid():
            raise _Unreadable(f"belongs to another user (uid {info.st_uid})")
        if known is not None and identity != known:
            raise _Unreadable("was replaced by another file")
        if info.st_size < offset:
            raise _Unreadable(f"was truncated to {info.st_size} bytes, below the {offset} bytes already read")
        return os.pread(fd, _CHUNK, offset), identity
    finally:
        os.close(fd)


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
