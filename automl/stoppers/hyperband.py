"""Hyperband as brackets of ASHA: each bracket starts judging at a larger resource, trials spread over brackets.

All of `Brackets`' s_max + 1 brackets (automl.stoppers.asha): bracket 0 judges
earliest, and bracket s_max judges nothing when max_resource / min_resource is
a power of eta. How keys are dealt to brackets is described there.
"""

from __future__ import annotations

from automl.stoppers.asha import Brackets, bracket_count, check_resources
from automl.stoppers.base import History, Stopper, score
from automl.tuners.base import Mode


class HyperbandStopper(Stopper):
    """Hyperband: trials dealt to brackets of ASHA by key, each bracket judging from its own minimum resource."""

    def __init__(self, mode: Mode, min_resource: int = 1, max_resource: int = 100, reduction_factor: int = 3) -> None:
        super().__init__(mode)
        low, high, eta = check_resources(min_resource, max_resource, reduction_factor)
        self._brackets = Brackets(low, high, eta, bracket_count(low, high, eta))
        self.rungs: tuple[tuple[int, ...], ...] = self._brackets.rungs
        """The rung steps of each bracket."""
        self.shares: tuple[int, ...] = self._brackets.shares
        """How many keys of each period of sum(shares) keys go to each bracket."""

    def report(self, key: int, step: int, value: float | None) -> bool:
        return self._brackets.judge(key, step, score(value, self.mode))

    def restore(self, history: History) -> None:
        self._brackets.restore(history, self.mode)

    def bracket(self, key: int) -> int:
        return self._brackets.bracket(key)

    def judged_at(self, key: int, steps: int) -> int:
        return self._brackets.judged_at(key, steps)
