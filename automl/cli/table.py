"""The text of `automl show EXP`: the trials as a table that fits the terminal (80 columns and up), best first, and
the parameters' importance as bars."""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from typing import Any

from tui import format as fmt

from ..export import flatten
from ..states import TrialStatus

MIN_WIDTH = 60
"""Narrower terminals get this width all the same (lines wrap)."""

HEADER = f"{'TRIAL':>5} {'STATUS':<13} {'VALUE':>10} {'TIME':>7}  "
NODE_WIDTH = 12  # the NODE column, shown when trials ran on a cluster's nodes


def terminal_width() -> int:
    """The terminal's width (`COLUMNS` when set, 80 when not a terminal), at least MIN_WIDTH."""
    return max(MIN_WIDTH, shutil.get_terminal_size((80, 24)).columns)


def best_first(trials: list[dict[str, Any]], maximize: bool) -> list[dict[str, Any]]:
    """Trials as `show` lists them: succeeded ones by value, best first; then the others that have a value
    (early-stopped), best first; then running and waiting ones; then the rest; ties by id."""
    sign = -1.0 if maximize else 1.0

    def key(trial: dict[str, Any]) -> tuple[int, float, int]:
        if trial["value"] is not None:
            return (0 if trial["status"] == TrialStatus.SUCCEEDED else 1, sign * trial["value"], trial["id"])
        active = trial["status"] in (TrialStatus.RUNNING, TrialStatus.WAITING)
        return (2 if active else 3, 0.0, trial["id"])

    return sorted(trials, key=key)


def param_order(trials: list[dict[str, Any]], importance: Mapping[str, float]) -> list[str]:
    """Parameter names, the most important first, then the others in the order trials have them."""
    names: dict[str, None] = dict.fromkeys(importance)
    for trial in trials:
        names.update(dict.fromkeys(trial["flat"]))
    return list(names)


def params_text(flat: Mapping[str, Any], names: list[str], labels: Mapping[str, str], width: int) -> str:
    """`label=value` words in `names` order, cut to `width` with '…'."""
    text = ""
    for name in names:
        if name in flat:
            text += f"{' ' if text else ''}{labels[name]}={fmt.param(flat[name], 8)}"
            if len(text) > width:
                break
    return cut(text, width)


def params_words(params: Mapping[str, Any]) -> str:
    """Params as short `name=value` words, nested choices flattened."""
    flat = flatten(dict(params))
    labels = fmt.short_names(list(flat))
    return " ".join(f"{labels[name]}={fmt.param(value, 8)}" for name, value in flat.items())


def cut(text: str, width: int) -> str:
    """`text` in at most `width` characters, ending in '…' when cut."""
    return text if len(text) <= width else text[: max(0, width - 1)] + "…"


def trial_lines(
    trials: list[dict[str, Any]], importance: Mapping[str, float], maximize: bool, top: int | None, now: float
) -> list[str]:
    """The compact table: one line per trial (its error on a line of its own), best first, the first `top`."""
    width = terminal_width()
    names = param_order(trials, importance)
    labels = fmt.short_names(names)
    shown = best_first(trials, maximize)[:top] if top else best_first(trials, maximize)
    on_nodes = any(trial.get("node") for trial in trials)
    header = HEADER + (f"{'NODE':<{NODE_WIDTH}} " if on_nodes else "")
    room = width - len(header)
    heading = "PARAMS, most important first" if importance else "PARAMS"
    lines = [header + cut(heading, room)]
    for trial in shown:
        lines.append(trial_line(trial, names, labels, room, now, on_nodes))
        if trial["error"]:
            lines.append(cut(f"{'':>6}! {trial['error']}", width))
    if len(shown) < len(trials):
        lines.append(f"({len(shown)} of {len(trials)} trials; --top K for more, --wide for every column)")
    return lines


def trial_line(
    trial: dict[str, Any], names: list[str], labels: Mapping[str, str], room: int, now: float, on_nodes: bool = False
) -> str:
    """One trial: id, status, value, how long it ran (so far, while it runs), the node it ran on (for a cluster's
    trials) and its params."""
    value = fmt.number(trial["value"], 10) if trial["value"] is not None else "-"
    started, ended = trial["started"], trial["ended"]
    took = "-" if started is None else fmt.duration((ended if ended is not None else now) - started)
    node = f"{(trial.get('node') or '-')[:NODE_WIDTH]:<{NODE_WIDTH}} " if on_nodes else ""
    return (
        f"{trial['id']:>5} {trial['status']:<13} {value:>10} {took:>7}  {node}"
        + params_text(trial["flat"], names, labels, room)
    ).rstrip()


def importance_lines(importance: Mapping[str, float], counted: int, needed: int) -> list[str]:
    """The parameters' importance as bars, largest first; or why there is none yet."""
    if not importance:
        return [f"importance needs {needed} succeeded trials with a value (has {counted})"]
    width = terminal_width()
    labels = fmt.short_names(list(importance))
    name_width = min(24, max(len(label) for label in labels.values()))
    bar_width = max(10, width - name_width - 12)
    lines = [f"importance (PED-ANOVA over {counted} succeeded trials)"]
    for name, share in importance.items():
        filled, empty = fmt.bar(share, bar_width)
        lines.append(f"  {cut(labels[name], name_width):<{name_width}} {filled}{empty} {share * 100:>5.1f}%")
    return lines
