"""The dashboard against a real daemon running real experiments: every action from the keyboard, its effect
checked in the store; the daemon restarting under it; the real command in a real terminal (tmux)."""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from textual.command import CommandList, CommandPalette

from automl.store import Store
from tests.helpers import REPO, automl, running_daemon, submit, wait_until, wait_until_async, write_trial
from tests.tui_sample_store import notifications
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
def tui_daemon(tmp_path_factory: pytest.TempPathFactory):
    """A daemon for this module, hosting `slow` (trials of 30 s) and `quick` (done in a second or two)."""
    folder = tmp_path_factory.mktemp("tui")
    home = folder / "home"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AUTOML_HOME", str(home))
        with running_daemon(home):
            write_trial(folder, STEPPING_TRIAL)
            ids = {
                name: submit(_config(folder, name, **fields))
                for name, fields in (
                    ("slow", {"search_space": _space(300), "max_trials": 20}),
                    ("quick", {"search_space": _space(3), "max_trials": 2}),
                )
            }
            wait_until(lambda: _experiment(home, ids["quick"])[0] == "done", "quick to finish", timeout=60)
            wait_until(lambda: _running(home, ids["slow"]), "a trial of slow to run", timeout=60)
            yield folder, home, ids


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


def test_overview_lists_the_experiments_and_opens_one(tui_daemon):
    folder, home, ids = tui_daemon

    async def scenario(pilot: Any, app: DashboardApp) -> None:
        assert {ids["slow"], ids["quick"]} <= set(app.state.experiments)
        await pilot.press("enter")
        await wait_until_async(
            lambda: isinstance(app.screen, ExperimentScreen) and bool(app.state.trials),
            "the experiment screen with its trials",
            pause=pilot.pause,
        )
        assert app.state.open_id == ids["slow"], "the active experiment comes first"
        await pilot.press("escape")
        await wait_until_async(lambda: not isinstance(app.screen, ExperimentScreen), "the overview", pause=pilot.pause)

    _drive(home, folder, None, scenario)


def test_pause_and_resume(tui_daemon):
    folder, home, ids = tui_daemon

    async def scenario(pilot: Any, app: DashboardApp) -> None:
        await pilot.press("p")
        await wait_until_async(
            lambda: _experiment(home, ids["slow"])[0] == "paused", "slow to pause in the store", pause=pilot.pause
        )
        await wait_until_async(
            lambda: app.state.experiments[ids["slow"]].status == "paused",
            "the dashboard to show slow paused",
            pause=pilot.pause,
        )
        await pilot.press("ctrl+p")  # resume from the command palette this time
        await wait_until_async(lambda: isinstance(app.screen, CommandPalette), "the command palette", pause=pilot.pause)
        await pilot.press(*"resume slow")
        await wait_until_async(
            lambda: app.screen.query_one(CommandList).option_count > 0, "the palette's options", pause=pilot.pause
        )
        await pilot.press("enter")
        await wait_until_async(
            lambda: _experiment(home, ids["slow"])[0] == "running", "slow to resume in the store", pause=pilot.pause
        )

    _drive(home, folder, ids["slow"], scenario)


def test_change_concurrency(tui_daemon):
    folder, home, ids = tui_daemon

    async def scenario(pilot: Any, app: DashboardApp) -> None:
        await pilot.press("c")
        await wait_until_async(lambda: isinstance(app.screen, NumberDialog), "the number dialog", pause=pilot.pause)
        await pilot.press("0", "enter")  # the value shown is selected: typing replaces it; 0 is refused
        assert isinstance(app.screen, NumberDialog)
        await pilot.press("backspace", "3", "enter")
        await wait_until_async(
            lambda: _experiment(home, ids["slow"])[1]["concurrency"] == 3,
            "slow's concurrency of 3 in the store",
            pause=pilot.pause,
        )
        await wait_until_async(
            lambda: app.state.experiments[ids["slow"]].concurrency == 3,
            "the dashboard to show slow's concurrency of 3",
            pause=pilot.pause,
        )

    _drive(home, folder, ids["slow"], scenario)


def test_kill_the_selected_trial_after_confirmation(tui_daemon):
    folder, home, ids = tui_daemon

    async def scenario(pilot: Any, app: DashboardApp) -> None:
        screen = app.screen
        assert isinstance(screen, ExperimentScreen)
        await wait_until_async(
            lambda: screen.cursor_trial is not None and screen.cursor_trial.status == "running",
            "the cursor on a running trial",
            pause=pilot.pause,
        )
        victim = screen.cursor_trial.id
        await pilot.press("k")
        await wait_until_async(
            lambda: isinstance(app.screen, ConfirmDialog), "the confirmation dialog", pause=pilot.pause
        )
        await pilot.press("n")
        await wait_until_async(lambda: app.screen is screen, "the experiment screen again", pause=pilot.pause)
        assert _trial(home, ids["slow"], victim)["status"] == "running", "no means no"
        await pilot.press("k")
        await wait_until_async(
            lambda: isinstance(app.screen, ConfirmDialog), "the confirmation dialog", pause=pilot.pause
        )
        await pilot.press("y")
        await wait_until_async(
            lambda: _trial(home, ids["slow"], victim)["status"] == "killed",
            "the trial to be killed in the store",
            pause=pilot.pause,
        )
        assert _trial(home, ids["slow"], victim)["error"] == "killed by user"
        assert _experiment(home, ids["slow"])[0] == "running", "the experiment goes on"

    _drive(home, folder, ids["slow"], scenario)


def test_export_the_best_config(tui_daemon):
    folder, home, ids = tui_daemon

    async def scenario(pilot: Any, app: DashboardApp) -> None:
        await pilot.press("e")
        await wait_until_async(
            lambda: (folder / "quick-best.yaml").exists(), "the exported quick-best.yaml", pause=pilot.pause
        )

    _drive(home, folder, ids["quick"], scenario)
    expected = automl("export", ids["quick"], "--best", check=True).stdout
    assert (folder / "quick-best.yaml").read_text() == expected
    assert yaml.safe_load(expected)["steps"] == 3


@pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux")
def test_the_command_in_a_real_terminal(tui_daemon):
    folder, home, ids = tui_daemon
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
        wait_until(
            lambda: "slow ▶ running" in screen() and "● daemon" in screen() and "Trials · all" in screen(),
            lambda: f"the dashboard to show slow; screen:\n{screen()}",
            timeout=60,
        )
        subprocess.run([*server, "send-keys", "-t", "dashboard", "p"], check=True)
        wait_until(lambda: _experiment(home, ids["slow"])[0] == "paused", "slow to pause", timeout=60)
        wait_until(
            lambda: "slow ‖ paused" in screen(),
            lambda: f"the dashboard to show the pause; screen:\n{screen()}",
            timeout=60,
        )
        subprocess.run([*server, "send-keys", "-t", "dashboard", "p"], check=True)
        wait_until(lambda: _experiment(home, ids["slow"])[0] == "running", "slow to resume", timeout=60)
        subprocess.run([*server, "send-keys", "-t", "dashboard", "q"], check=True)
        wait_until(lambda: "EXITED=0" in screen(), lambda: f"the dashboard to quit; screen:\n{screen()}", timeout=60)
    finally:
        subprocess.run([*server, "kill-server"], capture_output=True)


def test_rides_out_a_daemon_restart(tui_daemon):
    folder, home, ids = tui_daemon

    async def scenario(pilot: Any, app: DashboardApp) -> None:
        await asyncio.to_thread(automl, "daemon", "stop", check=True)
        await wait_until_async(
            lambda: app.state.connected is False, "the dashboard to see the daemon gone", pause=pilot.pause
        )
        assert "disconnected" in str(link_text(app.state))
        assert app.state.experiments[ids["slow"]].status == "running", "the daemon leaves its experiments running"
        said = notifications(app)
        await pilot.press("p")  # refused while disconnected, without a crash
        await wait_until_async(
            lambda: ("not connected to the daemon; retrying, try again in a moment", "error") in said,
            "the refusal while disconnected",
            pause=pilot.pause,
        )
        await asyncio.to_thread(automl, "daemon", "start", check=True)
        await wait_until_async(lambda: app.state.connected is True, "the dashboard to reconnect", pause=pilot.pause)
        assert "● daemon" in str(link_text(app.state))
        assert _experiment(home, ids["slow"])[0] == "running", "nothing was sent"
        await wait_until_async(
            lambda: ids["slow"] in app.link.status()["experiments"], "the daemon to take slow back", pause=pilot.pause
        )  # the daemon took it back

    _drive(home, folder, ids["slow"], scenario)


def test_stop_after_confirmation(tui_daemon):
    folder, home, ids = tui_daemon

    async def scenario(pilot: Any, app: DashboardApp) -> None:
        await pilot.press("s")
        await wait_until_async(
            lambda: isinstance(app.screen, ConfirmDialog), "the confirmation dialog", pause=pilot.pause
        )
        await pilot.press("y")
        await wait_until_async(
            lambda: _experiment(home, ids["slow"])[0] == "stopped", "slow to stop in the store", pause=pilot.pause
        )
        await wait_until_async(
            lambda: app.state.experiments[ids["slow"]].status == "stopped",
            "the dashboard to show slow stopped",
            pause=pilot.pause,
        )
        said = notifications(app)
        await pilot.press("p")  # nothing to pause any more: said so, nothing sent
        refusal = ("slow is stopped: only a running or paused experiment can be paused or resumed", "warning")
        await wait_until_async(lambda: refusal in said, "the refusal to pause a stopped experiment", pause=pilot.pause)
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
            await wait_until_async(
                lambda: app.state.connected is True and app.state.loaded,
                "the dashboard connected and loaded",
                pause=pilot.pause,
            )
            await wait_until_async(
                lambda: app.screen.query_one(LiveTable).row_count > 0, "the table's first rows", pause=pilot.pause
            )
            await scenario(pilot, app)

    asyncio.run(main())


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
