"""Hyperband as brackets of ASHA: each bracket starts judging at a larger resource, trials spread over brackets.

With s_max = floor(log_eta(max_resource / min_resource)), bracket s (0..s_max)
is an independent ASHA ladder whose rungs are min_resource * eta^(s+k) below
max_resource: bracket 0 judges earliest, and bracket s_max judges nothing when
max_resource / min_resource is a power of eta. Bracket s gets Hyperband's share
n_s = ceil((s_max + 1) / (j + 1) * eta^j) with j = s_max - s (Li et al., 2018).
Keys are dealt to brackets by smooth weighted round-robin over one period of
sum(n_s) keys: key k goes where the k-th pick (k mod period) of that sequence
goes, each pick being the bracket furthest behind its share (ties to the
lower bracket), so any run of consecutive keys is spread over all brackets.
"""

from __future__ import annotations

from automl.stoppers.asha import Rungs, check_resources, rung_steps
from automl.stoppers.base import History, Stopper, score
from automl.tuners.base import Mode


class HyperbandStopper(Stopper):
    """Hyperband: trials dealt to brackets of ASHA by key, each bracket judging from its own minimum resource."""

    def __init__(self, mode: Mode, min_resource: int = 1, max_resource: int = 100, reduction_factor: int = 3) -> None:
        super().__init__(mode)
        low, high, eta = check_resources(min_resource, max_resource, reduction_factor)
        s_max = 0
        while low * eta ** (s_max + 1) <= high:
            s_max += 1
        self.rungs: tuple[tuple[int, ...], ...] = tuple(rung_steps(low * eta**s, high, eta) for s in range(s_max + 1))
        """The rung steps of each bracket."""
        self.shares: tuple[int, ...] = tuple(_share(s_max - s, s_max, eta) for s in range(s_max + 1))
        """How many keys of each period of sum(shares) keys go to each bracket."""
        self._ladders = [Rungs(steps, eta) for steps in self.rungs]
        self._deal = _RoundRobin(self.shares)

    def report(self, key: int, step: int, value: float | None) -> bool:
        return self._ladders[self.bracket(key)].judge(key, step, score(value, self.mode))

    def restore(self, history: History) -> None:
        for key, values, _status in history:
            ladder = self._ladders[self.bracket(key)]
            for step, value in enumerate(values, start=1):
                ladder.record(key, step, score(value, self.mode))

    def bracket(self, key: int) -> int:
        return self._deal.pick(key)


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
