"""Asynchronous successive halving (ASHA), stopping variant: trials are judged at rungs and only the top 1/eta go on.

Rule at a rung, with n values recorded there so far (the judged trial's included):
the trial goes on while n < eta; otherwise it goes on only if its value is at
least as good as the floor(n / eta)-th best value there, so a tie with that
cut-off goes on. A None or NaN value at a rung stops the trial at once. Every
value reported at a rung stays recorded, whatever the trial's fate, so the
rungs depend only on which values were seen, never on their order: that is
what makes `restore` give the same later decisions as a live stopper.
"""

from __future__ import annotations

import math

from automl.stoppers.base import History, Stopper, check_int, score
from automl.tuners.base import Mode


class AshaStopper(Stopper):
    """ASHA: rungs at min_resource * eta^k below max_resource; a trial goes on at a rung while in the top 1/eta."""

    def __init__(self, mode: Mode, min_resource: int = 1, max_resource: int = 100, reduction_factor: int = 3) -> None:
        super().__init__(mode)
        low, high, eta = check_resources(min_resource, max_resource, reduction_factor)
        self.rungs = rung_steps(low, high, eta)
        self._ladder = Rungs(self.rungs, eta)

    def report(self, key: int, step: int, value: float | None) -> bool:
        return self._ladder.judge(key, step, score(value, self.mode))

    def restore(self, history: History) -> None:
        for key, values, _status in history:
            for step, value in enumerate(values, start=1):
                self._ladder.record(key, step, score(value, self.mode))


class Rungs:
    """One ladder of successive halving: the values recorded at each rung, and the keep-the-top-1/eta rule."""

    def __init__(self, steps: tuple[int, ...], reduction_factor: int) -> None:
        self._eta = reduction_factor
        self._seen: dict[int, dict[int, float]] = {step: {} for step in steps}

    def record(self, key: int, step: int, value: float) -> bool:
        """Record trial `key`'s higher-is-better `value` if `step` is a rung it has no value at yet; whether it did."""
        seen = self._seen.get(step)
        if seen is None or key in seen:
            return False
        seen[key] = value
        return True

    def judge(self, key: int, step: int, value: float) -> bool:
        """Record `value` like `record`; True when it was recorded at a rung and the trial must stop there."""
        if not self.record(key, step, value):
            return False
        if value == -math.inf:
            return True
        seen = self._seen[step]
        keep = len(seen) // self._eta
        if keep == 0:
            return False
        cutoff = sorted(seen.values(), reverse=True)[keep - 1]
        return value < cutoff


def check_resources(min_resource: object, max_resource: object, reduction_factor: object) -> tuple[int, int, int]:
    """The three as integers if they make a ladder with a rung; otherwise a ValueError saying what is allowed."""
    low = check_int("min_resource", min_resource, 1)
    high = check_int("max_resource", max_resource, 1)
    eta = check_int("reduction_factor", reduction_factor, 2)
    if high <= low:
        raise ValueError(
            "max_resource (the number of intermediate results a full trial reports) must be greater than "
            f"min_resource, got max_resource={high} and min_resource={low}"
        )
    return low, high, eta


def rung_steps(min_resource: int, max_resource: int, reduction_factor: int) -> tuple[int, ...]:
    """The steps min_resource * eta^k that are below max_resource, in increasing order."""
    steps = []
    step = min_resource
    while step < max_resource:
        steps.append(step)
        step *= reduction_factor
    return tuple(steps)
