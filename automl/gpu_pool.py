"""Which GPUs a new trial gets, shared fairly by every experiment of one process.

Each trial takes a share of each of its GPUs: a fraction f takes f (so
floor(1/f) trials pack on one GPU); whole-GPU trials take 1/max_trials_per_gpu.
When a GPU frees up and several experiments wait, the one running the fewest
trials gets it, so no experiment starves another.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

log = logging.getLogger("automl")
_EPSILON = 1e-9


class GpuPool:
    """The GPUs of this machine and how much of each is taken."""

    def __init__(self, detected: int):
        self.used = {index: 0.0 for index in range(detected)}
        self._waiting: list[GpuSlots] = []

    def slots(self, indices: list[int] | None, gpus_per_trial: float, max_trials_per_gpu: int) -> GpuSlots:
        """One experiment's view: the GPUs it may use, and how much a trial takes."""
        allowed = [i for i in (indices if indices is not None else sorted(self.used)) if i in self.used]
        if gpus_per_trial > 0 and len(allowed) < math.ceil(gpus_per_trial):
            log.warning("trials ask for %g GPU(s) but %d usable GPU(s) exist: trials run on the CPU",
                        gpus_per_trial, len(allowed))
            allowed = []
        return GpuSlots(self, allowed, gpus_per_trial, max_trials_per_gpu)


class GpuSlots:
    """One experiment's access to the shared pool."""

    def __init__(self, pool: GpuPool, allowed: list[int], gpus_per_trial: float, max_trials_per_gpu: int):
        self.pool, self.allowed, self.gpus_per_trial = pool, allowed, gpus_per_trial
        self.wanted = max(1, math.ceil(gpus_per_trial))
        self.share = gpus_per_trial if 0 < gpus_per_trial < 1 else 1 / max_trials_per_gpu
        self.running: Callable[[], int] = lambda: 0
        self.wake: Callable[[], None] = lambda: None

    @property
    def enabled(self) -> bool:
        """Whether trials get GPUs at all (they asked for some, and some exist)."""
        return self.gpus_per_trial > 0 and bool(self.allowed)

    def bind(self, running: Callable[[], int], wake: Callable[[], None]) -> None:
        """Tell the pool how many trials this experiment runs and how to wake it when a GPU frees up."""
        self.running, self.wake = running, wake

    def acquire(self) -> list[int] | None:
        """GPU indices for a new trial ([] when it runs on CPU), or None when it must wait."""
        if not self.enabled:
            return []
        free = sorted((self.pool.used[i], i) for i in self.allowed if self.pool.used[i] + self.share <= 1 + _EPSILON)
        free_ids = {i for _, i in free}
        if len(free) < self.wanted or any(
                other is not self and other.running() < self.running() and free_ids & set(other.allowed)
                for other in self.pool._waiting):
            self._wait()
            return None
        chosen = sorted(i for _, i in free[: self.wanted])
        self.claim(chosen)
        self.withdraw()
        return chosen

    def withdraw(self) -> None:
        """Stop waiting for a GPU (the experiment was paused or ended), so others need not defer to it."""
        if self in self.pool._waiting:
            self.pool._waiting.remove(self)

    def claim(self, indices: list[int]) -> None:
        """Count GPUs as taken by a trial (also one re-attached after a restart)."""
        for index in indices:
            if index in self.pool.used:
                self.pool.used[index] += self.share

    def release(self, indices: list[int]) -> None:
        """Give a finished trial's GPUs back and wake the experiments waiting for one."""
        for index in indices:
            if index in self.pool.used:
                self.pool.used[index] = max(0.0, self.pool.used[index] - self.share)
        if indices:
            for waiter in list(self.pool._waiting):
                waiter.wake()

    def _wait(self) -> None:
        if self not in self.pool._waiting:
            self.pool._waiting.append(self)
