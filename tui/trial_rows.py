"""How the trials table picks its columns, orders and filters trials, and spells each row."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from rich.text import Text

from automl.states import ExperimentStatus, TrialStatus

from . import format as fmt
from .state import TrialState
from .widgets.cost_panel import trial_cost
from .widgets.table import Cell, Column

STATUS_RANK = {
    TrialStatus.RUNNING: 0,
    TrialStatus.WAITING: 1,
    TrialStatus.SUCCEEDED: 2,
    TrialStatus.EARLY_STOPPED: 3,
    TrialStatus.FAILED: 4,
    TrialStatus.KILLED: 5,
    TrialStatus.INTERRUPTED: 6,
    ExperimentStatus.STOPPED: 7,
}

SORTABLE = ("id", "best", "last", "step", "time", "status", "cost")
"""The columns `o` cycles through; any column sorts when its header is clicked."""

BEST_MARK = "★"


PARAM_WIDTH = 10
"""The widest a parameter's header gets (it is cut, unambiguously, to fit)."""


def param_columns(names: Sequence[str], constant: Iterable[str], importance: Mapping[str, float]) -> list[str]:
    """The parameters worth a column: every one of the search space (and any others trials have) except those
    that take a single value, the most important first (once importance is known), the rest in search-space
    order. The same columns whatever the trials, so that they do not come and go as trials arrive."""
    fixed = set(constant)
    shown = [name for name in names if name not in fixed]
    rank = {name: n for n, name in enumerate(importance)}
    return sorted(shown, key=lambda name: (rank.get(name, len(rank)), shown.index(name)))


def columns(params: Sequence[str], nodes: bool = False) -> list[Column]:
    """The table's columns, the parameters in the middle under short headers that tell them apart (the first two
    kept longest on a narrow screen); with `nodes` (some trial ran on a cluster's node), a NODE column."""
    labels = fmt.short_names(list(params), PARAM_WIDTH)
    middle = [
        Column(
            f"param:{name}", labels[name], max(6, len(labels[name])), priority=65 - i if i < 2 else 45 - i, grow=True
        )
        for i, name in enumerate(params)
    ]
    return [
        Column("id", "#", 5, align="right", priority=100),
        Column("status", "STATUS", 12, priority=90),
        *middle,
        Column("last", "LAST", 8, align="right", priority=75),
        Column("best", "BEST", 8, align="right", priority=80),
        Column("step", "STEP", 5, align="right", priority=55),
        *([Column("node", "NODE", 10, priority=52)] if nodes else []),
        Column("gpu", "GPU", 4, priority=50),
        Column("time", "TIME", 6, align="right", priority=70),
        Column("cost", "COST", 7, align="right", priority=40),
    ]


def natural_descending(column: str, maximize: bool) -> bool:
    """Whether a first click on a column sorts it largest first: the best values, the longest and costliest."""
    if column in ("best", "last"):
        return maximize
    return column in ("id", "time", "cost", "step")


def order(
    trials: Mapping[int, TrialState], column: str, descending: bool, status: str | None, now: float, maximize: bool
) -> list[int]:
    """Trial ids shown, filtered to `status` (None: all) and sorted by `column`; missing values last."""
    shown = [t for t in trials.values() if status is None or t.status == status]
    valued, missing = [], []
    for trial in shown:
        value = sort_value(trial, column, now, maximize)
        (missing if value is None else valued).append((value, trial.id))
    valued.sort(reverse=descending)
    return [trial_id for _, trial_id in valued] + sorted(trial_id for _, trial_id in missing)


def sort_value(trial: TrialState, column: str, now: float, maximize: bool) -> Any:
    """What a trial sorts by in `column`: comparable with the other trials' values, or None."""
    if column == "best":
        return trial.shown_best(maximize)
    if column == "time":
        return trial.duration(now)
    if column.startswith("param:"):
        return param_sort_value(trial, column.removeprefix("param:"))
    key = _SORT_KEYS.get(column)
    return None if key is None else key(trial)


def cost_sort_value(trial: TrialState) -> tuple[float, float] | None:
    """A trial's cost as (money, GPU-seconds), or None when it has neither."""
    cost = trial_cost(trial)
    if cost["money"] is None and cost["gpu_seconds"] is None:
        return None
    return cost["money"] or 0.0, cost["gpu_seconds"] or 0.0


def param_sort_value(trial: TrialState, name: str) -> tuple[int, Any, str] | None:
    """A trial's value of parameter `name`, ranked so numbers come before other values and both compare."""
    value = trial.flat_params().get(name)
    if value is None:
        return None
    return (0, value, "") if isinstance(value, (int, float)) and not isinstance(value, bool) else (1, 0, str(value))


def on_nodes(trials: Iterable[TrialState]) -> bool:
    """Whether some trial ran on a cluster's node (the table then has a NODE column)."""
    return any(trial.node for trial in trials)


_SORT_KEYS: dict[str, Callable[[TrialState], Any]] = {
    "id": lambda trial: trial.id,
    "status": lambda trial: STATUS_RANK.get(trial.status, 9),
    "last": lambda trial: trial.shown_last(),
    "step": lambda trial: trial.steps[-1] if trial.steps else None,
    "cost": cost_sort_value,
    "gpu": lambda trial: tuple(trial.gpus) or None,
    "node": lambda trial: trial.node,
}
"""What a trial sorts by in the columns whose value is the trial's alone."""


def filters(trials: Iterable[TrialState]) -> list[str | None]:
    """The status filters worth offering: all, then every status some trial has."""
    present = {t.status for t in trials}
    return [None, *sorted(present, key=lambda s: (STATUS_RANK.get(s, 9), s))]


def cells(
    trial: TrialState,
    params: Sequence[str],
    best_id: int | None,
    mark: str | None,
    maximize: bool,
    now: float,
    currency: str | None,
) -> dict[str, Cell]:
    """One trial's row; `mark` is the colour of its curve when it is marked; `currency` is its experiment's
    when that has prices (its COST is money), else None (its COST is GPU-hours)."""
    flat = trial.flat_params()
    if trial.id == best_id:
        tag = Text(BEST_MARK, style=fmt.BEST_COLOR)
    elif mark is not None:
        tag = Text("●", style=mark)
    else:
        tag = Text(" ")
    best = trial.shown_best(maximize)
    cost = trial_cost(trial, priced=currency is not None)
    if cost["money"] is not None:
        cost_text = fmt.money(cost["money"], currency)
    elif cost["gpu_seconds"]:
        cost_text = f"{cost['gpu_seconds'] / 3600:.2f}h"
    else:
        cost_text = fmt.DASH
    row: dict[str, Cell] = {
        "id": Text.assemble(tag, f"{trial.id:>4}"),
        "status": Text(fmt.status_label(trial.status), style=fmt.status_style(trial.status)),
        "last": fmt.number(trial.shown_last(), 8),
        "best": Text(fmt.number(best, 8), style=f"bold {fmt.BEST_COLOR}" if trial.id == best_id else ""),
        "step": str(trial.steps[-1]) if trial.steps else fmt.DASH,
        "gpu": ",".join(map(str, trial.gpus)) or fmt.DASH,
        "node": fmt.node_name(trial.node) if trial.node else fmt.DASH,
        "time": Text(fmt.duration(trial.duration(now)), style="green" if trial.status == TrialStatus.RUNNING else ""),
        "cost": cost_text,
    }
    for name in params:
        value = flat.get(name)
        row[f"param:{name}"] = value if isinstance(value, float) else fmt.param(value)
    return row


def arranged(columns: Sequence[Column], chosen: Sequence[tuple[str, bool]] | None) -> list[Column]:
    """The columns in the order the user chose, without those they hid; columns they never saw (new parameters)
    keep their place after the one they follow by default."""
    if not chosen:
        return list(columns)
    rank = {key: n for n, (key, _) in enumerate(chosen)}
    hidden = {key for key, shown in chosen if not shown}
    placed: list[tuple[float, int, Column]] = []
    last = -1.0
    for n, column in enumerate(columns):
        last = rank.get(column.key, last + 0.001)
        placed.append((last, n, column))
    return [column for _, _, column in sorted(placed) if column.key not in hidden]
