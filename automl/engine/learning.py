"""What the tuner learns from an ended trial, as the stopper's `learn_from` says.

A trial the stopper ended keeps, as its value, its last or its best intermediate value, or the one it was
judged on (`rung`), or none. With `rung` the tuner is told each trial's place in an order instead of its
value: every trial that ran to its end ranks above every stopped one, a trial stopped later above one stopped
earlier, and trials stopped at the same step by the value they were judged on (Optuna's TPE ranks its pruned
trials the same way). The order is made a number (`rank_value`), which tuners that learn from the order of
results alone (`automl.tuners.order_only_tuners`) use exactly as they would the order itself.
"""

from __future__ import annotations

import math

from ..config.model import StopperSpec
from ..states import TrialStatus
from ..store import TrialRecord
from ..tuners import Mode

_LEVELS = 1 << 24
"""Steps at which a trial can be judged, at most, for `rank_value`; later steps count as this one."""


def stopped_value(spec: StopperSpec, mode: Mode, intermediate: list[float | None], judged_at: int) -> float | None:
    """The value a stopped trial keeps: its last or best intermediate value, the one at the step it was judged at
    (the `judged_at`-th), or None."""
    values = [v for v in intermediate if v is not None]
    if spec.learn_from == "none" or not values:
        return None
    if spec.learn_from == "rung":
        return intermediate[judged_at - 1] if 0 < judged_at <= len(intermediate) else None
    if spec.learn_from == "last":
        return values[-1]
    return max(values) if mode == "maximize" else min(values)


def told_value(spec: StopperSpec | None, mode: Mode, trial: TrialRecord, judged_at: int | None) -> float | None:
    """What the tuner is told about an ended trial: its value, or with `learn_from: rung` its `rank_value`
    (`judged_at`: the step an early-stopped trial was stopped at)."""
    if spec is None or spec.learn_from != "rung" or trial.value is None:
        return trial.value
    if trial.status == TrialStatus.SUCCEEDED:
        return rank_value(None, trial.value, mode)
    if trial.status == TrialStatus.EARLY_STOPPED:
        return rank_value(judged_at or trial.steps, trial.value, mode)
    return trial.value


def rank_value(judged_at: int | None, value: float, mode: Mode) -> float:
    """A number that orders trials as `learn_from: rung` does, in `mode`'s sense: `judged_at` None for a trial that
    ran to its end, else the step it was stopped at; then its value.

    It is the trial's value squashed into (0, 1) by an order-keeping map, plus a whole number that grows the
    earlier the trial was stopped (0 for one that ran to its end); negated when maximizing. Two values at the same
    level may tie when they differ by less than about 1e-8 x (1 + value^2).
    """
    loss = value if mode == "minimize" else -value
    squashed = 0.5 + math.atan(loss) / math.pi
    level = 0 if judged_at is None else _LEVELS + 1 - min(max(judged_at, 1), _LEVELS)
    ranked = level + squashed
    return ranked if mode == "minimize" else -ranked
