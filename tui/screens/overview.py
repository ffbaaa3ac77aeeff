"""The overview: every experiment with its status, progress, best value, cost and GPUs; the GPUs below."""

from __future__ import annotations

import time
from collections.abc import Hashable, Iterator, Mapping

from rich.text import Text
from textual import on
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.widgets import Footer, Static

from automl.views import listing_key

from .. import format as fmt
from ..braille import Series
from ..state import ACTIVE, ExperimentSummary
from ..widgets.chart import BrailleChart
from ..widgets.gpu_panel import GpuPanel
from ..widgets.status_bar import StatusBar, retry_countdown
from ..widgets.table import Cell, Column, LiveTable
from .base import EXPERIMENT_BINDINGS, DashboardScreen

COLUMNS = (
    Column("id", "ID", 8),
    Column("name", "NAME", 12, grow=True),
    Column("status", "STATUS", 10),
    Column("progress", "PROGRESS", 16),
    Column("best", "BEST", 9, align="right"),
    Column("eta", "ETA", 6, align="right"),
    Column("cost", "COST", 9, align="right"),
    Column("running", "RUN", 3, align="right"),
    Column("gpus", "GPUS", 7),
    Column("created", "CREATED", 11),
)
"""The overview's columns, the most important first; ID and NAME stay while the others scroll sideways."""


class OverviewScreen(DashboardScreen):
    """All experiments, newest and active first; Enter opens one."""

    BINDINGS = [
        Binding("enter", "open", "Open", id="experiment.open"),
        *EXPERIMENT_BINDINGS,
        Binding("space", "mark", "Mark to compare", id="experiments.mark", show=False),
        Binding("x", "clear_marks", "Clear marks", id="experiments.clear_marks", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self._seen: tuple[int, ...] = ()
        self.marks: dict[str, str] = {}  # experiment id -> the colour of its best-so-far curve

    def compose(self) -> ComposeResult:
        """Status bar, experiments, GPUs, footer."""
        yield StatusBar(id="status")
        table = LiveTable(
            COLUMNS,
            empty="no experiments yet: submit one with `automl submit CONFIG`",
            sideways=True,
            fixed_columns=2,
            id="experiments",
        )
        table.border_title = "Experiments"
        yield table
        with VerticalScroll(id="gpus-scroll") as gpus:
            gpus.border_title = "GPUs"
            yield GpuPanel(id="gpus")
        with Vertical(id="compare-panel") as compare:
            compare.border_title = "Best so far"
            yield Static(id="compare-legend")
            yield BrailleChart(empty="no finished trial yet", id="compare")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        """Start with the experiments focused."""
        self.query_one(LiveTable).focus()

    def experiment_id(self) -> str | None:
        """The experiment under the cursor."""
        key = self.query_one(LiveTable).cursor_key
        return None if key is None else str(key)

    def refresh_view(self, force: bool = False) -> None:
        """Redraw the experiments, the GPUs and the status bar."""
        state = self.dashboard.state
        versions = state.versions
        ticks = int(self.dashboard.clock()) // 5  # the ETAs move on
        seen = (
            versions.experiments,
            versions.gpus,
            versions.link,
            retry_countdown(state),
            ticks,
            versions.compared,
            tuple(self.marks.items()),
        )
        if not force and seen == self._seen:
            return
        self._seen = seen
        experiments = state.experiments
        order = sorted(experiments.values(), key=lambda e: listing_key(e.status, e.created))
        table = self.query_one(LiveTable)
        table.set_rows([e.id for e in order], self._cells, lambda key: 0)
        table.invalidate()
        names = {e.id: e.name for e in experiments.values()}
        gpu_count = (state.daemon or {}).get("gpus")
        self.query_one(GpuPanel).show(state.gpus, names, {}, gpu_count, state.node_gpus)
        active = sum(1 for e in experiments.values() if e.status in ACTIVE)
        count = len(experiments)
        headline = Text.assemble(
            ("automl", "bold"),
            f"  {count} experiment{'' if count == 1 else 's'} · ",
            (f"{active} active", "bold green" if active else ""),
            f" · {(len(state.gpus) if state.gpus else gpu_count or 0) + len(state.node_gpus)} GPUs",
        )
        self.query_one(StatusBar).show(headline, state)
        self._draw_compared()

    def _draw_compared(self) -> None:
        """The best-so-far curves of the marked experiments, overlaid (in place of the GPUs while any is marked)."""
        self.set_class(bool(self.marks), "-comparing")
        state = self.dashboard.state
        series, legend = [], Text(no_wrap=True, overflow="ellipsis")
        legend.append("best so far, by trials finished  ", style="bold")
        for exp_id, color in self.marks.items():
            curve = state.compared.get(exp_id, [])
            series.append(Series(exp_id, list(range(1, len(curve) + 1)), curve, color))
            summary = state.experiments.get(exp_id)
            legend.append("■ ", style=color)
            legend.append(f"{summary.name if summary else exp_id}  ")
        legend.append("(space marks, x clears)", style="bright_black")
        self.query_one("#compare", BrailleChart).set_series(series)
        self.query_one("#compare-legend", Static).update(legend)

    def action_mark(self) -> None:
        """Mark or unmark the experiment under the cursor to compare its best-so-far curve with the others'."""
        exp_id = self.experiment_id()
        if exp_id is None:
            return
        if exp_id in self.marks:
            del self.marks[exp_id]
        else:
            used = set(self.marks.values())
            free = [c for c in fmt.SERIES_COLORS if c not in used]
            if not free:
                self.notify(f"at most {len(fmt.SERIES_COLORS)} experiments can be compared", severity="warning")
                return
            self.marks[exp_id] = free[0]
        self.dashboard.compare(tuple(self.marks))
        self.query_one(LiveTable).invalidate()
        self.refresh_view()

    def action_clear_marks(self) -> None:
        """Compare nothing: the GPUs again."""
        self.marks.clear()
        self.dashboard.compare(())
        self.query_one(LiveTable).invalidate()
        self.refresh_view()

    def _cells(self, key: Hashable) -> Mapping[str, Cell]:
        summary = self.dashboard.state.experiments.get(str(key))
        return {} if summary is None else experiment_cells(summary, self.dashboard.clock(), self.marks.get(str(key)))

    def commands(self) -> Iterator[SystemCommand]:
        """Open any experiment, plus the actions on the one under the cursor."""
        for summary in self.dashboard.state.experiments.values():
            yield SystemCommand(
                f"Open {summary.name} [{summary.id}]",
                f"{summary.status}, {summary.finished}/{summary.max_trials or '∞'} trials",
                lambda exp_id=summary.id: self.dashboard.open_experiment(exp_id),
            )
        yield from super().commands()

    def action_open(self) -> None:
        """Open the experiment under the cursor."""
        if (exp_id := self.experiment_id()) is not None:
            self.dashboard.open_experiment(exp_id)

    @on(LiveTable.Selected)
    def _selected(self, event: LiveTable.Selected) -> None:
        self.dashboard.open_experiment(str(event.key))


def experiment_cells(summary: ExperimentSummary, now: float, mark: str | None = None) -> dict[str, Cell]:
    """One experiment's row; `mark` is the colour of its curve when it is marked to compare."""
    style = fmt.status_style(summary.status)
    total = summary.max_trials
    fraction = summary.finished / total if total else None
    filled, empty = fmt.bar(fraction, 6)
    progress = Text.assemble((filled, style), (empty, "bright_black"), f" {summary.finished}/{total if total else '∞'}")
    cost = summary.cost
    if cost.get("money") is not None:
        cost_text = fmt.money(cost["money"], cost.get("currency"))
    elif cost.get("gpu_seconds"):
        cost_text = f"{cost['gpu_seconds'] / 3600:.1f}GPUh"
    else:
        cost_text = fmt.DASH
    return {
        "id": Text(summary.id, style=mark or "bright_black"),
        "name": Text(summary.name, style="bold"),
        "status": Text(fmt.status_label(summary.status), style=style),
        "progress": progress,
        "best": Text(fmt.number(summary.best_value, 9), style="bold yellow" if summary.best_value is not None else ""),
        "cost": cost_text,
        "gpus": ",".join(map(str, summary.gpus_in_use)) or fmt.DASH,
        "running": str(summary.running) if summary.running else fmt.DASH,
        "eta": fmt.duration(summary.eta(now)),
        "created": time.strftime("%m-%d %H:%M", time.localtime(summary.created)),
    }
