"""CPU time and memory of a trial's whole process tree, from periodic psutil samples."""

from __future__ import annotations

import re
from pathlib import Path

import psutil

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


def recorded_cpu_seconds(trial_dir: Path) -> float | None:
    """The CPU-seconds of a trial's whole tree as its wrapper recorded them when the trial exited (the shell's
    `times`: every process it and its children waited for), or None when nothing was recorded."""
    try:
        lines = (trial_dir / CPU_TIMES_FILE).read_text().splitlines()
    except OSError:
        return None
    values = [int(m) * 60 + float(s) for line in lines for m, s in _TIME.findall(line)]
    return sum(values) if len(values) == 4 else None
