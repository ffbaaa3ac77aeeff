"""The dashboard against a real daemon running real experiments: every action from the keyboard, its effect
checked in the store; the daemon restarting under it; the real command in a real terminal (tmux)."""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from textual.command import CommandList, CommandPalette

from automl.store import Store
from tests.conftest import REPO, automl, write_trial
from tui.app import DashboardApp
from tui.screens.experiment import ExperimentScreen
from tui.widgets.dialogs import ConfirmDialog, NumberDialog
from tui.widgets.status_bar import link_text
from tui.widgets.table import LiveTable

STEPPING_TRIAL = """
for step in range(params['steps']):
    time.sleep(0.1)
    print('step', step, flush=True)
    trial.report(step * params['x'])
trial.report_final(params['x'])
"""


def _space(steps: int) -> dict[str, Any]:
    return {"x": {"_type": "uniform", "_value": [0, 1]}, "steps": {"_type": "choice", "_value": [steps]}}


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory):
    """A daemon for this module, hosting `slow` (trials of 30 s) and `quick` (done in a second or two)."""
    folder = tmp_path_factory.mktemp("tui")
    home = folder / "home"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AUTOML_HOME", str(home))
        automl("daemon", "start", check=True)
        try:
            write_trial(folder, STEPPING_TRIAL)
            ids = {
                name: automl("submit", str(_config(folder, name, **fields)), check=True).stdout.strip()
                for name, fields in (
                    ("slow", {"search_space": _space(300), "max_trials": 20}),
                    ("quick", {"search_space": _space(3), "max_trials": 2}),
                )
            }
            _wait(lambda: _experiment(home, ids["quick"])[0] == "done", "quick to finish")
            _wait(lambda: _running(home, ids["slow"]), "a trial of slow to run")
            yield folder, home, ids
        finally:
            automl("daemon", "stop")
            _kill_trials(home)


def _config(folder: Path, name: str, **fields: Any) -> Path:
    """A config for experiment `name` running the stepping trial, written to `folder/NAME.yml`."""
    config = {
        "name": name,
        "command": "python trial.py",
        "tuner": {"name": "Random", "args": {"seed": 1}},
        "concurrency": 2,
        **fields,
    }
    path = folder / f"{name}.yml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_overview_lists_the_experiments_and_opens_one(daemon):
    folder, home, ids = daemon

    async def scenario(pilot: Any, app: DashboardApp) -> None:
        assert {ids["slow"], ids["quick"]} <= set(app.state.experiments)
        await pilot.press("enter")
        await _until(pilot, lambda: isinstance(app.screen, ExperimentScreen) and bool(app.state.trials))
        assert app.state.open_id == ids["slow"], "the active experiment comes first"
        await pilot.press("escape")
        await _until(pilot, lambda: not isinstance(app.screen, ExperimentScreen))

    _drive(home, folder, None, scenario)


def test_pause_and_resume(daemon):
    folder, home, ids = daemon

    async def scenario(pilot: Any, app: DashboardApp) -> None:
        await pilot.press("p")
        await _until(pilot, lambda: _experiment(home, ids["slow"])[0] == "paused")
        await _until(pilot, lambda: app.state.experiments[ids["slow"]].status == "paused")
        await pilot.press("ctrl+p")  # resume from the command palette this time
        await _until(pilot, lambda: isinstance(app.screen, CommandPalette))
        await pilot.press(*"resume slow")
        await _until(pilot, lambda: app.screen.query_one(CommandList).option_count > 0)
        await pilot.press("enter")
        await _until(pilot, lambda: _experiment(home, ids["slow"])[0] == "running")

    _drive(home, folder, ids["slow"], scenario)


def test_change_concurrency(daemon):
    folder, home, ids = daemon

    async def scenario(pilot: Any, app: DashboardApp) -> None:
        await pilot.press("c")
        await _until(pilot, lambda: isinstance(app.screen, NumberDialog))
        await pilot.press("0", "enter")  # the value shown is selected: typing replaces it; 0 is refused
        assert isinstance(app.screen, NumberDialog)
        await pilot.press("backspace", "3", "enter")
        await _until(pilot, lambda: _experiment(home, ids["slow"])[1]["concurrency"] == 3)
        await _until(pilot, lambda: app.state.experiments[ids["slow"]].concurrency == 3)

    _drive(home, folder, ids["slow"], scenario)


def test_kill_the_selected_trial_after_confirmation(daemon):
    folder, home, ids = daemon

    async def scenario(pilot: Any, app: DashboardApp) -> None:
        screen = app.screen
        assert isinstance(screen, ExperimentScreen)
        await _until(pilot, lambda: screen.cursor_trial is not None and screen.cursor_trial.status == "running")
        victim = screen.cursor_trial.id
        await pilot.press("k")
        await _until(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        await pilot.press("n")
        await _until(pilot, lambda: app.screen is screen)
        assert _trial(home, ids["slow"], victim)["status"] == "running", "no means no"
        await pilot.press("k")
        await _until(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        await pilot.press("y")
        await _until(pilot, lambda: _trial(home, ids["slow"], victim)["status"] == "killed")
        assert _trial(home, ids["slow"], victim)["error"] == "killed by user"
        assert _experiment(home, ids["slow"])[0] == "running", "the experiment goes on"

    _drive(home, folder, ids["slow"], scenario)


def test_export_the_best_config(daemon):
    folder, home, ids = daemon

    async def scenario(pilot: Any, app: DashboardApp) -> None:
        await pilot.press("e")
        await _until(pilot, lambda: (folder / "quick-best.yaml").exists())

    _drive(home, folder, ids["quick"], scenario)
    expected = automl("export", ids["quick"], "--best", check=True).stdout
    assert (folder / "quick-best.yaml").read_text() == expected
    assert yaml.safe_load(expected)["steps"] == 3


@pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux")
def test_the_command_in_a_real_terminal(daemon):
    folder, home, ids = daemon
    server = ["tmux", "-L", f"automl-tui-{os.getpid()}"]
    command = shlex.join(["env", f"AUTOML_HOME={home}", sys.executable, "-m", "automl", "tui", "slow"])
    subprocess.run(
        [
            *server,
            "new-session",
            "-d",
            "-s",
            "dashboard",
            "-x",
            "80",
            "-y",
            "24",
            f"cd {shlex.quote(str(REPO))} && {command}; echo EXITED=$?; sleep 60",
        ],
        check=True,
    )

    def screen() -> str:
        return subprocess.run([*server, "capture-pane", "-p", "-t", "dashboard"], capture_output=True, text=True).stdout

    try:
        _wait(
            lambda: "slow ▶ running" in screen() and "● daemon" in screen() and "Trials · all" in screen(),
            "the dashboard to show slow",
            screen,
        )
        subprocess.run([*server, "send-keys", "-t", "dashboard", "p"], check=True)
        _wait(lambda: _experiment(home, ids["slow"])[0] == "paused", "slow to pause")
        _wait(lambda: "slow ‖ paused" in screen(), "the dashboard to show the pause", screen)
        subprocess.run([*server, "send-keys", "-t", "dashboard", "p"], check=True)
        _wait(lambda: _experiment(home, ids["slow"])[0] == "running", "slow to resume")
        subprocess.run([*server, "send-keys", "-t", "dashboard", "q"], check=True)
        _wait(lambda: "EXITED=0" in screen(), "the dashboard to quit", screen)
    finally:
        subprocess.run([*server, "kill-server"], capture_output=True)


def test_rides_out_a_daemon_restart(daemon):
    folder, home, ids = daemon

    async def scenario(pilot: Any, app: DashboardApp) -> None:
        await asyncio.to_thread(automl, "daemon", "stop", check=True)
        await _until(pilot, lambda: app.state.connected is False)
        assert "disconnected" in str(link_text(app.state))
        assert app.state.experiments[ids["slow"]].status == "running", "the daemon leaves its experiments running"
        said = _notifications(app)
        await pilot.press("p")  # refused while disconnected, without a crash
        await _until(pilot, lambda: ("not connected to the daemon; retrying, try again in a moment", "error") in said)
        await asyncio.to_thread(automl, "daemon", "start", check=True)
        await _until(pilot, lambda: app.state.connected is True)
        assert "● daemon" in str(link_text(app.state))
        assert _experiment(home, ids["slow"])[0] == "running", "nothing was sent"
        await _until(pilot, lambda: ids["slow"] in app.link.status()["experiments"])  # the daemon took it back

    _drive(home, folder, ids["slow"], scenario)


def test_stop_after_confirmation(daemon):
    folder, home, ids = daemon

    async def scenario(pilot: Any, app: DashboardApp) -> None:
        await pilot.press("s")
        await _until(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        await pilot.press("y")
        await _until(pilot, lambda: _experiment(home, ids["slow"])[0] == "stopped")
        await _until(pilot, lambda: app.state.experiments[ids["slow"]].status == "stopped")
        said = _notifications(app)
        await pilot.press("p")  # nothing to pause any more: said so, nothing sent
        refusal = ("slow is stopped: only a running or paused experiment can be paused or resumed", "warning")
        await _until(pilot, lambda: refusal in said)
        assert _experiment(home, ids["slow"])[0] == "stopped"

    _drive(home, folder, ids["slow"], scenario)


def test_the_cli_hook_does_not_import_textual():
    code = (
        "import argparse, sys; from tui.cli import add_command; p = argparse.ArgumentParser(); "
        "add_command(p.add_subparsers()); a = p.parse_args(['tui', 'exp']); "
        "print(json.dumps([a.experiment, 'textual' in sys.modules]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", f"import json; {code}"], capture_output=True, text=True, check=True
    ).stdout
    assert json.loads(out) == ["exp", False]


# driving the dashboard, reading the store


def _drive(
    home: Path, folder: Path, experiment: str | None, scenario: Callable[[Any, DashboardApp], Awaitable[None]]
) -> None:
    """Run the dashboard on `home` (opened on `experiment`) until it shows data from the daemon and the store,
    then play `scenario`."""

    async def main() -> None:
        app = DashboardApp(home, experiment=experiment, export_dir=folder)
        async with app.run_test(size=(100, 30)) as pilot:
            await _until(pilot, lambda: app.state.connected is True and app.state.loaded)
            await _until(pilot, lambda: app.screen.query_one(LiveTable).row_count > 0)
            await scenario(pilot, app)

    asyncio.run(main())


def _notifications(app: DashboardApp) -> list[tuple[str, str]]:
    """What the app tells the user from now on, as (message, severity), in order."""
    said: list[tuple[str, str]] = []
    notify = app.notify

    def recording(message: str, **kwargs: Any) -> None:
        said.append((message, kwargs.get("severity", "information")))
        notify(message, **kwargs)

    app.notify = recording  # type: ignore[method-assign]
    return said


async def _until(pilot: Any, condition: Callable[[], Any], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for the dashboard")
        await pilot.pause(0.1)


def _wait(
    condition: Callable[[], Any], what: str, show: Callable[[], str] | None = None, timeout: float = 60.0
) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}" + (f"; screen:\n{show()}" if show else ""))
        time.sleep(0.1)


def _experiment(home: Path, exp_id: str) -> tuple[str, dict[str, Any]]:
    """An experiment's status and stored config, read from the store."""
    store = Store.open_for_reading(home)
    assert store is not None
    try:
        experiment = store.find_experiment(exp_id)
        return experiment.status, experiment.config
    finally:
        store.close()


def _trial(home: Path, exp_id: str, trial_id: int) -> dict[str, Any]:
    store = Store.open_for_reading(home)
    assert store is not None
    try:
        trial = next(t for t in store.trials(exp_id) if t.id == trial_id)
        return {"status": trial.status, "error": trial.error}
    finally:
        store.close()


def _running(home: Path, exp_id: str) -> bool:
    store = Store.open_for_reading(home)
    if store is None:
        return False
    try:
        return any(t.status == "running" for t in store.trials(exp_id))
    finally:
        store.close()


def _kill_trials(home: Path) -> None:
    store = Store.open_for_reading(home)
    if store is None:
        return
    try:
        for experiment in store.experiments():
            for trial in store.trials(experiment.id):
                if trial.pid and trial.status == "running":
                    try:
                        os.killpg(trial.pid, signal.SIGKILL)
                    except (ProcessLookupError, PermissionError):
                        pass
    finally:
        store.close()
