"""Screenshots of the dashboard's screens with fixed data (a store filled with fixed values, a stand-in daemon),
compared with the accepted ones in __snapshots__ (`pytest --snapshot-update` accepts new ones)."""

from __future__ import annotations

from typing import Any

import pytest

from tests import tui_sample_store as sample_store
from tests.helpers import wait_until_async
from tests.tui_sample_store import dashboard, loaded

pytest.importorskip("pytest_textual_snapshot")


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


def test_experiment_at_200x50(snap_compare, store_home):
    assert snap_compare(dashboard(store_home, sample_store.EXPERIMENT_ID), terminal_size=(200, 50), run_before=loaded)


@pytest.mark.parametrize("key", ["s", "v", "question_mark"], ids=["stop", "columns", "keys_help"])
def test_experiment_dialogs_at_200x50(snap_compare, store_home, key: str):
    assert snap_compare(
        dashboard(store_home, sample_store.EXPERIMENT_ID), press=[key], terminal_size=(200, 50), run_before=loaded
    )


async def open_trial(pilot: Any) -> None:
    """Open the selected trial and wait for its whole log."""
    await loaded(pilot)
    await pilot.press("enter")
    await wait_until_async(
        lambda: "epoch 17" in "\n".join(pilot.app.screen.query_one("#log").lines),
        "the trial's log to its last line",
        pause=pilot.pause,
    )


def test_trial_details(snap_compare, store_home):
    assert snap_compare(
        dashboard(store_home, sample_store.EXPERIMENT_ID), terminal_size=(80, 24), run_before=open_trial
    )


def test_trial_details_on_a_large_terminal(snap_compare, store_home):
    assert snap_compare(
        dashboard(store_home, sample_store.EXPERIMENT_ID), terminal_size=(200, 50), run_before=open_trial
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
