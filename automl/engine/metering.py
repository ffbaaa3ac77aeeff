"""Metering one trial's usage while it runs and when it ends: GPU-seconds, energy, CPU-seconds, peak memory, cost.

What a trial used comes from three places: its handle (the samples of its processes, and what was recorded at its
exit), the GPU pool (its share of its GPUs' energy, its peak GPU memory), and the store (what an earlier automl
process measured before a restart). `automl/usage.py` prices the sum.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..config.model import CostPolicy
from ..gpu.pool import GpuSlots, Placement
from ..launchers.base import ProcessUsage, TrialHandle
from ..store import Store, StoreUnavailable, TrialRecord
from ..usage import USAGE_FIELDS, TrialUsage

USAGE_EVERY = 1.0  # seconds between looks at a running trial's processes
STORE_USAGE_EVERY = 5.0  # seconds between writes of a running trial's usage to the store


@dataclass
class Meter:
    """One trial's meter: when its processes were last looked at and its usage last stored, and what an earlier
    automl process measured of it (`before`, from the store, for a trial re-attached after a restart)."""

    trial: TrialRecord
    placement: Placement
    before: dict[str, float] = field(default_factory=dict)
    looked: float = 0.0
    stored: float = 0.0

    @classmethod
    def resumed(cls, trial: TrialRecord, placement: Placement) -> Meter:
        """The meter of a trial taken up after a restart: it goes on from the usage stored for it."""
        return cls(trial, placement, before={name: getattr(trial, name) or 0.0 for name in USAGE_FIELDS})

    def look(self, now: float, handle: TrialHandle, gpus: GpuSlots, store: Store, prices: CostPolicy) -> None:
        """Every second, look at the trial's processes (so the pool tells its GPU processes apart); every few
        seconds, store what it used so far."""
        if now - self.looked < USAGE_EVERY:
            return
        self.looked = now
        gpus.seen(self.placement, handle.sample())
        if now - self.stored < STORE_USAGE_EVERY or not store.due():
            return
        self.stored = now
        usage = self.total(*gpus.measured(self.placement), handle.usage(), store.clock(), prices)
        try:
            store.trial_usage(self.trial, usage)
        except StoreUnavailable:
            pass  # a running total: the next write brings it up to date

    def total(
        self, energy_j: float, gpu_memory_mib: float, used: ProcessUsage, now: float, prices: CostPolicy
    ) -> dict[str, float]:
        """What the trial used until it ended (`used.ended`), or until `now`, with what was measured before a
        restart, and its price."""
        trial, placement, before = self.trial, self.placement, self.before
        ended = now if used.ended is None else used.ended
        ran = max(0.0, ended - trial.started) if trial.started else 0.0
        usage = TrialUsage(  # `used`'s GPU figures: measured on the trial's node, its whole run (see ProcessUsage)
            gpu_seconds=max(placement.share * len(placement.gpus) * ran, used.gpu_seconds),
            energy_j=max(before.get("energy_j", 0.0) + energy_j, used.energy_j),
            cpu_seconds=max(used.cpu_seconds, before.get("cpu_seconds", 0.0)),
            peak_rss_mib=max(used.peak_rss_mib, before.get("peak_rss_mib", 0.0)),
            gpu_memory_mib=max(gpu_memory_mib, used.gpu_memory_mib, before.get("gpu_memory_mib", 0.0)),
        )
        return usage.priced(prices).as_dict()
