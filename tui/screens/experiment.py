"""The experiment dashboard: trials table, learning curves, best-so-far, GPUs and cost of one experiment."""

from __future__ import annotations

from collections.abc import Hashable, Iterator, Mapping

from rich.text import Text
from textual import events, on
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Container, Vertical, VerticalScroll
from textual.widgets import Footer, Static

from automl.errors import UserError
from automl.states import ExperimentStatus, TrialStatus

from .. import format as fmt
from .. import trial_rows
from ..braille import Series
from ..prefs import load_columns, save_columns
from ..scatter import scatter
from ..state import ExperimentSummary, TrialState
from ..widgets.chart import BrailleChart
from ..widgets.cost_panel import CostPanel
from ..widgets.dialogs import ColumnsDialog
from ..widgets.gpu_panel import GpuPanel
from ..widgets.importance_panel import ImportancePanel
from ..widgets.status_bar import StatusBar, retry_countdown
from ..widgets.table import Cell, Column, LiveTable
from .base import EXPERIMENT_BINDINGS, DashboardScreen

PANELS = (
    ("curves", "Curves"),
    ("progress", "Best so far"),
    ("gpus", "GPUs"),
    ("cost", "Cost"),
    ("importance", "Importance"),
    ("scatter", "Param vs value"),
)
MAX_MARKED = 20
WIDE = (150, 36)
TALL = 34


class ExperimentScreen(DashboardScreen):
    """One experiment: its trials on top and one panel at a time below; on a large terminal the trials and the
    GPUs on the left, the curves, the best so far and the cost on the right."""

    BINDINGS = [
        EXPERIMENT_BINDINGS[0],
        EXPERIMENT_BINDINGS[1],
        Binding("k", "kill", "Kill", id="trial.kill"),
        EXPERIMENT_BINDINGS[2],
        EXPERIMENT_BINDINGS[3],
        EXPERIMENT_BINDINGS[4],
        Binding("escape", "back", "Back", id="dashboard.back"),
        Binding("enter", "details", "Trial details", id="trial.details", show=False),
        Binding("space", "mark", "Mark for curves", id="trials.mark", show=False),
        Binding("x", "clear_marks", "Clear marks", id="trials.clear_marks", show=False),
        Binding("f", "filter", "Filter by status", id="trials.filter", show=False),
        Binding("o", "sort", "Sort by next column", id="trials.sort", show=False),
        Binding("r", "reverse", "Reverse the order", id="trials.reverse", show=False),
        Binding("v", "columns", "Columns", id="trials.columns", show=False),
        Binding("a", "scatter_param", "Next param to plot", id="scatter.next_param", show=False),
        *(
            Binding(str(n), f"panel('{key}')", title, id=f"panel.{key}", show=False)
            for n, (key, title) in enumerate(PANELS, start=1)
        ),
    ]

    def __init__(self, exp_id: str) -> None:
        super().__init__()
        self.exp_id = exp_id
        self.marks: dict[int, str] = {}
        self.sort_column, self.descending = "id", True
        self.status_filter: str | None = None
        self.panel = "curves"
        self._seen: dict[str, object] = {}
        self._params: list[str] = []
        self._param_basis: object = None
        self._param_rank: dict[str, float] = {}  # importance when the columns were ordered: kept, so they stay put
        self._chosen_columns: list[tuple[str, bool]] | None = None
        self._columns_version = 0
        self.scatter_param: str | None = None  # None: the first parameter column (the most important)
        self._best_id: int | None = None

    def compose(self) -> ComposeResult:
        """Status bar, trials, the panel tabs, the panels, footer."""
        yield StatusBar(id="status")
        with Container(id="main"):
            table = LiveTable(empty="no trials yet", id="trials")
            yield table
            yield Static(id="tabs")
            with Vertical(id="curves-panel", classes="panel -active"):
                yield Static(id="legend")
                yield BrailleChart(empty="no curves yet: trials report with trial.report(value)", id="curves")
            with Vertical(id="progress-panel", classes="panel"):
                yield Static(id="progress-legend")
                yield BrailleChart(empty="no finished trial yet", id="progress")
            with VerticalScroll(id="gpus-panel", classes="panel"):
                yield GpuPanel(id="gpus")
            with VerticalScroll(id="cost-panel", classes="panel"):
                yield CostPanel(id="cost")
            with VerticalScroll(id="importance-panel", classes="panel"):
                yield ImportancePanel(id="importance")
            with Vertical(id="scatter-panel", classes="panel"):
                yield Static(id="scatter-legend")
                yield BrailleChart(empty="no succeeded trial yet", id="scatter")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        """Titles, and the trials focused."""
        for key, title in PANELS:
            self.query_one(f"#{key}-panel").border_title = title
        self.query_one("#trials", LiveTable).focus()
        self._chosen_columns = load_columns(self.dashboard.home, self.exp_id)
        self._lay_out(self.size.width, self.size.height)

    def on_resize(self, event: events.Resize) -> None:
        """Side by side on a large terminal, stacked with one panel at a time on a small one."""
        self._lay_out(event.size.width, event.size.height)

    def _lay_out(self, width: int, height: int) -> None:
        self.set_class(width >= WIDE[0] and height >= WIDE[1], "-wide")
        self.set_class(height >= TALL, "-tall")
        self.refresh_view(force=True)

    def experiment_id(self) -> str | None:
        """This screen's experiment."""
        return self.exp_id

    @property
    def summary(self) -> ExperimentSummary | None:
        """The experiment's headline figures."""
        return self.dashboard.state.experiments.get(self.exp_id)

    @property
    def cursor_trial(self) -> TrialState | None:
        """The trial under the cursor."""
        key = self.query_one("#trials", LiveTable).cursor_key
        return None if key is None else self.dashboard.state.trials.get(int(key))

    # drawing

    def refresh_view(self, force: bool = False) -> None:
        """Redraw the parts whose data changed."""
        if not self.is_mounted:
            return
        now = self.dashboard.clock()
        best = self.dashboard.state.best_trial()
        self._best_id = None if best is None else best.id
        chosen = self._chosen(best)
        seen = self._part_inputs(now, chosen)
        changed = {part for part, value in seen.items() if force or self._seen.get(part) != value}
        self._seen = seen
        if changed:
            self._draw_parts(changed, now, chosen, best)

    def _part_inputs(self, now: float, chosen: list[tuple[TrialState, str]]) -> dict[str, tuple]:
        """What each part is drawn from: a part is redrawn when its entry differs from the last drawing's."""
        state = self.dashboard.state
        versions = state.versions
        ticks = int(now) if any(t.status == TrialStatus.RUNNING for t in state.trials.values()) else 0
        return {
            "trials": (
                versions.trials,
                versions.experiments,
                ticks,
                self.sort_column,
                self.descending,
                self.status_filter,
                tuple(self.marks.items()),
                versions.importance,
                self._columns_version,
            ),
            "curves": (tuple((t.id, t.stamp, color) for t, color in chosen), self.size),
            "progress": (versions.results, self.size),
            "gpus": (versions.gpus, versions.results),
            "cost": (versions.results, versions.experiments),
            "importance": (versions.importance, self.size),
            "scatter": (versions.results, versions.experiments, self._scatter_param(), self.size),
            "bar": (versions.link, versions.experiments, versions.results, retry_countdown(state), int(now) // 5),
            "tabs": (self.panel, self.has_class("-wide")),
        }

    def _draw_parts(
        self, changed: set[str], now: float, chosen: list[tuple[TrialState, str]], best: TrialState | None
    ) -> None:
        """Redraw the parts named in `changed`."""
        state = self.dashboard.state
        if "trials" in changed:
            self._draw_trials(now)
        if "curves" in changed:
            self._draw_curves(chosen, best)
        if "progress" in changed:
            self._draw_progress()
        if "gpus" in changed:
            self._draw_gpus()
        if "cost" in changed:
            self.query_one(CostPanel).show(self.summary, state.trials, best)
        if "importance" in changed:
            self.query_one(ImportancePanel).show(state.importance, state.importance_from)
        if "scatter" in changed:
            self._draw_scatter()
        if "bar" in changed:
            self.query_one(StatusBar).show(self._headline(best), state)
        if "tabs" in changed:
            self._draw_tabs()

    def _draw_gpus(self) -> None:
        """Show the GPUs with the running trials' processes and the experiments' names."""
        state = self.dashboard.state
        pids = {
            t.pid: t.id
            for t in state.trials.values()
            if t.pid is not None and t.node is None and t.status == TrialStatus.RUNNING
        }
        names = {e.id: e.name for e in state.experiments.values()}
        self.query_one(GpuPanel).show(state.gpus, names, pids, (state.daemon or {}).get("gpus"), state.node_gpus)

    def _draw_trials(self, now: float) -> None:
        state = self.dashboard.state
        summary = self.summary
        maximize = summary.maximize if summary else True
        if state.importance and not self._param_rank:
            self._param_rank = dict(state.importance)
        names = tuple(summary.param_names) if summary else ()
        basis = (names, summary.constant_params if summary else None, tuple(self._param_rank))
        if basis != self._param_basis:
            constant = summary.constant_params if summary else ()
            self._params = trial_rows.param_columns(names, constant, self._param_rank)
            self._param_basis = basis
        table = self.query_one("#trials", LiveTable)
        table.set_columns(trial_rows.arranged(self._columns_before_choice(), self._chosen_columns))
        table.sort_column, table.sort_reverse = self.sort_column, self.descending
        keys = trial_rows.order(state.trials, self.sort_column, self.descending, self.status_filter, now, maximize)
        trials, params, best_id, marks = state.trials, self._params, self._best_id, self.marks
        cost = summary.cost if summary else {}
        currency = cost.get("currency") if cost.get("money") is not None else None

        def row(key: Hashable) -> Mapping[str, Cell]:
            trial = trials.get(key)
            return (
                {}
                if trial is None
                else trial_rows.cells(trial, params, best_id, marks.get(trial.id), maximize, now, currency)
            )

        def stamp(key: Hashable) -> object:
            trial = trials.get(key)
            return (
                None
                if trial is None
                else (
                    trial.stamp,
                    trial.id == best_id,
                    marks.get(trial.id),
                    int(now) if trial.status == TrialStatus.RUNNING else 0,
                    currency,
                )
            )

        table.set_rows(keys, row, stamp)
        self._title_trials()

    def _title_trials(self) -> None:
        table = self.query_one("#trials", LiveTable)
        shown = "all" if self.status_filter is None else fmt.STATUS_WORD.get(self.status_filter, self.status_filter)
        table.border_title = (
            f"Trials · {shown} · {table.position}  [dim]enter details · space mark · f filter · o sort[/]"
        )

    def _chosen(self, best: TrialState | None) -> list[tuple[TrialState, str]]:
        """The trials whose curves are shown, with their colours: the marked ones, else the one under the cursor;
        and the best trial."""
        trials = self.dashboard.state.trials
        chosen: list[tuple[TrialState, str]] = []
        if self.marks:
            chosen = [(trials[i], color) for i, color in self.marks.items() if i in trials]
        elif (cursor := self.cursor_trial) is not None and cursor is not best:
            chosen.append((cursor, fmt.SERIES_COLORS[0]))
        if best is not None and all(t is not best for t, _ in chosen):
            chosen.append((best, fmt.BEST_COLOR))
        return chosen

    def _draw_curves(self, chosen: list[tuple[TrialState, str]], best: TrialState | None) -> None:
        summary = self.summary
        series = [Series(f"#{t.id}", t.steps, t.values, color) for t, color in chosen]
        self.query_one("#curves", BrailleChart).set_series(series)
        legend = Text(no_wrap=True, overflow="ellipsis")
        legend.append(f"{summary.metric if summary else 'value'} by step  ", style="bold")
        for trial, color in chosen:
            legend.append("■ ", style=color)
            legend.append(f"#{trial.id}{' best' if trial is best else ''}  ")
        if not self.marks:
            legend.append("(space marks trials to compare)", style="bright_black")
        self.query_one("#legend", Static).update(legend)

    def _draw_progress(self) -> None:
        summary = self.summary
        xs, values, running_best = self.dashboard.state.best_so_far()
        self.query_one("#progress", BrailleChart).set_series(
            [
                Series("trials", xs, values, "bright_black", points=True),
                Series("best so far", *_steps(xs, running_best), fmt.BEST_COLOR),
            ]
        )
        progress = Text.assemble(
            (f"best {summary.metric if summary else 'value'} so far ", "bold"),
            (f"({summary.mode if summary else 'maximize'}, by trials finished)  ", "bright_black"),
            ("■ ", fmt.BEST_COLOR),
            "best  ",
            ("⠂ ", "bright_black"),
            f"each trial ({len(xs)})",
        )
        self.query_one("#progress-legend", Static).update(progress)

    def _scatter_param(self) -> str | None:
        """The parameter the scatter plots: the one chosen, else the first parameter column."""
        if self.scatter_param in self._params:
            return self.scatter_param
        return self._params[0] if self._params else None

    def _draw_scatter(self) -> None:
        summary = self.summary
        param = self._scatter_param()
        chart = self.query_one("#scatter", BrailleChart)
        legend = Text(no_wrap=True, overflow="ellipsis")
        if param is None or summary is None:
            chart.set_series([])
            self.query_one("#scatter-legend", Static).update(legend)
            return
        kind = summary.param_kinds.get(param)
        plot = scatter(self.dashboard.state.trials.values(), param, kind, self._best_id)
        chart.set_series(plot.series, x_ticks=plot.ticks, x_range=plot.x_range)
        legend.append(f"{summary.metric} by {param}", style="bold")
        legend.append(f" ({plot.axis} axis)  ", style="bright_black")
        legend.append("■ ", style=fmt.BEST_COLOR)
        legend.append("best  ")
        legend.append("a: next param", style="bright_black")
        self.query_one("#scatter-legend", Static).update(legend)

    def _draw_tabs(self) -> None:
        tabs = Text(no_wrap=True)
        for n, (key, title) in enumerate(PANELS, start=1):
            active = key == self.panel
            tabs.append(f" {n} ", style="bold reverse" if active else "bold")
            tabs.append(f"{title} ", style="bold reverse" if active else "bright_black")
            tabs.append(" ")
        self.query_one("#tabs", Static).update(tabs)
        for key, _ in PANELS:
            self.query_one(f"#{key}-panel").set_class(key == self.panel, "-active")

    def _headline(self, best: TrialState | None) -> Text:
        summary = self.summary
        if summary is None:
            return Text(f"experiment {self.exp_id}: loading…")
        total = summary.max_trials
        headline = Text.assemble(
            (summary.name, "bold"),
            " ",
            (fmt.status_label(summary.status), fmt.status_style(summary.status)),
            f"  {summary.finished}/{total or '∞'} done · {summary.running}/{summary.concurrency} running",
        )
        if best is not None:
            headline.append(" · best ")
            headline.append(fmt.number(best.value, 8), style=f"bold {fmt.BEST_COLOR}")
            headline.append(f" #{best.id}", style="bright_black")
        eta = summary.eta(self.dashboard.clock())
        if eta is not None:
            headline.append(f" · ETA {fmt.duration(eta)}")
        if summary.status == ExperimentStatus.FAILED and summary.error:
            headline.append(f" · {summary.error}", style=fmt.status_style(ExperimentStatus.FAILED))
        elif summary.note:
            headline.append(f" · {summary.note}", style="bright_black")
        return headline

    # reacting

    @on(LiveTable.Highlighted, "#trials")
    def _highlighted(self, event: LiveTable.Highlighted) -> None:
        self._title_trials()
        if not self.marks:
            self.refresh_view()

    @on(LiveTable.Selected, "#trials")
    def _selected(self, event: LiveTable.Selected) -> None:
        self.dashboard.open_trial(self.exp_id, int(event.key))

    @on(LiveTable.HeaderClicked, "#trials")
    def _header_clicked(self, event: LiveTable.HeaderClicked) -> None:
        if event.column == self.sort_column:
            self.descending = not self.descending
        else:
            self.sort_column = event.column
            self.descending = trial_rows.natural_descending(event.column, self._maximize())
        self.refresh_view()

    def _maximize(self) -> bool:
        summary = self.summary
        return summary.maximize if summary else True

    # actions

    def action_kill(self) -> None:
        """Kill the trial under the cursor, after confirmation."""
        trial = self.cursor_trial
        if trial is None:
            self.notify("no trial selected", severity="warning")
            return
        self.dashboard.kill_trial(self.exp_id, trial.id, trial.status)

    def action_back(self) -> None:
        """Back to the overview."""
        self.dashboard.close_experiment()

    def action_details(self) -> None:
        """Open the trial under the cursor."""
        trial = self.cursor_trial
        if trial is not None:
            self.dashboard.open_trial(self.exp_id, trial.id)

    def action_mark(self) -> None:
        """Mark or unmark the trial under the cursor for the curves chart."""
        trial = self.cursor_trial
        if trial is None:
            return
        if trial.id in self.marks:
            del self.marks[trial.id]
        elif len(self.marks) >= MAX_MARKED:
            self.notify(f"at most {MAX_MARKED} trials can be marked", severity="warning")
            return
        else:
            used = set(self.marks.values())
            free = [c for c in fmt.SERIES_COLORS if c not in used]
            self.marks[trial.id] = free[0] if free else fmt.SERIES_COLORS[len(self.marks) % len(fmt.SERIES_COLORS)]
        self.refresh_view()

    def action_clear_marks(self) -> None:
        """Unmark every trial."""
        self.marks.clear()
        self.refresh_view()

    def mark_best(self, count: int = 10) -> None:
        """Mark the `count` best finished trials."""
        state = self.dashboard.state
        ranked = trial_rows.order(
            state.trials, "best", self._maximize(), TrialStatus.SUCCEEDED, self.dashboard.clock(), self._maximize()
        )
        self.marks = {
            trial_id: fmt.SERIES_COLORS[n % len(fmt.SERIES_COLORS)] for n, trial_id in enumerate(ranked[:count])
        }
        self.refresh_view()

    def action_filter(self) -> None:
        """Show only the trials of the next status (all, running, succeeded, …)."""
        options = trial_rows.filters(self.dashboard.state.trials.values())
        position = options.index(self.status_filter) if self.status_filter in options else 0
        self.status_filter = options[(position + 1) % len(options)]
        self.refresh_view()

    def set_filter(self, status: str | None) -> None:
        """Show only the trials with `status` (None: all)."""
        self.status_filter = status
        self.refresh_view()

    def action_sort(self) -> None:
        """Sort by the next column in turn."""
        columns = trial_rows.SORTABLE
        position = columns.index(self.sort_column) if self.sort_column in columns else -1
        self.sort_by(columns[(position + 1) % len(columns)])

    def sort_by(self, column: str) -> None:
        """Sort by `column` in its natural direction."""
        self.sort_column = column
        self.descending = trial_rows.natural_descending(column, self._maximize())
        self.refresh_view()

    def action_reverse(self) -> None:
        """Reverse the order."""
        self.descending = not self.descending
        self.refresh_view()

    def action_columns(self) -> None:
        """Pick, reorder and hide the table's columns; the choice is remembered for this experiment."""
        current = self._columns_before_choice()
        shown = {c.key for c in trial_rows.arranged(current, self._chosen_columns)}
        ordered = trial_rows.arranged(current, [(key, True) for key, _ in self._chosen_columns or []])
        self.app.push_screen(ColumnsDialog([(c.key, c.label, c.key in shown) for c in ordered]), self.choose_columns)

    def _columns_before_choice(self) -> list[Column]:
        """The table's columns before the user's choice: the params in their order, NODE once a trial ran on a
        cluster's node."""
        return trial_rows.columns(self._params, trial_rows.on_nodes(self.dashboard.state.trials.values()))

    def choose_columns(self, chosen: list[tuple[str, bool]] | None) -> None:
        """Show the columns `chosen` (key, shown) in that order (None: the defaults), and remember them."""
        self._chosen_columns = chosen
        self._columns_version += 1
        try:
            save_columns(self.dashboard.home, self.exp_id, chosen)
        except UserError as e:
            self.notify(f"the columns apply until you quit: {e}", severity="warning")
        self.refresh_view()

    def action_scatter_param(self) -> None:
        """Plot the value against the next parameter column."""
        if not self._params:
            return
        current = self._scatter_param()
        at = self._params.index(current) if current in self._params else -1
        self.plot_against(self._params[(at + 1) % len(self._params)])

    def plot_against(self, param: str) -> None:
        """Show the scatter of the value against `param`."""
        self.scatter_param, self.panel = param, "scatter"
        self.refresh_view()

    def order_by_importance(self) -> None:
        """Order the parameter columns by the importance measured now."""
        self._param_rank = dict(self.dashboard.state.importance)
        self.refresh_view()

    def _default_columns(self) -> None:
        self.choose_columns(None)

    def action_panel(self, key: str) -> None:
        """Show one of the panels (on a small terminal, where one shows at a time)."""
        self.panel = key
        self.refresh_view()

    def commands(self) -> Iterator[SystemCommand]:
        """Actions on the experiment and its trials, views of the table and the panels."""
        yield from super().commands()
        trial = self.cursor_trial
        if trial is not None:
            yield SystemCommand(
                f"Kill trial #{trial.id}", "k: end this trial; the experiment goes on", self.action_kill
            )
            yield SystemCommand(f"Details of trial #{trial.id}", "enter: params, curve and log", self.action_details)
        yield SystemCommand("Mark the 10 best trials", "compare their curves", self.mark_best)
        yield SystemCommand(
            "Clear marks", "x: curves of the trial under the cursor and the best", self.action_clear_marks
        )
        for column in trial_rows.SORTABLE:
            yield SystemCommand(
                f"Sort trials by {column}", "o: next column, r: reverse", lambda column=column: self.sort_by(column)
            )
        for status in trial_rows.filters(self.dashboard.state.trials.values()):
            yield SystemCommand(
                f"Show {status or 'all'} trials", "f: next status", lambda status=status: self.set_filter(status)
            )
        yield SystemCommand("Choose columns", "v: pick, reorder and hide the table's columns", self.action_columns)
        yield SystemCommand("Default columns", "forget the columns chosen for this experiment", self._default_columns)
        yield SystemCommand(
            "Order parameters by importance", "as measured now (it is kept until then)", self.order_by_importance
        )
        for param in self._params:
            yield SystemCommand(
                f"Plot the value against {param}", "a: the next parameter", lambda param=param: self.plot_against(param)
            )
        for n, (key, title) in enumerate(PANELS, start=1):
            yield SystemCommand(f"Show the {title} panel", f"{n}", lambda key=key: self.action_panel(key))
        yield SystemCommand("Back to all experiments", "escape", self.action_back)


def _steps(xs: list[float], ys: list[float]) -> tuple[list[float], list[float]]:
    """A staircase through the points: the level holds until the next point, then jumps."""
    step_xs, step_ys = [], []
    for n, (x, y) in enumerate(zip(xs, ys, strict=True)):
        if n:
            step_xs.append(x)
            step_ys.append(ys[n - 1])
        step_xs.append(x)
        step_ys.append(y)
    return step_xs, step_ys
