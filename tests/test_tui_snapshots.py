"""Screenshots of the dashboard's screens with fixed data (a store filled with fixed values, a stand-in daemon),
compared with the accepted ones in __snapshots__ (`pytest --snapshot-update` accepts new ones)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import tui_sample_store as sample_store
from tui.app import DashboardApp

pytest.importorskip("pytest_textual_snapshot")


class FixedDaemon:
    """A daemon stand-in: answers `status`, sends a minute of GPU samples, then nothing until closed."""

    def __init__(self) -> None:
        self.closed = threading.Event()

    def status(self) -> dict[str, Any]:
        """A running daemon with two GPUs."""
        return {"running": True, "pid": 4242, "gpus": 2, "experiments": [sample_store.EXPERIMENT_ID]}

    def events(self) -> Iterator[dict[str, Any]]:
        """30 GPU samples, then silence."""
        yield from (sample_store.gpu_sample(tick) for tick in range(30))
        self.closed.wait()

    def request(self, op: str, **args: Any) -> Any:
        """Answered with an empty result."""
        return {}

    def close(self) -> None:
        """End `events()`."""
        self.closed.set()


@pytest.fixture
def store_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A data directory holding a running and a finished experiment with fixed values; times shown in UTC."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    home = tmp_path / "home"
    sample_store.fill(home)
    sample_store.fill_finished(home)
    log = home / "experiments" / sample_store.EXPERIMENT_ID / "trials" / "24" / "stdout.log"
    log.parent.mkdir(parents=True)
    log.write_text("".join(f"epoch {n:2d}  loss {1.5 / (n + 1):.4f}  acc {0.5 + n / 60:.4f}\n" for n in range(18)))
    yield home
    monkeypatch.delenv("TZ")
    time.tzset()


def dashboard(home: Path, experiment: str | None = None) -> DashboardApp:
    """The app on the sample store, its clock stopped at the sample's moment."""
    return DashboardApp(
        home, link=FixedDaemon(), experiment=experiment, clock=lambda: sample_store.NOW, export_dir=home
    )


async def loaded(pilot: Any) -> None:
    """Wait until the store and all GPU samples are in, then draw everything."""
    app = pilot.app
    for _ in range(200):
        ready = (
            app.state.loaded
            and app.state.connected
            and len(app.state.gpus) == 2
            and all(len(g.utilization) == 30 for g in app.state.gpus.values())
        )
        if ready and (app.state.open_id is None or any(t.steps for t in app.state.trials.values())):
            break
        await pilot.pause(0.05)
    app.redraw(force=True)
    await pilot.pause()


def test_overview(snap_compare, store_home):
    assert snap_compare(dashboard(store_home), terminal_size=(80, 24), run_before=loaded)


def test_experiment_with_learning_curves(snap_compare, store_home):
    assert snap_compare(dashboard(store_home, sample_store.EXPERIMENT_ID), terminal_size=(80, 24), run_before=loaded)


def test_experiment_gpu_panel(snap_compare, store_home):
    assert snap_compare(
        dashboard(store_home, sample_store.EXPERIMENT_ID), press=["3"], terminal_size=(80, 24), run_before=loaded
    )


def test_experiment_cost_panel(snap_compare, store_home):
    assert snap_compare(
        dashboard(store_home, sample_store.EXPERIMENT_ID), press=["4"], terminal_size=(80, 24), run_before=loaded
    )


def test_experiment_on_a_large_terminal(snap_compare, store_home):
    assert snap_compare(dashboard(store_home, sample_store.EXPERIMENT_ID), terminal_size=(160, 45), run_before=loaded)


def test_trial_details(snap_compare, store_home):
    async def open_trial(pilot: Any) -> None:
        await loaded(pilot)
        await pilot.press("enter")
        for _ in range(100):
            if "epoch 17" in "\n".join(pilot.app.screen.query_one("#log").lines):
                break
            await pilot.pause(0.05)

    assert snap_compare(
        dashboard(store_home, sample_store.EXPERIMENT_ID), terminal_size=(80, 24), run_before=open_trial
    )


def test_stop_asks_first(snap_compare, store_home):
    assert snap_compare(
        dashboard(store_home, sample_store.EXPERIMENT_ID), press=["s"], terminal_size=(80, 24), run_before=loaded
    )


def test_experiment_importance_panel(snap_compare, store_home):
    assert snap_compare(
        dashboard(store_home, sample_store.EXPERIMENT_ID), press=["5"], terminal_size=(80, 24), run_before=loaded
    )


def test_columns_dialog(snap_compare, store_home):
    assert snap_compare(
        dashboard(store_home, sample_store.EXPERIMENT_ID), press=["v"], terminal_size=(80, 24), run_before=loaded
    )


def test_experiment_scatter_panel(snap_compare, store_home):
    assert snap_compare(
        dashboard(store_home, sample_store.EXPERIMENT_ID),
        press=["6", "a", "a"],
        terminal_size=(80, 24),
        run_before=loaded,
    )


def test_keys_help(snap_compare, store_home):
    assert snap_compare(
        dashboard(store_home, sample_store.EXPERIMENT_ID),
        press=["question_mark"],
        terminal_size=(80, 24),
        run_before=loaded,
    )


def test_overview_on_a_large_terminal(snap_compare, store_home):
    assert snap_compare(dashboard(store_home), terminal_size=(200, 50), run_before=loaded)


def test_overview_comparing_two_experiments(snap_compare, store_home):
    async def compare_two(pilot: Any) -> None:
        await loaded(pilot)
        await pilot.press("space", "down", "space")
        for _ in range(100):
            if len(pilot.app.state.compared) == 2:
                break
            await pilot.pause(0.05)
        pilot.app.redraw(force=True)
        await pilot.pause()

    assert snap_compare(dashboard(store_home), terminal_size=(80, 24), run_before=compare_two)
