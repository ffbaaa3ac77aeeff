"""Telling a process apart from a later one that reuses its pid: its start time as the kernel saw it.

psutil is imported on first use: reading the store (`automl show`, `ls`) needs this module but rarely a process.
"""

from __future__ import annotations


def process_start_time(pid: int) -> float | None:
    """When a process started, as the kernel saw it (what `is_alive` compares with)."""
    import psutil

    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


def is_alive(pid: int, created: float | None) -> bool:
    """Whether `pid` is still the process the kernel created at `created` (not a reused pid, not a zombie)."""
    import psutil

    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        return created is None or abs(proc.create_time() - created) < 0.5
    except psutil.NoSuchProcess:
        return False
