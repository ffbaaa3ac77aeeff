"""The param-vs-objective scatter: each finished trial's value against one parameter, on an axis that fits the
parameter (log-scaled for log-uniform ones, one column of dots per category for choices)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from automl.states import TrialStatus

from . import format as fmt
from .braille import Series
from .state import TrialState

LOG_TYPES = frozenset({"loguniform", "qloguniform"})
JITTER = 0.3
"""How far (in category widths) the dots of one category spread sideways, so that they do not all fall on one."""


@dataclass
class Scatter:
    """What the chart draws: the series, how the x axis is labelled and over which range, and its legend."""

    series: list[Series]
    ticks: Callable[[float, float], list[tuple[float, str]]]
    x_range: tuple[float, float] | None
    axis: str  # 'log', 'linear' or 'categories'


def scatter(trials: Iterable[TrialState], param: str, kind: str | None, best_id: int | None) -> Scatter:
    """The succeeded trials' values against `param` (`kind` its search-space type), the best one in gold."""
    shown = [
        (t, t.flat_params().get(param)) for t in trials if t.status == TrialStatus.SUCCEEDED and t.value is not None
    ]
    shown = [(t, x) for t, x in shown if x is not None]
    numbers = all(isinstance(x, (int, float)) and not isinstance(x, bool) for _, x in shown)
    if numbers and kind != "choice":
        log = kind in LOG_TYPES and all(x > 0 for _, x in shown)
        xs = [math.log10(x) if log else float(x) for _, x in shown]
        ticks = _log_ticks if log else _linear_ticks
        return _split(shown, xs, best_id, ticks, None, "log" if log else "linear")
    categories = list(dict.fromkeys(_label(x) for _, x in sorted(shown, key=lambda pair: _sort_key(pair[1]))))
    where = {label: n for n, label in enumerate(categories)}
    xs = [where[_label(x)] + JITTER * _jitter(t.id) for t, x in shown]

    def ticks(_lo: float, _hi: float) -> list[tuple[float, str]]:
        return [(float(n), label[:10]) for n, label in enumerate(categories)]

    return _split(shown, xs, best_id, ticks, (-0.5, len(categories) - 0.5), "categories")


def _split(
    shown: list[tuple[TrialState, Any]],
    xs: list[float],
    best_id: int | None,
    ticks: Callable[[float, float], list[tuple[float, str]]],
    x_range: tuple[float, float] | None,
    axis: str,
) -> Scatter:
    """The others as grey-blue dots, the best trial's dot drawn last, in gold."""
    rest = [(x, t.value) for (t, _), x in zip(shown, xs, strict=True) if t.id != best_id]
    best = [(x, t.value) for (t, _), x in zip(shown, xs, strict=True) if t.id == best_id]
    series = [
        Series("trials", [x for x, _ in rest], [y for _, y in rest], fmt.SERIES_COLORS[0], points=True),
        Series("best", [x for x, _ in best], [y for _, y in best], fmt.BEST_COLOR, points=True),
    ]
    return Scatter(series, ticks, x_range, axis)


def _linear_ticks(lo: float, hi: float) -> list[tuple[float, str]]:
    return [(lo, fmt.number(lo, 8)), ((lo + hi) / 2, fmt.number((lo + hi) / 2, 8)), (hi, fmt.number(hi, 8))]


def _log_ticks(lo: float, hi: float) -> list[tuple[float, str]]:
    """Powers of ten within the range (the ends when there is none)."""
    powers = range(math.ceil(lo - 1e-9), math.floor(hi + 1e-9) + 1)
    if len(powers) >= 2:
        return [(float(p), fmt.number(10.0**p, 8)) for p in powers]
    return [(lo, fmt.number(10**lo, 8)), (hi, fmt.number(10**hi, 8))]


def _label(value: Any) -> str:
    return fmt.param(value)


def _sort_key(value: Any) -> tuple[int, Any]:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return 0, value
    return 1, str(value)


def _jitter(trial_id: int) -> float:
    """A fixed spread in [-1, 1) per trial, so that a redraw puts each dot where it was."""
    return ((trial_id * 2654435761) % 1000) / 500 - 1


def param_kinds(space: Mapping[str, Any] | None) -> dict[str, str]:
    """Each search-space parameter's `_type`."""
    return {
        name: str(spec.get("_type"))
        for name, spec in (space or {}).items()
        if isinstance(spec, dict) and "_type" in spec
    }
