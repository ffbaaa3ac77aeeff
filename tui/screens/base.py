"""What every dashboard screen shares: redrawing from the state, and the actions on an experiment."""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from typing import TYPE_CHECKING, cast

from textual.app import SystemCommand
from textual.binding import Binding
from textual.screen import Screen

if TYPE_CHECKING:
    from ..app import DashboardApp

EXPERIMENT_BINDINGS = [
    Binding("p", "experiment('pause')", "Pause/Resume", id="experiment.pause"),
    Binding("s", "experiment('stop')", "Stop", id="experiment.stop"),
    Binding("c", "experiment('concurrency')", "Concurrency", id="experiment.concurrency"),
    Binding("e", "experiment('export')", "Export", id="experiment.export"),
    Binding("D", "experiment('delete')", "Delete", id="experiment.delete", show=False),
]
"""Keys for the actions on an experiment, on every screen that has one selected or open."""

CONTROLS = frozenset({("experiment", "pause"), ("experiment", "stop"), ("experiment", "concurrency"), ("kill", None)})
"""Actions that need the daemon: shown greyed out, and off, while the dashboard is read-only."""


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
        for title, help_text, what in (
            (f"Pause or resume {name}", "p: start no new trials, or go on", "pause"),
            (f"Stop {name}", "s: end the experiment, terminating its running trials", "stop"),
            (f"Change concurrency of {name}", "c: how many trials run at a time", "concurrency"),
            (f"Export the best config of {name}", "e: write NAME-best.yaml here", "export"),
            (f"Delete {name}", "D: its trials, metrics and folder, for good (asks first)", "delete"),
        ):
            yield SystemCommand(title, help_text, partial(self.action_experiment, what))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Controls are off (greyed out in the footer) while no daemon has answered: the store is shown read-only."""
        if self.dashboard.state.read_only and (action, parameters[0] if parameters else None) in CONTROLS:
            return None
        return True

    def on_screen_resume(self) -> None:
        """Back on top: redraw everything."""
        self.refresh_view(force=True)

    def action_experiment(self, what: str) -> None:
        """An action on the experiment: 'pause' (or resume), 'stop' (after confirmation), 'concurrency' (ask for
        a new number of trials at a time), 'export' (write the best trial's params as YAML) or 'delete' (after
        confirmation)."""
        exp_id = self.experiment_id()
        if exp_id is None:
            return
        app = self.dashboard
        actions = {
            "pause": app.pause_or_resume,
            "stop": app.stop_experiment,
            "concurrency": app.change_concurrency,
            "export": app.export_best,
            "delete": app.delete_experiment,
        }
        actions[what](exp_id)
