"""Deleting an experiment from the dashboard: only an ended one, and only after a confirmation."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from automl.store import Store
from tests import tui_sample_store as sample_store
from tests.tui_sample_store import FixedDaemon, loaded, notifications
from tui.app import DashboardApp
from tui.screens.overview import OverviewScreen
from tui.widgets.dialogs import ConfirmDialog

FINISHED = "9b07e4aa"


@pytest.fixture
def store_home(tmp_path: Path) -> Path:
    """The sample store: a running and a finished experiment."""
    home = tmp_path / "home"
    sample_store.fill(home)
    sample_store.fill_finished(home, exp_id=FINISHED)
    (home / "experiments" / FINISHED / "trials" / "1").mkdir(parents=True)
    return home


def _ids(home: Path) -> list[str]:
    store = Store.open_for_reading(home)
    try:
        return sorted(e.id for e in store.experiments())
    finally:
        store.close()


def test_delete_asks_first_and_removes_an_ended_experiment(store_home):
    async def run() -> None:
        app = DashboardApp(store_home, link=FixedDaemon(), experiment=FINISHED, clock=lambda: sample_store.NOW)
        async with app.run_test(size=(80, 24)) as pilot:
            await loaded(pilot)
            await pilot.press("D")
            await pilot.pause()
            assert isinstance(app.screen, ConfirmDialog)
            await pilot.press("n")
            await pilot.pause()
            assert FINISHED in _ids(store_home), "cancelled: nothing deleted"
            await pilot.press("D")
            await pilot.pause()
            await pilot.press("y")
            for _ in range(100):
                if FINISHED not in _ids(store_home) and isinstance(app.screen, OverviewScreen):
                    break
                await pilot.pause(0.05)
            assert isinstance(app.screen, OverviewScreen), "back to the overview"

    asyncio.run(run())
    assert _ids(store_home) == [sample_store.EXPERIMENT_ID]
    assert not (store_home / "experiments" / FINISHED).exists()


def test_a_running_experiment_is_not_deleted(store_home):
    async def run() -> list[tuple[str, str]]:
        app = DashboardApp(
            store_home, link=FixedDaemon(), experiment=sample_store.EXPERIMENT_ID, clock=lambda: sample_store.NOW
        )
        async with app.run_test(size=(80, 24)) as pilot:
            await loaded(pilot)
            said = notifications(app)
            await pilot.press("D")
            await pilot.pause()
            assert not isinstance(app.screen, ConfirmDialog)
            return said

    said = asyncio.run(run())
    assert said == [("resnet-cifar is running: stop it first (s), then delete it", "warning")]
    assert _ids(store_home) == sorted([sample_store.EXPERIMENT_ID, FINISHED])
