"""The one interface every early-stopping strategy sits behind: judge a running trial on each intermediate result."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod

from automl.states import TrialStatus
from automl.tuners.base import Mode

History = list[tuple[int, list[float | None], TrialStatus]]
"""Earlier trials for `Stopper.restore`: each trial's key, its intermediate values in order, its status."""


class Stopper(ABC):
    """Decides, on each intermediate result of a running trial, whether the trial goes on.

    Steps are the 1-based count of a trial's intermediate reports, which is
    also the resource unit (epochs). Each step is reported once and in order;
    a report for a step the stopper has already seen is ignored (it returns
    False). A None or NaN value never raises: it counts as the worst possible
    value. Not thread-safe: the experiment loop calls one stopper from one
    thread at a time.
    """

    def __init__(self, mode: Mode) -> None:
        if mode not in ("maximize", "minimize"):
            raise ValueError(f"optimize mode must be 'maximize' or 'minimize', got {mode!r}")
        self.mode: Mode = mode

    @abstractmethod
    def report(self, key: int, step: int, value: float | None) -> bool:
        """Record trial `key`'s intermediate `value` at its `step`-th report; True when the trial should stop now.

        True is returned once, on the report that decided it; the caller stops the trial.
        """

    def ended(self, key: int, status: TrialStatus, value: float | None) -> None:  # noqa: B027
        """Trial `key` ended with `status` (succeeded, failed, killed, ...) and its final value, if any."""

    @abstractmethod
    def restore(self, history: History) -> None:
        """Rebuild state after a restart from earlier trials, in any order; decides nothing and stops nothing.

        After `restore`, later reports get the decisions a stopper that had seen
        all of `history` live would give.
        """

    def bracket(self, key: int) -> int | None:
        """The Hyperband bracket trial `key` belongs to; None for stoppers without brackets."""
        return None

    def judged_at(self, key: int, steps: int) -> int:
        """The step at which trial `key`, stopped after `steps` reports, was judged: the last step up to `steps` at
        which this stopper judges it. A stopper that judges every report cannot tell a verdict that arrived a report
        late, and answers `steps`."""
        return steps


def score(value: float | None, mode: Mode) -> float:
    """`value` as higher-is-better (negated when minimizing); None and NaN become -inf, the worst possible."""
    if value is None or math.isnan(value):
        return -math.inf
    return float(value) if mode == "maximize" else -float(value)


def check_int(name: str, value: object, low: int) -> int:
    """`value` if it is an integer >= `low`; otherwise a ValueError that says what is allowed."""
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return value
