"""Capping what a trial prints: its stdout, stderr and NNI log files keep their last part, so one chatty trial
cannot fill the disk.

The trial appends to its logs itself (they are its standard streams, which outlive a daemon restart); automl
looks at their sizes now and then and, once a file outgrows its limit, moves its last half to the front and cuts
the rest. A trial is untrusted: its files are opened without following links or blocking, and only regular
files are touched.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from ..launchers.base import NNI_LOG_FILE, STDERR_FILE, STDOUT_FILE

LOG_FILES = (STDOUT_FILE, STDERR_FILE, NNI_LOG_FILE)
CHUNK = 1 << 20  # bytes moved at a time


def cap_logs(trial_dir: Path, limit: int) -> int:
    """Cap every log file of a trial at `limit` bytes; how many bytes were dropped."""
    return sum(cap(trial_dir / name, limit) for name in LOG_FILES)


def oversized_logs(trial_dir: Path, limit: int) -> bool:
    """Whether any log file of a trial is over `limit` bytes (a look at sizes only: cheap enough for the event loop)."""
    for name in LOG_FILES:
        try:
            if os.lstat(trial_dir / name).st_size > limit:
                return True
        except OSError:
            continue
    return False


def cap(path: Path, limit: int) -> int:
    """Keep the last half of `limit` bytes of a file that outgrew `limit`, after a line saying what was dropped;
    how many bytes were dropped (0: it was within its limit, missing, not a regular file, or could not be cut)."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return 0
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size <= limit:
            return 0
        return _keep_tail(fd, info.st_size, limit // 2)
    except OSError:
        return 0
    finally:
        os.close(fd)


def _keep_tail(fd: int, size: int, keep: int) -> int:
    """Move the last `keep` bytes, and whatever the trial appended meanwhile, to the front after a notice.

    Bytes the trial appends between the last look at the size and the cut are lost (a moment's output)."""
    dropped = size - keep
    line_end = os.pread(fd, min(keep, 4096), dropped).find(b"\n")
    dropped += line_end + 1  # start at a whole line, if one begins near the cut
    notice = f"[automl: {dropped} earlier bytes of this log were dropped (max_log_mib)]\n".encode()
    if len(notice) >= dropped:
        return 0
    written = len(notice) + _move(fd, dropped, len(notice), size)
    written += _move(fd, size, written, os.fstat(fd).st_size)
    os.ftruncate(fd, written)
    os.pwrite(fd, notice, 0)
    return dropped


def _move(fd: int, start: int, to: int, end: int) -> int:
    """Copy bytes [start, end) to offset `to` (before `start`) in chunks; how many were copied."""
    copied = 0
    while start + copied < end:
        chunk = os.pread(fd, min(CHUNK, end - start - copied), start + copied)
        if not chunk:
            break
        os.pwrite(fd, chunk, to + copied)
        copied += len(chunk)
    return copied
