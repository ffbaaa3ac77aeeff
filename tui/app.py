"""The dashboard app: a client of the daemon that never blocks its UI thread on I/O.

Two long-running worker threads feed it: one follows the daemon's events and
reconnects when the daemon goes away, one reads the store (every second and a
half, and at once when an event says something changed). They post messages;
the UI thread applies them to `DashboardState` and redraws what changed four
times a second. User actions are requests sent from short worker threads.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen

from automl.control.client import DaemonNotRunning, RemoteError
from automl.removal import remove
from automl.states import EventKind, ExperimentStatus, TrialStatus

from .exporting import write_best
from .link import DaemonLink, Link
from .messages import ActionDone, Connected, Disconnected, EventsArrived, GpuListing, StoreFailed, StoreUpdated
from .reader import StoreReader
from .screens.base import DashboardScreen
from .screens.experiment import ExperimentScreen
from .screens.overview import OverviewScreen
from .screens.trial import TrialScreen
from .state import ACTIVE, DashboardState
from .widgets.dialogs import ConfirmDialog, KeysDialog, NumberDialog

RETRY_FIRST = 1.0
RETRY_MAX = 5.0
STORE_EVERY = 1.5
GPUS_EVERY = 5.0
REDRAW_EVERY = 0.25
ENDED = frozenset({ExperimentStatus.DONE, ExperimentStatus.STOPPED, ExperimentStatus.FAILED})


class DashboardApp(App[int]):
    """The live dashboard over the daemon and the store of the data directory `home`.

    `experiment` is the id of an experiment to open at once; `link` stands in for the daemon's socket (tests and
    benchmarks pass their own); `clock` is what running trials' durations are measured against; exports are
    written to `export_dir` (default: the current folder).
    """

    TITLE = "automl"
    CSS_PATH = "dashboard.tcss"
    BINDINGS = [
        Binding("q", "quit", "Quit", id="dashboard.quit"),
        Binding("question_mark", "toggle_keys", "Keys", id="dashboard.keys", show=False),
    ]

    def __init__(
        self,
        home: Path,
        *,
        link: Link | None = None,
        experiment: str | None = None,
        clock: Callable[[], float] = time.time,
        export_dir: Path | None = None,
        store_every: float = STORE_EVERY,
    ) -> None:
        super().__init__()
        from automl.paths import socket_path

        self.home = home
        self.link: Link = link if link is not None else DaemonLink(socket_path(home))
        self.clock = clock
        self.export_dir = export_dir if export_dir is not None else Path.cwd()
        self.store_every = store_every
        self.state = DashboardState()
        self._first_experiment = experiment
        self._inbox: list[dict[str, Any]] = []
        self._inbox_lock = threading.Lock()
        self._stopping = threading.Event()
        self._wake = threading.Event()
        self._wanted: set[str] = {"all"}  # what the next store read covers besides new curve points
        self._wanted_lock = threading.Lock()
        self._focus: tuple[int, str | None] = (0, None)
        self._compared: tuple[str, ...] = ()  # experiments marked in the overview: their best-so-far curves are read
        self._gpus_op = True
        self._store_failing = False

    # life cycle

    def on_mount(self) -> None:
        """Show the overview (and the experiment asked for), start the workers and the redraw timer."""
        self.push_screen(OverviewScreen())
        if self._first_experiment is not None:
            self.open_experiment(self._first_experiment)
        self._follow_daemon()
        self._follow_store()
        self.set_interval(REDRAW_EVERY, self.redraw)
        self.set_interval(GPUS_EVERY, self._ask_gpus)

    def on_unmount(self) -> None:
        """Let the worker threads go: they end at once, so quitting never waits on the socket."""
        self._stopping.set()
        self._wake.set()
        self.link.close()

    def redraw(self, force: bool = False) -> None:
        """Let the screen on top redraw what changed (not while the app shuts down and its screens go)."""
        if not self.is_running:
            return
        screen = self.screen
        if isinstance(screen, DashboardScreen):
            screen.refresh_view(force=force)

    def action_toggle_keys(self) -> None:
        """Show every key of the screen, ours only (the dashboard's, with their ids), over it: the footer and the
        screen's layout stay as they are."""
        if isinstance(self.screen, KeysDialog):
            self.screen.dismiss(None)
            return
        self.push_screen(KeysDialog(keys_of(self.screen)))

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        """The screen's own commands first, then Textual's (theme, keys, screenshot, quit)."""
        if isinstance(screen, DashboardScreen):
            yield from screen.commands()
        yield from super().get_system_commands(screen)

    # navigation

    def open_experiment(self, exp_id: str) -> None:
        """Show an experiment's dashboard."""
        self._focus = (self.state.open(exp_id), exp_id)
        self._read_soon("all")
        self.push_screen(ExperimentScreen(exp_id))

    def compare(self, exp_ids: tuple[str, ...]) -> None:
        """Read the best-so-far curves of these experiments from now on (the overview's marked ones)."""
        self._compared = exp_ids
        self._read_soon("all")

    def close_experiment(self) -> None:
        """Back to the overview from an experiment."""
        self._focus = (self.state.open(None), None)
        self.pop_screen()

    def open_trial(self, exp_id: str, trial_id: int) -> None:
        """Show a trial's details."""
        self.push_screen(TrialScreen(exp_id, trial_id))

    # actions

    def pause_or_resume(self, exp_id: str) -> None:
        """Pause a running experiment, resume a paused one."""
        name, status = self._name_and_status(exp_id)
        if status == ExperimentStatus.RUNNING:
            self._request("pause", {"experiment": exp_id}, f"paused {name}: no new trials start")
        elif status == ExperimentStatus.PAUSED:
            self._request("resume", {"experiment": exp_id}, f"resumed {name}")
        else:
            self.notify(
                f"{name} is {status}: only a running or paused experiment can be paused or resumed", severity="warning"
            )

    def stop_experiment(self, exp_id: str) -> None:
        """Stop an experiment once the user confirms."""
        name, status = self._name_and_status(exp_id)
        if status not in ACTIVE:
            self.notify(f"{name} is {status} already", severity="warning")
            return
        summary = self.state.experiments.get(exp_id)
        running = summary.running if summary else 0
        self._confirm_then(
            f"Stop experiment {name}?\n\nNo new trials start, and its {running} running trial(s) "
            "are terminated. This cannot be undone.",
            "Stop",
            "stop",
            {"experiment": exp_id},
            f"stopping {name}",
        )

    def kill_trial(self, exp_id: str, trial_id: int, status: str) -> None:
        """Kill one trial once the user confirms."""
        if status not in (TrialStatus.RUNNING, TrialStatus.WAITING):
            self.notify(f"trial #{trial_id} is {status}: nothing to kill", severity="warning")
            return
        name, _ = self._name_and_status(exp_id)
        self._confirm_then(
            f"Kill trial #{trial_id} of {name}?\n\nIt ends as killed; the experiment goes on.",
            "Kill",
            "kill",
            {"experiment": exp_id, "trial": trial_id},
            f"killed trial #{trial_id}",
        )

    def change_concurrency(self, exp_id: str) -> None:
        """Ask for a new concurrency and apply it."""
        name, status = self._name_and_status(exp_id)
        if status not in ACTIVE:
            self.notify(f"{name} is {status}: its concurrency no longer matters", severity="warning")
            return
        summary = self.state.experiments.get(exp_id)

        def apply(value: int | None) -> None:
            if value is not None:
                self._request(
                    "update", {"experiment": exp_id, "concurrency": value}, f"{name}: {value} trial(s) at a time"
                )

        self.push_screen(NumberDialog(f"Trials at a time for {name}", summary.concurrency if summary else 1), apply)

    def delete_experiment(self, exp_id: str) -> None:
        """Delete an ended experiment (its trials, metrics and folder) once the user confirms."""
        name, status = self._name_and_status(exp_id)
        if status in ACTIVE:
            self.notify(f"{name} is {status}: stop it first (s), then delete it", severity="warning")
            return
        summary = self.state.experiments.get(exp_id)
        trials = summary.finished + summary.running if summary else 0

        def answered(yes: bool | None) -> None:
            if yes:
                self._delete(exp_id, name)

        question = (
            f"Delete experiment {name} [{exp_id}]?\n\nIts {trials} trial(s), their metrics and folders go for good."
        )
        self.push_screen(ConfirmDialog(question, "Delete"), answered)

    def _name_and_status(self, exp_id: str) -> tuple[str, str]:
        summary = self.state.experiments.get(exp_id)
        return (summary.name, summary.status) if summary else (exp_id, "unknown")

    def _confirm_then(self, question: str, button: str, op: str, args: dict[str, Any], done: str) -> None:
        """Ask `question` (confirmed with `button`), and send the request only on yes."""

        def answered(yes: bool | None) -> None:
            if yes:
                self._request(op, args, done)

        self.push_screen(ConfirmDialog(question, button), answered)

    def _request(self, op: str, args: dict[str, Any], done: str) -> None:
        if self.state.read_only:
            self.notify("read-only: no daemon runs; start one with `automl daemon start`", severity="warning")
            return
        if self.state.connected is not True:
            self.notify("not connected to the daemon; retrying, try again in a moment", severity="error")
            return
        self._send(op, args, done)

    # workers

    @work(thread=True, group="actions", name="request")
    def _send(self, op: str, args: dict[str, Any], done: str) -> None:
        """Send one request to the daemon and report how it went."""
        try:
            self.link.request(op, **args)
        except RemoteError as e:
            self.post_message(ActionDone(e.message, "error"))
            return
        except Exception as e:  # noqa: BLE001 - a worker's boundary: any failure is shown, never a crash
            self.post_message(ActionDone(f"{op} failed: {describe(e)}", "error"))
            return
        self.post_message(ActionDone(done))
        self._read_soon("all")

    @work(thread=True, group="actions", name="export")
    def export_best(self, exp_id: str) -> None:
        """Write the best trial's params to NAME-best.yaml in the export folder (works without the daemon), and
        report where."""
        try:
            path, trial = write_best(self.home, exp_id, self.export_dir)
        except Exception as e:  # noqa: BLE001 - a worker's boundary: any failure is shown, never a crash
            self.post_message(ActionDone(str(e), "error"))
            return
        self.post_message(ActionDone(f"wrote {path} (trial #{trial.id}, value {trial.value:.6g})"))

    @work(thread=True, group="actions", name="delete")
    def _delete(self, exp_id: str, name: str) -> None:
        """Delete the experiment from the store and its folder (works without the daemon), and report it."""
        try:
            remove(self.home, exp_id)
        except Exception as e:  # noqa: BLE001 - a worker's boundary: any failure is shown, never a crash
            self.post_message(ActionDone(f"delete failed: {describe(e)}", "error"))
            return
        self.call_from_thread(self._deleted, exp_id)
        self.post_message(ActionDone(f"deleted {name} [{exp_id}]"))
        self._read_soon("all")

    def _deleted(self, exp_id: str) -> None:
        """Leave the screens of a deleted experiment."""
        while self.screen.is_modal or getattr(self.screen, "exp_id", None) == exp_id:
            self.pop_screen()
        if self.state.open_id == exp_id:
            self._focus = (self.state.open(None), None)

    @work(thread=True, exclusive=True, group="daemon", name="daemon events")
    def _follow_daemon(self) -> None:
        """Subscribe to the daemon's events; when it goes away, say so and try again, backing off to 5 s."""
        delay = RETRY_FIRST
        while not self._stopping.is_set():
            try:
                status = self.link.status()
            except Exception as e:  # noqa: BLE001 - any failure to reach the daemon means: retry later
                self.post_message(Disconnected(describe(e), delay))
                self._stopping.wait(delay)
                delay = min(RETRY_MAX, delay * 2)
                continue
            self.post_message(Connected(status if isinstance(status, dict) else {}))
            delay = RETRY_FIRST
            try:
                for event in self.link.events():
                    self._deliver(event)
                reason = "the daemon closed the connection"
            except RemoteError as e:
                reason = f"the daemon dropped the event stream ({e.code}): {e.message}"
            except Exception as e:  # noqa: BLE001 - any broken stream means: reconnect
                reason = describe(e)
            if self._stopping.is_set():
                return
            self.post_message(Disconnected(reason, delay))
            self._stopping.wait(delay)

    def _deliver(self, event: dict[str, Any]) -> None:
        """Queue an event; one message wakes the UI thread for a whole burst."""
        with self._inbox_lock:
            first = not self._inbox
            self._inbox.append(event)
        if first:
            self.post_message(EventsArrived())

    @work(thread=True, exclusive=True, group="store", name="store reader")
    def _follow_store(self) -> None:
        """Read the store every `store_every` seconds, and soon after an event says something changed."""
        reader = StoreReader(self.home)
        last_full = 0.0
        try:
            while not self._stopping.is_set():
                self._wake.clear()
                generation, exp_id = self._focus
                with self._wanted_lock:
                    wanted, self._wanted = self._wanted, set()
                everything = "all" in wanted or time.monotonic() - last_full >= self.store_every
                try:
                    read = reader.read(
                        generation, exp_id, everything, summaries="summaries" in wanted, compared=self._compared
                    )
                except Exception as e:  # noqa: BLE001 - a worker's boundary: a failed read is shown and retried
                    reader.close()
                    self.post_message(StoreFailed(f"{type(e).__name__}: {e}"))
                    self._want("all")
                    self._stopping.wait(self.store_every)
                    continue
                if everything:
                    last_full = time.monotonic()
                self.post_message(StoreUpdated(read))
                self._wake.wait(self.store_every)
                self._stopping.wait(0.05)  # let a burst of events land before reading again
        finally:
            reader.close()

    @work(thread=True, exclusive=True, group="gpus", name="gpu listing")
    def _ask_gpus(self) -> None:
        """Ask which GPUs take trials now (daemons without the `gpus` request are asked no more)."""
        if not self._gpus_op or self.state.connected is not True:
            return
        try:
            result = self.link.request("gpus")
        except RemoteError as e:
            self._gpus_op = e.code != "bad_request"
            return
        except Exception:  # noqa: BLE001 - the GPU panel is best effort: the next look tries again
            return
        gpus = result.get("gpus") if isinstance(result, dict) else None
        if isinstance(gpus, list):
            self.post_message(GpuListing(gpus))

    def _want(self, *what: str) -> None:
        """Have the next store read cover `what` ('summaries', 'all'; new curve points are always read)."""
        with self._wanted_lock:
            self._wanted.update(what)

    def _read_soon(self, *what: str) -> None:
        """Wake the store reader now, to read `what` besides new curve points."""
        self._want(*what)
        self._wake.set()

    # messages from the workers

    def on_connected(self, message: Connected) -> None:
        """The daemon answers (again)."""
        was, read_only = self.state.connected, self.state.read_only
        self.state.set_link(True, "connected", message.status)
        if read_only:
            self.notify(f"a daemon answers (pid {message.status.get('pid')}): live now, controls on")
        elif was is False:
            self.notify(f"reconnected to the daemon (pid {message.status.get('pid')})")
        self.screen.refresh_bindings()
        self._read_soon("all")
        self._ask_gpus()

    def on_disconnected(self, message: Disconnected) -> None:
        """The daemon went away or is not there: keep showing the store, and say that we retry."""
        was = self.state.connected
        self.state.set_link(False, message.reason, retry_in=message.retry_in)
        if was is True:
            self.notify(f"lost the daemon: {message.reason}; retrying", severity="warning")
        if was is None:
            self.screen.refresh_bindings()

    def on_events_arrived(self, message: EventsArrived) -> None:
        """Apply every queued event; ask the store reader for what they changed."""
        with self._inbox_lock:
            events, self._inbox = self._inbox, []
        wanted = {self.state.apply_event(event) for event in events} - {None}
        if wanted:
            self._read_soon(*wanted)
        for event in events:
            self._tell_if_ended(event)

    def _tell_if_ended(self, event: dict[str, Any]) -> None:
        """Ring the terminal bell and say so when an experiment ends."""
        data = event.get("data") if isinstance(event.get("data"), dict) else {}
        status = data.get("status")
        if event.get("event") != EventKind.EXPERIMENT_STATUS or status not in ENDED:
            return
        summary = self.state.experiments.get(str(event.get("experiment")))
        name = summary.name if summary else str(event.get("experiment"))
        best = "" if summary is None or summary.best_value is None else f", best {summary.best_value:.6g}"
        self.bell()
        self.notify(f"{name} {status}{best}", severity="error" if status == ExperimentStatus.FAILED else "information")

    def on_store_updated(self, message: StoreUpdated) -> None:
        """Apply a pass of the store reader (and draw at once the first time)."""
        self._store_failing = False
        first = not self.state.loaded
        self.state.apply_read(message.read)
        if first:
            self.redraw()

    def on_store_failed(self, message: StoreFailed) -> None:
        """Say once that the store cannot be read (it is tried again)."""
        if not self._store_failing:
            self.notify(f"cannot read the store: {message.error}; retrying", severity="warning")
        self._store_failing = True

    def on_gpu_listing(self, message: GpuListing) -> None:
        """Which GPUs take trials."""
        self.state.take_gpu_listing(message.gpus)

    def on_action_done(self, message: ActionDone) -> None:
        """Tell the user how an action went."""
        self.notify(message.text, severity=message.severity, timeout=8 if message.severity == "error" else 5)


def keys_of(screen: Screen) -> list[tuple[str, str]]:
    """The screen's keys that do something now, ours only, as (keys, what they do); keys doing the same joined."""
    joined: dict[str, list[str]] = {}
    for key, active in screen.active_bindings.items():
        binding = active.binding
        if binding.id is None or not binding.description:
            continue
        shown = joined.setdefault(binding.description, [])
        label = screen.app.get_key_display(binding.with_key(key))
        if label not in shown:
            shown.append(label)
    return [(" ".join(keys), what) for what, keys in joined.items()]


def describe(error: BaseException) -> str:
    """A short reason for a failed connection or request."""
    if isinstance(error, DaemonNotRunning):
        return "the daemon is not running"
    if isinstance(error, TimeoutError):
        return "the daemon does not answer"
    return str(error) or type(error).__name__
