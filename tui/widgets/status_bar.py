"""The one-line bar at the top of every screen: what is shown on the left, the daemon link on the right."""

from __future__ import annotations

import time

from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from ..state import DashboardState


class StatusBar(Static):
    """A headline on the left and the state of the daemon connection on the right."""

    DEFAULT_CSS = """
    StatusBar { height: 1; background: $panel; padding: 0 1; }
    StatusBar.-down { background: $error-darken-2; }
    """

    def show(self, headline: Text, state: DashboardState) -> None:
        """Draw the bar."""
        link = link_text(state)
        self.set_class(state.connected is False and not state.read_only, "-down")
        grid = Table.grid(expand=True)
        grid.add_column(ratio=1, no_wrap=True, overflow="ellipsis")
        grid.add_column(justify="right", no_wrap=True, min_width=2)
        grid.add_row(headline, Text("  ") + link)
        self.update(grid)


def link_text(state: DashboardState) -> Text:
    """'● daemon' (with the store's fault, if it takes no writes), '○ connecting…', '◌ read-only: no daemon' (none
    answered yet) or '✗ disconnected (why), retrying in 3s'."""
    if state.connected is None:
        return Text("○ connecting…", style="yellow")
    if state.connected and state.store_fault:
        error = str(state.store_fault.get("error") or "fault")
        return Text.assemble(("●", "green"), " daemon  ", (f"⚠ store takes no writes: {error[:40]}", "bold yellow"))
    if state.connected:
        return Text.assemble(("●", "green"), " daemon")
    if state.read_only:
        return Text("◌ read-only: no daemon", style="bold yellow")
    wait = retry_countdown(state)
    retry = f"retrying in {wait}s" if wait else "retrying…"
    reason = state.link_note if len(state.link_note) <= 40 else state.link_note[:39] + "…"
    return Text(f"✗ disconnected ({reason}), {retry}", style="bold")


def retry_countdown(state: DashboardState) -> int | None:
    """While the daemon is away, the whole seconds until it is tried again (what the bar counts down), else None:
    a term for the screens' change checks, so that the bar redraws once a second while it counts."""
    if state.connected is not False:
        return None
    return max(0, round(state.retry_at - time.monotonic())) if state.retry_at else 0
