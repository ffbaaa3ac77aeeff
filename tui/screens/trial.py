"""A trial's details: all its params, its curve beside the best trial's, and the tail of its log."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Footer, Log, Static

from automl.launchers.base import NNI_LOG_FILE, STDERR_FILE, STDOUT_FILE
from automl.states import TrialStatus

from .. import format as fmt
from ..braille import Series
from ..messages import LogRead
from ..state import TrialState
from ..widgets.chart import BrailleChart
from ..widgets.status_bar import StatusBar, retry_countdown
from .base import EXPERIMENT_BINDINGS, DashboardScreen

TAIL_BYTES = 64 * 1024
"""How much of a log is shown when it is opened."""

MAX_READ = 1024 * 1024
"""The most read in one go, so that a chatty trial cannot stall the dashboard."""

LOG_FILES = {"stdout": STDOUT_FILE, "stderr": STDERR_FILE, "trial.log": NNI_LOG_FILE}
"""The trial's output streams; `trial.log` is where `import nni` sends an NNI script's print() and logging."""


class TrialScreen(DashboardScreen):
    """One trial of the open experiment; its log is followed while it runs."""

    BINDINGS = [
        Binding("k", "kill", "Kill", id="trial.kill"),
        Binding("l", "switch_log", "stdout/stderr", id="trial.switch_log"),
        EXPERIMENT_BINDINGS[3],
        Binding("escape", "back", "Back", id="dashboard.back"),
    ]

    def __init__(self, exp_id: str, trial_id: int) -> None:
        super().__init__()
        self.exp_id, self.trial_id = exp_id, trial_id
        self.stream = "stdout"
        self._chosen = False  # the user picked the stream: it is no longer switched to trial.log by itself
        self._offset = 0
        self._empty_shown = False  # the log shows "(empty)", not lines of the trial's
        self._seen: tuple[object, ...] = ()

    def compose(self) -> ComposeResult:
        """Status bar, params and curve side by side, the log, footer."""
        yield StatusBar(id="status")
        with Horizontal(id="trial-top"):
            with VerticalScroll(id="params-box"):
                yield Static(id="params")
            yield BrailleChart(empty="no reports yet", id="trial-curve")
        yield Log(max_lines=2000, highlight=False, id="log")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        """Titles, and start following the log."""
        self.query_one("#params-box").border_title = f"Trial #{self.trial_id}"
        self.query_one("#trial-curve").border_title = "Curve"
        if self.log_path("trial.log").exists():
            self.stream = "trial.log"
        self._title_log()
        self.refresh_view(force=True)
        self._follow_log()
        self.set_interval(1.0, self._follow_log)

    def experiment_id(self) -> str | None:
        """The trial's experiment."""
        return self.exp_id

    @property
    def trial(self) -> TrialState | None:
        """The trial, as the dashboard knows it now."""
        return self.dashboard.state.trials.get(self.trial_id)

    def log_path(self, stream: str | None = None) -> Path:
        """Where the trial's output is written."""
        return (
            self.dashboard.home
            / "experiments"
            / self.exp_id
            / "trials"
            / str(self.trial_id)
            / LOG_FILES[stream or self.stream]
        )

    def refresh_view(self, force: bool = False) -> None:
        """Redraw the params, the curve and the status bar when the trial changed."""
        if not self.is_mounted:
            return
        state = self.dashboard.state
        trial = self.trial
        now = self.dashboard.clock()
        seen = (
            None if trial is None else trial.stamp,
            state.versions.curves,
            state.versions.link,
            int(now) if trial is not None and trial.status == TrialStatus.RUNNING else 0,
            retry_countdown(state),
        )
        if not force and seen == self._seen:
            return
        self._seen = seen
        summary = state.summary
        maximize = summary.maximize if summary else True
        best = state.best_trial()
        headline = Text.assemble((summary.name if summary else self.exp_id, "bold"), (f" #{self.trial_id} ", "bold"))
        if trial is not None:
            headline.append(fmt.status_label(trial.status), style=fmt.status_style(trial.status))
            headline.append(
                f" {fmt.duration(trial.duration(now))} · last {fmt.number(trial.shown_last(), 7)}"
                f" · best {fmt.number(trial.shown_best(maximize), 7)}"
            )
        self.query_one(StatusBar).show(headline, state)
        self.query_one("#params", Static).update(params_text(trial))
        series = []
        if best is not None and best is not trial:
            series.append(Series(f"best #{best.id}", best.steps, best.values, fmt.BEST_COLOR))
        if trial is not None:
            series.append(Series(f"#{trial.id}", trial.steps, trial.values, fmt.SERIES_COLORS[0]))
        chart = self.query_one("#trial-curve", BrailleChart)
        chart.set_series(series)
        chart.border_subtitle = Text.assemble(
            ("■ ", fmt.SERIES_COLORS[0]),
            f"#{self.trial_id}  ",
            *((("■ ", fmt.BEST_COLOR), f"best #{best.id}") if best is not None and best is not trial else ()),
        )

    def streams(self) -> list[str]:
        """The output streams to switch between: stdout, stderr, and NNI's trial.log once there is one."""
        return [name for name in LOG_FILES if name != "trial.log" or self.log_path(name).exists()]

    def _next_stream(self) -> str:
        streams = self.streams()
        return streams[(streams.index(self.stream) + 1) % len(streams)]

    def _title_log(self) -> None:
        other = self._next_stream()
        log = self.query_one("#log", Log)
        where = self.log_path().relative_to(self.dashboard.home)
        log.border_title = f"{self.stream} · $AUTOML_HOME/{where}"
        log.border_subtitle = f"l: {other}"

    def _follow_log(self) -> None:
        if not self._chosen and self.stream == "stdout" and self._offset == 0 and self.log_path("trial.log").exists():
            self._show_stream("trial.log")  # an NNI script: `import nni` sent its output there
            return
        self._read_log(str(self.log_path()), self._offset)

    @work(thread=True, exclusive=True, group="trial-log")
    def _read_log(self, path: str, offset: int) -> None:
        """Read what was added to the log since `offset` (its tail when opened), in a worker thread."""
        try:
            with open(path, "rb") as f:
                size = f.seek(0, 2)
                reset = offset == 0 or size < offset
                start = max(0, size - TAIL_BYTES) if reset else offset
                end = min(size, start + MAX_READ)
                f.seek(start)
                data = f.read(end - start)
        except FileNotFoundError:
            if offset == 0:
                self.post_message(LogRead(path, "", True, 0))
            return
        if not data and not reset:
            return
        text = data.decode(errors="replace")
        if reset and start > 0:
            text = text.partition("\n")[2]
        self.post_message(LogRead(path, text, reset, end))

    @on(LogRead)
    def _log_read(self, message: LogRead) -> None:
        if message.path != str(self.log_path()):
            return
        log = self.query_one("#log", Log)
        if message.reset:
            log.clear()
        self._offset = message.end
        self._title_log()
        if message.text:
            if self._empty_shown:
                log.clear()
            self._empty_shown = False
            log.write(_without_carriage_returns(message.text))
        elif message.reset:
            log.write_line("(empty)")
            self._empty_shown = True
        self._fit_log()

    def _fit_log(self) -> None:
        """Give the log only the lines it has (at least 3), and the rest to the params and the curve."""
        log = self.query_one("#log", Log)
        room = max(3, self.size.height - 2 - 10)  # keep 10 rows for the params and the curve
        lines = log.line_count + 2 + log.scrollbar_size_horizontal  # its border, and its scrollbar if it has one
        log.styles.height = lines if lines < room else "1fr"
        self.query_one("#trial-top").styles.height = "1fr" if lines < room else "45%"

    def action_switch_log(self) -> None:
        """Show the next output stream."""
        self._chosen = True
        self._show_stream(self._next_stream())

    def _show_stream(self, stream: str) -> None:
        self.stream = stream
        self._offset = 0
        self.query_one("#log", Log).clear()
        self._title_log()
        self._follow_log()

    def action_kill(self) -> None:
        """Kill this trial, after confirmation."""
        trial = self.trial
        self.dashboard.kill_trial(self.exp_id, self.trial_id, trial.status if trial else "unknown")

    def action_back(self) -> None:
        """Back to the experiment."""
        self.dismiss()

    def commands(self) -> Iterator[SystemCommand]:
        """Kill this trial, switch the log, and the actions on its experiment."""
        yield SystemCommand(
            f"Kill trial #{self.trial_id}", "k: end this trial; the experiment goes on", self.action_kill
        )
        yield SystemCommand("Switch the log: stdout, stderr, NNI's trial.log", "l", self.action_switch_log)
        yield from super().commands()


def params_text(trial: TrialState | None) -> Text:
    """The trial's facts (status, value, times), then every param (nested choices flattened) in aligned columns."""
    if trial is None:
        return Text("not in the store yet", style="dim")
    text = Text()
    facts = [
        ("status", Text(fmt.status_label(trial.status), style=fmt.status_style(trial.status))),
        *([("node", Text(trial.node, style="bold"))] if trial.node else []),
        ("value", Text(fmt.number(trial.value, 12))),
        ("started", Text(_clock(trial.started))),
        ("ended", Text(_clock(trial.ended))),
        ("GPUs", Text(",".join(map(str, trial.gpus)) or "none")),
    ]
    if trial.attempt:
        facts.append(
            ("attempt", Text(f"{trial.attempt + 1}" + (f" (retry of #{trial.retry_of})" if trial.retry_of else "")))
        )
    if trial.pid:
        facts.append(("pid", Text(str(trial.pid))))
    for name, value in facts:
        text.append(f"{name:<8}", style="bright_black")
        text.append_text(value)
        text.append("\n")
    if trial.error:
        text.append(f"{trial.error}\n", style="red")
    text.append("\n")
    flat = trial.flat_params()
    width = max((len(name) for name in flat), default=0)
    for name, value in flat.items():
        text.append(f"{name:<{width}} ", style="cyan")
        text.append(f"{value if isinstance(value, str) else json.dumps(value)}\n")
    text.rstrip()
    return text


def _clock(when: float | None) -> str:
    return fmt.DASH if when is None else time.strftime("%m-%d %H:%M:%S", time.localtime(when))


def _without_carriage_returns(text: str) -> str:
    """Progress bars redraw a line with '\\r': keep what each line finally showed."""
    if "\r" not in text:
        return text
    return "\n".join(line.rstrip("\r").rsplit("\r", 1)[-1] for line in text.replace("\r\n", "\n").split("\n"))
