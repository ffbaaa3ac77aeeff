"""The dashboard without a daemon: the store read-only, said in the status bar, controls off; live once a daemon
answers."""

from __future__ import annotations

import asyncio
import os
import shlex
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from automl.control.client import DaemonNotRunning
from tests import tui_sample_store as sample_store
from tests.helpers import REPO
from tests.tui_sample_store import FixedDaemon, notifications
from tui.app import DashboardApp
from tui.widgets.status_bar import link_text


class LateDaemon(FixedDaemon):
    """No daemon until `up` is set; then the fixed one. Records the requests it gets."""

    def __init__(self) -> None:
        super().__init__()
        self.up = threading.Event()
        self.requests: list[str] = []

    def status(self) -> dict[str, Any]:
        """Not running until `up`."""
        if not self.up.is_set():
            raise DaemonNotRunning("nothing answers")
        return super().status()

    def events(self) -> Iterator[dict[str, Any]]:
        """Nothing until `up`."""
        if not self.up.is_set():
            raise DaemonNotRunning("nothing answers")
        yield from super().events()

    def request(self, op: str, **args: Any) -> Any:
        """Recorded."""
        self.requests.append(op)
        return super().request(op, **args)


def test_without_a_daemon_the_store_is_shown_read_only_until_one_answers(tmp_path: Path):
    home = tmp_path / "home"
    sample_store.fill(home)
    link = LateDaemon()

    async def run() -> list[tuple[str, str]]:
        app = DashboardApp(home, link=link, experiment=sample_store.EXPERIMENT_ID, clock=lambda: sample_store.NOW)
        async with app.run_test(size=(80, 24)) as pilot:
            while not (app.state.loaded and app.state.connected is False):
                await pilot.pause(0.05)
            assert app.state.read_only and str(link_text(app.state)) == "◌ read-only: no daemon"
            assert app.screen.check_action("experiment", ("pause",)) is None, "greyed out"
            assert app.screen.check_action("experiment", ("export",)) is True, "export needs no daemon"
            await pilot.press("p", "s", "k")
            await pilot.pause(0.2)
            assert link.requests == [], "nothing sent"
            said = notifications(app)
            link.up.set()
            for _ in range(200):
                if app.state.connected:
                    break
                await pilot.pause(0.05)
            assert not app.state.read_only and app.screen.check_action("experiment", ("pause",)) is True
            await pilot.pause(0.1)
            return said

    said = asyncio.run(run())
    assert any(message.endswith("live now, controls on") for message, _ in said)


@pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux")
def test_the_command_without_a_daemon_opens_read_only(tmp_path: Path):
    home = tmp_path / "home"
    sample_store.fill(home)
    server = ["tmux", "-L", f"automl-ro-{os.getpid()}"]
    command = shlex.join(["env", f"AUTOML_HOME={home}", sys.executable, "-m", "automl", "tui"])
    script = f"cd {shlex.quote(str(REPO))} && {command}; echo EXITED=$?; sleep 60"
    subprocess.run([*server, "new-session", "-d", "-s", "ro", "-x", "80", "-y", "24", script], check=True)

    def screen() -> str:
        return subprocess.run([*server, "capture-pane", "-p", "-t", "ro"], capture_output=True, text=True).stdout

    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not ("read-only: no daemon" in screen() and "resnet-cifar" in screen()):
            time.sleep(0.2)
        assert "read-only: no daemon" in screen() and "resnet-cifar" in screen(), screen()
        subprocess.run([*server, "send-keys", "-t", "ro", "q"], check=True)
        while time.monotonic() < deadline and "EXITED=" not in screen():
            time.sleep(0.2)
        assert "EXITED=0" in screen(), screen()
    finally:
        subprocess.run([*server, "kill-server"], capture_output=True)


class EndingDaemon(FixedDaemon):
    """The fixed daemon, which reports the sample experiment done once `go` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.go = threading.Event()

    def events(self) -> Iterator[dict[str, Any]]:
        """One `experiment_status` event once `go` is set, then silence."""
        self.go.wait()
        yield {
            "event": "experiment_status",
            "experiment": sample_store.EXPERIMENT_ID,
            "time": sample_store.NOW,
            "data": {"status": "done", "error": None},
        }
        self.closed.wait()

    def close(self) -> None:
        """End `events()`, waiting or not."""
        self.go.set()
        super().close()


def test_an_experiment_that_ends_rings_the_bell_and_says_so(tmp_path: Path):
    home = tmp_path / "home"
    sample_store.fill(home)

    async def run() -> tuple[int, list[tuple[str, str]]]:
        link = EndingDaemon()
        app = DashboardApp(home, link=link, clock=lambda: sample_store.NOW)
        rings: list[int] = []
        app.bell = lambda: rings.append(1)  # type: ignore[method-assign]
        said = notifications(app)
        async with app.run_test(size=(80, 24)) as pilot:
            while not app.state.loaded:
                await pilot.pause(0.05)
            link.go.set()
            for _ in range(100):
                if said:
                    break
                await pilot.pause(0.05)
        return len(rings), said

    rings, said = asyncio.run(run())
    assert rings == 1
    assert ("resnet-cifar done, best 0.881111", "information") in said
