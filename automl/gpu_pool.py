"""Which GPUs a new trial gets: whole GPUs, or a share of one when trials ask for a fraction."""

from __future__ import annotations

import logging
import math

log = logging.getLogger("automl")


class GpuPool:
    """Slots on the allowed GPUs: a fraction f packs floor(1/f) trials on a GPU, else `max_trials_per_gpu` share it."""

    def __init__(self, indices: list[int], gpus_per_trial: float, max_trials_per_gpu: int):
        self.gpus_per_trial = gpus_per_trial
        fraction = 0 < gpus_per_trial < 1
        self.per_gpu = math.floor(1 / gpus_per_trial) if fraction else max_trials_per_gpu
        self.load = {index: 0 for index in indices}

    @property
    def enabled(self) -> bool:
        """Whether trials get GPUs at all (they asked for some, and some exist)."""
        return self.gpus_per_trial > 0 and bool(self.load)

    def acquire(self) -> list[int] | None:
        """GPU indices for a new trial ([] when it runs on CPU), or None when none are free now."""
        if not self.enabled:
            return []
        wanted = max(1, math.ceil(self.gpus_per_trial))
        free = sorted((n, i) for i, n in self.load.items() if n < self.per_gpu)
        if len(free) < wanted:
            return None
        chosen = sorted(i for _, i in free[:wanted])
        for index in chosen:
            self.load[index] += 1
        return chosen

    def claim(self, indices: list[int]) -> None:
        """Count GPUs already held by a trial that was re-attached after a restart."""
        for index in indices:
            if index in self.load:
                self.load[index] += 1

    def release(self, indices: list[int]) -> None:
        """Give a finished trial's GPUs back."""
        for index in indices:
            if index in self.load:
                self.load[index] -= 1


def make_pool(indices: list[int] | None, gpus_per_trial: float, max_trials_per_gpu: int,
              detected: int) -> GpuPool:
    """A pool over the configured GPUs that exist; logs once when trials that asked for GPUs run on CPU."""
    allowed = [i for i in (indices if indices is not None else range(detected)) if 0 <= i < detected]
    if gpus_per_trial > 0 and not allowed:
        log.warning("no usable GPU found (%d detected): trials run on the CPU", detected)
    if gpus_per_trial > 0 and len(allowed) < math.ceil(gpus_per_trial):
        log.warning("trials ask for %s GPUs but only %d are usable: trials run on the CPU",
                    gpus_per_trial, len(allowed))
        allowed = []
    return GpuPool(allowed, gpus_per_trial, max_trials_per_gpu)
