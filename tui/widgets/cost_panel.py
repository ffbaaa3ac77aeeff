"""The cost panel: GPU-hours, energy and money of the experiment, of its best trial and of an average trial."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.text import Text
from textual.widgets import Static

from automl.states import TrialStatus
from automl.usage import JOULES_PER_KWH

from .. import format as fmt
from ..state import ExperimentSummary, TrialState


class CostPanel(Static):
    """What the experiment has cost so far, and what the current best trial cost."""

    DEFAULT_CSS = "CostPanel { height: auto; }"

    def show(
        self, summary: ExperimentSummary | None, trials: Mapping[int, TrialState], best: TrialState | None
    ) -> None:
        """Draw the panel for `summary` and its trials."""
        self.update(cost_text(summary, trials, best))


def cost_text(summary: ExperimentSummary | None, trials: Mapping[int, TrialState], best: TrialState | None) -> Text:
    """The panel's text."""
    if summary is None:
        return Text("no experiment open", style="dim")
    totals = summary.cost
    currency = totals.get("currency")
    priced = totals.get("money") is not None
    ended = [t for t in trials.values() if t.ended is not None and t.started is not None]
    rows: list[tuple[str, dict[str, Any]]] = [("experiment", totals)]
    if best is not None:
        rows.append((f"best trial #{best.id}", trial_cost(best, priced)))
    if ended:
        costs = [trial_cost(t, priced) for t in ended]
        rows.append(
            (
                "average trial",
                {
                    name: sum(c.get(name) or 0.0 for c in costs) / len(costs)
                    for name in ("gpu_seconds", "kwh", "money", "cpu_seconds")
                    if any(c.get(name) is not None for c in costs)
                },
            )
        )
    text = Text(no_wrap=True, overflow="ellipsis")
    text.append(f"{'':<16}{'GPU-hours':>10}{'kWh':>9}{'money':>11}{'CPU-hours':>11}\n", style="bold bright_black")
    for label, cost in rows:
        text.append(f"{label:<16}", style="bold" if label == "experiment" else "")
        text.append(f"{_hours(cost.get('gpu_seconds')):>10}", style="cyan")
        text.append(f"{_kwh(cost.get('kwh')):>9}", style="yellow")
        text.append(f"{fmt.money(cost.get('money'), currency):>11}", style="green")
        text.append(f"{_hours(cost.get('cpu_seconds')):>11}\n")
    running = [t for t in trials.values() if t.status == TrialStatus.RUNNING]
    gpus = sorted({g for t in running for g in t.gpus})
    text.append(f"{len(running)} running", style="bold green" if running else "bright_black")
    if gpus:
        text.append(f" on GPU {','.join(map(str, gpus))}")
    return text


def trial_cost(trial: TrialState, priced: bool = True) -> dict[str, Any]:
    """A trial's resource use: its accounting fields where the store has them, else GPU time from its duration;
    its money only when its experiment is `priced`."""
    cost: dict[str, Any] = {
        "gpu_seconds": trial.cost.get("gpu_seconds"),
        "cpu_seconds": trial.cost.get("cpu_seconds"),
        "money": trial.cost.get("cost") if priced else None,
    }
    if trial.cost.get("energy_j") is not None:
        cost["kwh"] = trial.cost["energy_j"] / JOULES_PER_KWH
    if cost["gpu_seconds"] is None and trial.started is not None and trial.ended is not None:
        cost["gpu_seconds"] = (trial.ended - trial.started) * len(trial.gpus)
    return cost


def _hours(seconds: float | None) -> str:
    return fmt.DASH if seconds is None else f"{seconds / 3600:.2f}"


def _kwh(kwh: float | None) -> str:
    return fmt.DASH if kwh is None else f"{kwh:.3f}"
