"""What the scheduler knows of each GPU: load over a window, memory, and whose processes run there.

`GpuMonitor` turns probe snapshots into `MonitoredGpu`s. It tells our trials'
processes (given as pid -> trial) from everyone else's, averages utilization
over a sliding window so one quiet instant never makes a busy GPU look free,
keeps each trial's peak GPU memory, and splits each GPU's energy among the
processes on it.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from .probe import GpuProcess, GpuSnapshot, Probe

TrialRef = tuple[str, int]  # (experiment id, trial id)
WINDOW_S = 10.0  # utilization is averaged over this many seconds


@dataclass
class MonitoredGpu:
    """One GPU as the scheduler sees it: the latest snapshot, the windowed load, ours and others' share."""

    snapshot: GpuSnapshot
    utilization: float  # mean over the window, everyone's
    foreign_utilization: float  # other users' load (see GpuMonitor.sample)
    foreign_memory_mib: float  # memory not held by our trials: other users' processes and the driver
    foreign: tuple[GpuProcess, ...]  # other users' processes now
    ours: dict[TrialRef, float] = field(default_factory=dict)  # our trials on it now and their memory

    @property
    def index(self) -> int:
        """The GPU's index."""
        return self.snapshot.index


class GpuMonitor:
    """Samples a probe and keeps what scheduling and cost accounting need from the samples."""

    def __init__(self, probe: Probe, window_s: float = WINDOW_S, clock: Callable[[], float] = time.monotonic):
        self.probe, self.window_s, self.clock = probe, window_s, clock
        self.states: list[MonitoredGpu] = []
        self.sampled_at = float("-inf")
        self.peak_mib: dict[TrialRef, float] = {}  # per trial: its most memory on any one GPU
        self.energy_j: dict[TrialRef, float] = {}
        self._history: dict[int, deque[tuple[float, float, float]]] = {}  # per GPU: (time, total, foreign)
        self._energy: dict[int, float] = {}
        self._power: dict[int, tuple[float, float]] = {}  # per GPU without an energy counter: (time, watts)

    def sample(self, owners: Mapping[int, TrialRef]) -> list[MonitoredGpu]:
        """Read every GPU now; `owners` maps the pids of our trials' processes to their trial.

        Other users' load is utilization not explained by our trials: the rest of the total when the driver
        reports per-process utilization, else all of it whenever someone else's process is there. It is
        averaged over the window while their processes stay, so a pause in their work does not free the
        GPU; when their last process is gone it drops at once.
        """
        now = self.clock()
        snapshots = self.probe.sample()
        self.states = [self._state(snapshot, owners, now) for snapshot in snapshots]
        self.sampled_at = now
        return self.states

    def forget(self, trial: TrialRef) -> tuple[float, float]:
        """A trial ended: drop it, returning its energy (J) and peak GPU memory (MiB)."""
        return self.energy_j.pop(trial, 0.0), self.peak_mib.pop(trial, 0.0)

    def _state(self, snapshot: GpuSnapshot, owners: Mapping[int, TrialRef], now: float) -> MonitoredGpu:
        ours: dict[TrialRef, float] = {}
        foreign = []
        for process in snapshot.processes:
            trial = owners.get(process.pid)
            if trial is None:
                foreign.append(process)
            else:
                ours[trial] = ours.get(trial, 0.0) + process.memory_mib
        for trial, memory in ours.items():
            self.peak_mib[trial] = max(self.peak_mib.get(trial, 0.0), memory)
        foreign_now = _foreign_utilization(snapshot, owners, bool(foreign))
        history = self._history.setdefault(snapshot.index, deque())
        history.append((now, snapshot.utilization, foreign_now))
        while history and history[0][0] < now - self.window_s:
            history.popleft()
        utilization = sum(h[1] for h in history) / len(history)
        foreign_load = foreign_now
        if foreign:
            foreign_load = max(foreign_now, sum(h[2] for h in history) / len(history))
        self._split_energy(snapshot, owners, now)
        return MonitoredGpu(
            snapshot,
            utilization,
            foreign_load,
            max(0.0, snapshot.memory_used_mib - sum(ours.values())),
            tuple(foreign),
            ours,
        )

    def _split_energy(self, snapshot: GpuSnapshot, owners: Mapping[int, TrialRef], now: float) -> None:
        """Give each of our trials its part of the energy the GPU used since the last sample: by utilization
        share where the driver reports it per process, else equally among the processes there."""
        used = self._energy_since_last(snapshot, now)
        processes = snapshot.processes
        if used <= 0 or not processes:
            return
        known = [p.utilization for p in processes if p.utilization is not None]
        shares = known if len(known) == len(processes) and sum(known) > 0 else [1.0] * len(processes)
        total = sum(shares)
        for process, share in zip(processes, shares, strict=True):
            trial = owners.get(process.pid)
            if trial is not None:
                self.energy_j[trial] = self.energy_j.get(trial, 0.0) + used * share / total

    def _energy_since_last(self, snapshot: GpuSnapshot, now: float) -> float:
        """Joules since the previous sample: from the energy counter, else power times the interval."""
        index = snapshot.index
        if snapshot.energy_j is not None:
            previous = self._energy.get(index)
            self._energy[index] = snapshot.energy_j
            return 0.0 if previous is None else max(0.0, snapshot.energy_j - previous)
        if snapshot.power_w is None:
            return 0.0
        previous_power = self._power.get(index)
        self._power[index] = (now, snapshot.power_w)
        return 0.0 if previous_power is None else previous_power[1] * (now - previous_power[0])


def _foreign_utilization(snapshot: GpuSnapshot, owners: Mapping[int, TrialRef], anyone_else: bool) -> float:
    """This instant's utilization that is not our trials' own."""
    if not any(p.pid in owners for p in snapshot.processes):
        return snapshot.utilization  # with no process listed, the load is someone's we cannot see
    if not anyone_else:
        return 0.0
    theirs = [p.utilization for p in snapshot.processes if p.pid not in owners]
    known = [u for u in theirs if u is not None]
    if len(known) < len(theirs):
        return snapshot.utilization  # shared and not attributable: count it all as theirs
    return min(100.0, sum(known))
