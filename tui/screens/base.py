"""What every dashboard screen shares: redrawing from the state, and the actions on an experiment."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, cast

from textual.app import SystemCommand
from textual.binding import Binding
from textual.screen import Screen

if TYPE_CHECKING:
    from ..app import DashboardApp

EXPERIMENT_BINDINGS = [
    Binding("p", "pause_resume", "Pause/Resume", id="experiment.pause"),
    Binding("s", "stop", "Stop", id="experiment.stop"),
    Binding("c", "concurrency", "Concurrency", id="experiment.concurrency"),
    Binding("e", "export", "Export", id="experiment.export"),
]
"""Keys for the actions on an experiment, on every screen that has one selected or open."""


class DashboardScreen(Screen):
    """A screen drawn from the app's `DashboardState`; `refresh_view` redraws what changed since last time."""

    @property
    def dashboard(self) -> DashboardApp:
        """The app, typed."""
        return cast("DashboardApp", self.app)

    def refresh_view(self, force: bool = False) -> None:
        """Redraw the parts whose data changed (everything when `force`)."""

    def experiment_id(self) -> str | None:
        """The experiment the experiment actions apply to."""
        return None

    def commands(self) -> Iterator[SystemCommand]:
        """This screen's entries in the command palette."""
        exp_id = self.experiment_id()
        if exp_id is None:
            return
        summary = self.dashboard.state.experiments.get(exp_id)
        name = summary.name if summary else exp_id
        yield SystemCommand(f"Pause or resume {name}", "p: start no new trials, or go on",
                            self.action_pause_resume)
        yield SystemCommand(f"Stop {name}", "s: end the experiment, terminating its running trials",
                            self.action_stop)
        yield SystemCommand(f"Change concurrency of {name}", "c: how many trials run at a time",
                            self.action_concurrency)
        yield SystemCommand(f"Export the best config of {name}", "e: write NAME-best.yaml here",
                            self.action_export)

    def on_screen_resume(self) -> None:
        """Back on top: redraw everything."""
        self.refresh_view(force=True)

    def action_pause_resume(self) -> None:
        """Pause a running experiment, resume a paused one."""
        if (exp_id := self.experiment_id()) is not None:
            self.dashboard.pause_or_resume(exp_id)

    def action_stop(self) -> None:
        """Stop the experiment, after confirmation."""
        if (exp_id := self.experiment_id()) is not None:
            self.dashboard.stop_experiment(exp_id)

    def action_concurrency(self) -> None:
        """Ask for a new number of trials at a time."""
        if (exp_id := self.experiment_id()) is not None:
            self.dashboard.change_concurrency(exp_id)

    def action_export(self) -> None:
        """Write the best trial's params as YAML."""
        if (exp_id := self.experiment_id()) is not None:
            self.dashboard.export_best(exp_id)
