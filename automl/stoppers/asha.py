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
    """ASHA: rungs at min_resource * eta^k below max_resource; a trial goes on at a rung while in the top 1/eta.

    With `brackets` = b > 1, trials are dealt over the first b of Hyperband's brackets (see `Brackets`), in
    Hyperband's proportions: most are judged from min_resource, the others only from min_resource * eta^s, so
    a good configuration whose first reports look bad still has a chance to show what it is worth.
    """

    def __init__(
        self,
        mode: Mode,
        min_resource: int = 1,
        max_resource: int = 100,
        reduction_factor: int = 3,
        brackets: int = 1,
    ) -> None:
        super().__init__(mode)
        low, high, eta = check_resources(min_resource, max_resource, reduction_factor)
        most = bracket_count(low, high, eta)
        count = check_int("brackets", brackets, 1)
        if count > most:
            raise ValueError(
                f"brackets must be at most {most} for min_resource={low}, max_resource={high} and "
                f"reduction_factor={eta} (Hyperband's number of brackets for them), got {count}"
            )
        self._brackets = Brackets(low, high, eta, count)
        self.rungs = self._brackets.rungs[0]
        """The rung steps of the first bracket, the one that judges earliest."""

    def report(self, key: int, step: int, value: float | None) -> bool:
        return self._brackets.judge(key, step, score(value, self.mode))

    def restore(self, history: History) -> None:
        self._brackets.restore(history, self.mode)

    def bracket(self, key: int) -> int | None:
        """None with one bracket, as for any stopper without brackets; else the bracket of trial `key`."""
        return None if len(self._brackets.shares) == 1 else self._brackets.bracket(key)

    def judged_at(self, key: int, steps: int) -> int:
        return self._brackets.judged_at(key, steps)


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


class Brackets:
    """The first `count` of Hyperband's brackets for (low, high, eta), and which key goes to which.

    With s_max = floor(log_eta(high / low)), bracket s is an independent ladder of rungs low * eta^(s+k)
    below high, and gets Hyperband's share n_s = ceil((s_max + 1) / (j + 1) * eta^j) with j = s_max - s
    (Li et al., 2018). Keys are dealt by smooth weighted round-robin over one period of sum(n_s) keys: key k
    goes where the k-th pick (k mod period) goes, each pick being the bracket furthest behind its share
    (ties to the lower bracket), so any run of consecutive keys is spread over all brackets.
    """

    def __init__(self, low: int, high: int, eta: int, count: int) -> None:
        s_max = bracket_count(low, high, eta) - 1
        self.rungs = tuple(rung_steps(low * eta**s, high, eta) for s in range(count))
        self.shares = tuple(_share(s_max - s, s_max, eta) for s in range(count))
        self._ladders = [Rungs(steps, eta) for steps in self.rungs]
        self._deal = _RoundRobin(self.shares)

    def judge(self, key: int, step: int, value: float) -> bool:
        """Record the higher-is-better `value` in `key`'s bracket; True when the trial must stop there."""
        return self._ladders[self.bracket(key)].judge(key, step, value)

    def restore(self, history: History, mode: Mode) -> None:
        """Record every value of `history` in its trial's bracket, deciding nothing."""
        for key, values, _status in history:
            ladder = self._ladders[self.bracket(key)]
            for step, value in enumerate(values, start=1):
                ladder.record(key, step, score(value, mode))

    def bracket(self, key: int) -> int:
        return self._deal.pick(key)

    def judged_at(self, key: int, steps: int) -> int:
        """The last rung of `key`'s bracket at or below `steps`; `steps` if it is below the first."""
        return max((step for step in self.rungs[self.bracket(key)] if step <= steps), default=steps)


def bracket_count(low: int, high: int, eta: int) -> int:
    """Hyperband's number of brackets, s_max + 1, for a checked ladder."""
    s_max = 0
    while low * eta ** (s_max + 1) <= high:
        s_max += 1
    return s_max + 1


class _RoundRobin:
    """Smooth weighted round-robin over buckets; the pick sequence repeats every sum(weights) picks."""

    def __init__(self, weights: tuple[int, ...]) -> None:
        self._weights = weights
        self._period = sum(weights)
        self._current = [0] * len(weights)
        self._picks: list[int] = []

    def pick(self, index: int) -> int:
        """The bucket of the `index`-th pick (any integer; taken modulo the period)."""
        position = index % self._period
        while len(self._picks) <= position:
            current = self._current
            for bucket, weight in enumerate(self._weights):
                current[bucket] += weight
            chosen = max(range(len(current)), key=lambda bucket: (current[bucket], -bucket))
            current[chosen] -= self._period
            self._picks.append(chosen)
        return self._picks[position]


def _share(halvings: int, s_max: int, eta: int) -> int:
    """Hyperband's share for the bracket that halves j = `halvings` times: ceil((s_max + 1) / (j + 1) * eta^j)."""
    return -(-(s_max + 1) * eta**halvings // (halvings + 1))
