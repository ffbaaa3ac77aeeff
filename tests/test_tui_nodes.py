"""Trials and GPUs of a cluster's nodes in the dashboard: a NODE column once a trial ran on a node, the node on
the trial screen, the GPU panel grouped by node."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests import tui_sample_store as sample_store
from tests.tui_sample_store import loaded
from tui.widgets.table import LiveTable

EXP = sample_store.EXPERIMENT_ID


@pytest.fixture
def cluster_home(tmp_path: Path) -> Path:
    """The sample experiment, every other trial run on node `worker-2`, the rest on the daemon's machine."""
    home = tmp_path / "home"
    sample_store.fill(home, nodes=(None, "worker-2"))
    return home


def _trials_table(app) -> LiveTable:
    return app.screen.query_one("#trials", LiveTable)


def test_the_trials_table_has_a_node_column_once_a_trial_ran_on_a_node(cluster_home):
    async def run() -> None:
        app = sample_store.dashboard(cluster_home, EXP)
        async with app.run_test(size=(160, 45)) as pilot:
            await loaded(pilot)
            table = _trials_table(app)
            assert "node" in table.shown_columns and "NODE" in table.render_line(0).text
            rows = {line.split()[0]: line for line in (table.render_line(y).text for y in range(1, 25)) if line.strip()}
            assert "worker-2" in rows["2"] and "worker-2" not in rows["1"], "trial 2 ran on worker-2, trial 1 here"

    asyncio.run(run())


def test_no_node_column_when_every_trial_ran_on_the_daemons_machine(store_home):
    async def run() -> None:
        app = sample_store.dashboard(store_home, EXP)
        async with app.run_test(size=(160, 45)) as pilot:
            await loaded(pilot)
            assert "node" not in [c.key for c in _trials_table(app).columns]

    asyncio.run(run())


def test_the_trial_screen_names_the_node_on_top(cluster_home):
    async def run() -> None:
        app = sample_store.dashboard(cluster_home, EXP)
        async with app.run_test(size=(80, 24)) as pilot:
            await loaded(pilot)
            app.open_trial(EXP, 2)
            await pilot.pause()
            facts = str(app.screen.query_one("#params").render()).splitlines()
            assert facts[0].split()[0] == "status" and facts[1].split() == ["node", "worker-2"]
            await pilot.press("escape")
            app.open_trial(EXP, 1)
            await pilot.pause()
            assert "node" not in str(app.screen.query_one("#params").render()).split()

    asyncio.run(run())
