"""CPU time and memory of a trial's whole process tree, from periodic psutil samples."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import psutil

from ..trial_exit import USAGE_FILE

CPU_TIMES_FILE = "cpu_times"
_TIME = re.compile(r"(\d+)m([\d.]+)s")


class ProcessTreeUsage:
    """Follows one trial's process tree: CPU-seconds of every process seen in it, and the peak of the tree's
    total resident memory."""

    def __init__(self, pid: int):
        self.pid = pid
        self.peak_rss_mib = 0.0
        self._cpu: dict[tuple[int, float], float] = {}  # (pid, start time) -> CPU seconds when last seen
        self._reaped = 0.0  # CPU seconds of children the root has waited for

    @property
    def cpu_seconds(self) -> float:
        """CPU-seconds (user + system) of the tree so far, as far as the samples saw."""
        return max(sum(self._cpu.values()), self._reaped)

    def sample(self) -> set[int]:
        """Look at the tree now; the pids in it."""
        try:
            root = psutil.Process(self.pid)
            procs = [root, *root.children(recursive=True)]
            times = root.cpu_times()
            self._reaped = times.user + times.system + times.children_user + times.children_system
        except psutil.Error:
            return set()
        pids, rss = set(), 0
        for proc in procs:
            try:
                with proc.oneshot():
                    times, memory, started = proc.cpu_times(), proc.memory_info(), proc.create_time()
            except psutil.Error:
                continue
            pids.add(proc.pid)
            rss += memory.rss
            self._cpu[(proc.pid, started)] = times.user + times.system
        self.peak_rss_mib = max(self.peak_rss_mib, rss / 2**20)
        return pids


@dataclass(frozen=True)
class RecordedUsage:
    """What a trial's wrapper recorded when the trial exited: the CPU-seconds of every process of its tree that
    was waited for; when its parent had gone (a daemon that is down), also its wall-clock end and the peak
    resident memory of its largest process."""

    cpu_seconds: float
    ended: float | None = None
    peak_rss_mib: float = 0.0


def recorded_usage(trial_dir: Path) -> RecordedUsage | None:
    """The usage the trial's wrapper recorded at its exit, or None when it recorded none."""
    try:
        data = json.loads((trial_dir / USAGE_FILE).read_text())
        return RecordedUsage(float(data["cpu_seconds"]), float(data["ended"]), float(data["peak_rss_mib"]))
    except (OSError, ValueError, KeyError, TypeError):
        pass
    try:  # the shell's `times`: its own and its children's user and system time
        lines = (trial_dir / CPU_TIMES_FILE).read_text().splitlines()
    except OSError:
        return None
    values = [int(m) * 60 + float(s) for line in lines for m, s in _TIME.findall(line)]
    return RecordedUsage(sum(values)) if len(values) == 4 else None
