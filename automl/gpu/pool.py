"""Which GPUs a new trial gets, from measured load and memory, shared fairly by every experiment of one process.

A GPU takes a new trial of an experiment when all of these hold (`GpuSlots.verdicts` says which did not):
- our trials leave room: each takes a share of each of its GPUs (a fraction f takes f, so floor(1/f) pack
  on one GPU; whole-GPU trials take 1/max_trials_per_gpu);
- nobody else's process runs there, unless the policy says use_active_gpu;
- other users' load, averaged over the window, is at most max_utilization;
- the free memory left after what our trials there use or reserved covers min_free_memory_mib and the
  experiment's memory estimate: the configured one, or the peak of its earlier trials plus a margin.
  While an experiment's estimate is unknown, its trial gets a GPU with none of our trials on it and
  reserves all of that GPU's free memory.
When a GPU frees up and several experiments wait, the one running the fewest trials gets it first.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..config.model import GpuPolicy
from .monitor import WINDOW_S, GpuMonitor, MonitoredGpu, TrialRef
from .probe import Probe

log = logging.getLogger("automl")
MEMORY_MARGIN = 0.1  # the estimate is the largest peak seen plus this fraction
SETTLE_S = 30.0  # a running trial's peak counts toward the estimate once it has run this long
FRESH_S = 0.25  # a placement decision re-reads the GPUs when the last sample is older than this
_EPSILON = 1e-9


@dataclass
class Placement:
    """The GPUs handed to one trial, its share of each and the memory reserved for it on each."""

    gpus: list[int]
    share: float
    reserved_mib: float
    slots: GpuSlots | None = field(default=None, repr=False)
    trial: TrialRef | None = None
    pid: int | None = None
    pids: set[int] = field(default_factory=set)  # the trial's process tree when last looked at
    since: float = 0.0


class MemoryEstimate:
    """How much memory one trial of an experiment needs on each of its GPUs."""

    def __init__(self, configured: float | None):
        self.configured = configured
        self.peak = 0.0

    def observe(self, peak_mib: float) -> None:
        """A trial's peak memory on one GPU."""
        self.peak = max(self.peak, peak_mib)

    @property
    def value(self) -> float | None:
        """The estimate in MiB, or None while neither configured nor learned."""
        learned = math.ceil(self.peak * (1 + MEMORY_MARGIN)) if self.peak > 0 else None
        if learned is None or self.configured is None:
            return learned if learned is not None else self.configured
        return max(learned, self.configured)


class GpuPool:
    """The GPUs of this machine: what is measured on them and which of our trials hold them."""

    def __init__(self, probe: Probe | None, window_s: float = WINDOW_S, clock: Callable[[], float] = time.monotonic):
        self.probe = probe
        self.count = 0 if probe is None else probe.count()
        self.monitor = None if probe is None else GpuMonitor(probe, window_s, clock)
        self.clock = clock
        self.placements: list[Placement] = []
        self._waiting: list[GpuSlots] = []
        self._said_cpu = False

    def slots(self, experiment_id: str, policy: GpuPolicy, gpus_per_trial: float) -> GpuSlots:
        """One experiment's view: the GPUs it may use, how much of one a trial takes, its placement policy."""
        allowed = [
            i for i in (policy.indices if policy.indices is not None else range(self.count)) if 0 <= i < self.count
        ]
        if gpus_per_trial > 0 and len(allowed) < math.ceil(gpus_per_trial):
            if not self._said_cpu:
                log.warning(
                    "trials ask for %g GPU(s) but %d usable GPU(s) exist%s: trials run on the CPU",
                    gpus_per_trial,
                    len(allowed),
                    "" if self.probe else " (no NVML driver)",
                )
                self._said_cpu = True
            allowed = []
        return GpuSlots(self, experiment_id, allowed, policy, gpus_per_trial)

    def taken(self, index: int) -> float:
        """How much of GPU `index` our trials hold (1.0: all of it)."""
        return sum(p.share for p in self.placements if index in p.gpus)

    def states(self) -> dict[int, MonitoredGpu]:
        """Every GPU as measured, re-read first if the last sample is not fresh."""
        if self.monitor is None:
            return {}
        if self.clock() - self.monitor.sampled_at > FRESH_S:
            self.sample()
        return {state.index: state for state in self.monitor.states}

    def sample(self) -> None:
        """Read the GPUs, let running trials teach their experiment's memory estimate, wake waiting experiments."""
        if self.monitor is None:
            return
        self.monitor.sample(self._owners())
        now = self.clock()
        for placement in self.placements:
            if placement.trial is not None and placement.slots is not None and now - placement.since >= SETTLE_S:
                placement.slots.estimate.observe(self.monitor.peak_mib.get(placement.trial, 0.0))
        for waiter in list(self._waiting):
            waiter.wake()

    async def run(self, every: float = 1.0, after: Callable[[], None] | None = None) -> None:
        """Sample every `every` seconds until cancelled (so a GPU someone else leaves is noticed within it)."""
        while True:
            try:
                self.sample()
                if after is not None:
                    after()
            except Exception:
                log.exception("reading the GPUs failed")
            await asyncio.sleep(every)

    def _owners(self) -> dict[int, TrialRef]:
        """The pids of our trials' process trees, each with its trial."""
        return {pid: p.trial for p in self.placements if p.trial is not None for pid in p.pids}

    def describe(self) -> list[dict[str, Any]]:
        """Each GPU as the scheduler sees it, our trials' processes told apart from everyone else's."""
        described = []
        owners = self._owners()
        for index, state in sorted(self.states().items()):
            snap = state.snapshot
            described.append(
                {
                    "index": index,
                    "name": snap.name,
                    "utilization": snap.utilization,
                    "utilization_window": round(state.utilization, 1),
                    "foreign_utilization": round(state.foreign_utilization, 1),
                    "memory_used_mib": snap.memory_used_mib,
                    "memory_total_mib": snap.memory_total_mib,
                    "power_w": snap.power_w,
                    "energy_j": snap.energy_j,
                    "taken": round(self.taken(index), 3),
                    "processes": [
                        {
                            "pid": p.pid,
                            "memory_mib": p.memory_mib,
                            "utilization": p.utilization,
                            "owner": _owner(owners.get(p.pid)),
                        }
                        for p in snap.processes
                    ],
                }
            )
        return described


class GpuSlots:
    """One experiment's access to the shared pool."""

    def __init__(self, pool: GpuPool, experiment_id: str, allowed: list[int], policy: GpuPolicy, gpus_per_trial: float):
        self.pool, self.experiment_id, self.allowed, self.policy = pool, experiment_id, allowed, policy
        self.gpus_per_trial = gpus_per_trial
        self.wanted = max(1, math.ceil(gpus_per_trial))
        self.share = gpus_per_trial if 0 < gpus_per_trial < 1 else 1 / policy.max_trials_per_gpu
        self.estimate = MemoryEstimate(policy.trial_memory_mib)
        self.running: Callable[[], int] = lambda: 0
        self.wake: Callable[[], None] = lambda: None

    @property
    def enabled(self) -> bool:
        """Whether trials get GPUs at all (they asked for some, and some exist)."""
        return self.gpus_per_trial > 0 and bool(self.allowed)

    def bind(self, running: Callable[[], int], wake: Callable[[], None]) -> None:
        """Tell the pool how many trials this experiment runs and how to wake it when a GPU frees up."""
        self.running, self.wake = running, wake

    def acquire(self) -> Placement | None:
        """GPUs for a new trial (a placement without GPUs when it runs on the CPU), or None when it must wait."""
        if not self.enabled:
            return Placement([], 0.0, 0.0)
        states = self.pool.states()
        ok = self._ok(states)
        if len(ok) < self.wanted or any(
            other is not self and other.running() < self.running() and set(ok) & set(other._ok(states))
            for other in self.pool._waiting
        ):
            if self not in self.pool._waiting:
                self.pool._waiting.append(self)
            return None
        chosen = sorted(ok[: self.wanted])
        estimate = self.estimate.value
        reserved = estimate if estimate is not None else min(self._free(states[i]) for i in chosen)
        placement = self._place(chosen, reserved)
        self.withdraw()
        return placement

    def verdicts(self) -> dict[int, str | None]:
        """For every GPU: None when it would take this experiment's next trial, else why not."""
        states = self.pool.states()
        return {i: self._verdict(i, states.get(i)) for i in range(self.pool.count)}

    def claim(self, gpus: list[int], memory_mib: float | None) -> Placement:
        """Count GPUs as held by a trial re-attached after a restart (its stored peak as its reservation); none
        when this experiment's trials get no GPUs from this pool (a cluster's nodes place them)."""
        if self.gpus_per_trial <= 0:
            return Placement([], 0.0, 0.0)
        return self._place([i for i in gpus if 0 <= i < self.pool.count], memory_mib or 0.0)

    def started(self, placement: Placement, trial: TrialRef, pid: int) -> None:
        """The trial on `placement` runs as process `pid`."""
        placement.trial, placement.pid, placement.pids, placement.since = trial, pid, {pid}, self.pool.clock()
        if placement.gpus and self.pool.probe is not None:
            load = self.policy.simulated_load
            self.pool.probe.place(pid, placement.gpus, load.memory_mib, load.utilization)

    def seen(self, placement: Placement, pids: set[int]) -> None:
        """The processes of the trial's tree now (so its GPU processes are told apart as ours)."""
        if pids:
            placement.pids = pids

    def measured(self, placement: Placement) -> tuple[float, float]:
        """A running trial's energy (J) and peak GPU memory (MiB) so far."""
        if placement.trial is None or self.pool.monitor is None:
            return 0.0, 0.0
        monitor = self.pool.monitor
        return monitor.energy_j.get(placement.trial, 0.0), monitor.peak_mib.get(placement.trial, 0.0)

    def release(self, placement: Placement) -> tuple[float, float]:
        """The trial ended: give its GPUs back, learn its peak memory, wake the waiting experiments;
        its energy (J) and peak GPU memory (MiB)."""
        if placement not in self.pool.placements:
            return 0.0, 0.0
        self.pool.placements.remove(placement)
        energy, peak = 0.0, 0.0
        if placement.trial is not None and self.pool.monitor is not None:
            energy, peak = self.pool.monitor.forget(placement.trial)
            self.estimate.observe(peak)
        if self.pool.probe is not None and placement.pid is not None:
            self.pool.probe.remove(placement.pid)
        if self.pool.monitor is not None:
            self.pool.monitor.sampled_at = float("-inf")  # its memory is free now: the next decision re-reads
        for waiter in list(self.pool._waiting):
            waiter.wake()
        return energy, peak

    def withdraw(self) -> None:
        """Stop waiting for a GPU (the experiment was paused or ended), so others need not defer to it."""
        if self in self.pool._waiting:
            self.pool._waiting.remove(self)

    def _place(self, gpus: list[int], reserved_mib: float) -> Placement:
        placement = Placement(gpus, self.share, reserved_mib, self, since=self.pool.clock())
        if gpus:
            self.pool.placements.append(placement)
        return placement

    def _ok(self, states: dict[int, MonitoredGpu]) -> list[int]:
        """The allowed GPUs that would take a trial now, the best first: least held by us, least loaded."""
        ok = [i for i in self.allowed if self._verdict(i, states.get(i)) is None]
        return sorted(ok, key=lambda i: (self.pool.taken(i), _load(states.get(i)), -self._free(states.get(i))))

    def _verdict(self, index: int, state: MonitoredGpu | None) -> str | None:
        if index not in self.allowed:
            return "not in this experiment's gpu.indices" if self.gpus_per_trial > 0 else "trials run on the CPU"
        taken = self.pool.taken(index)
        if taken + self.share > 1 + _EPSILON:
            ours = sum(1 for p in self.pool.placements if index in p.gpus)
            return f"full: {ours} trial(s) of ours hold {taken:.0%} of it"
        if state is None:
            return None
        policy = self.policy
        if state.foreign and not policy.use_active_gpu:
            pids = ", ".join(str(p.pid) for p in state.foreign[:3])
            return f"other users' processes run on it (pid {pids}); set gpu.use_active_gpu to share it"
        if state.foreign_utilization > policy.max_utilization:
            return (
                f"busy: other users' load {state.foreign_utilization:.0f}% is over "
                f"gpu.max_utilization {policy.max_utilization:g}%"
            )
        estimate = self.estimate.value
        if estimate is None and any(index in p.gpus for p in self.pool.placements):
            return "this experiment's memory need is not known yet: its trial waits for a GPU without our trials"
        free, need = self._free(state), max(estimate or 0.0, policy.min_free_memory_mib)
        if free < need:
            return f"not enough free memory: {free:.0f} MiB free, {need:.0f} MiB needed"
        return None

    def _free(self, state: MonitoredGpu | None) -> float:
        """Memory free for a new trial: what nobody uses, less what our trials reserved and do not use yet."""
        if state is None:
            return math.inf
        free = state.snapshot.memory_total_mib - state.snapshot.memory_used_mib
        for placement in self.pool.placements:
            if state.index in placement.gpus:
                used = state.ours.get(placement.trial, 0.0) if placement.trial is not None else 0.0
                free -= max(0.0, placement.reserved_mib - used)
        return free


def _load(state: MonitoredGpu | None) -> float:
    return 0.0 if state is None else state.foreign_utilization


def _owner(trial: TrialRef | None) -> dict[str, Any] | None:
    return None if trial is None else {"experiment": trial[0], "trial": trial[1]}


def report(pool: GpuPool, policies: dict[str, GpuSlots]) -> list[dict[str, Any]]:
    """Each GPU as `describe` gives it, with whether it would take a trial under each named policy and why not;
    `takes_trial` and `reason` are for the first policy."""
    gpus = pool.describe()
    verdicts = {name: slots.verdicts() for name, slots in policies.items()}
    for gpu in gpus:
        gpu["verdicts"] = {name: v.get(gpu["index"]) for name, v in verdicts.items()}
        first = next(iter(gpu["verdicts"].values()), None)
        gpu["takes_trial"], gpu["reason"] = first is None, first
    return gpus
