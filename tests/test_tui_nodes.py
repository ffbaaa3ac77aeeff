"""Trials and GPUs of a cluster's nodes in the dashboard: a NODE column once a trial ran on a node, the node on
the trial screen, the GPU panel grouped by node."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests import tui_sample_store as sample_store
from tests.helpers import wait_until_async
from tests.tui_sample_store import WORKER_NODE, ClusterDaemon, loaded
from tui import app as tui_app
from tui import format as fmt
from tui.state import DashboardState
from tui.widgets.gpu_panel import GpuPanel
from tui.widgets.table import LiveTable

EXP = sample_store.EXPERIMENT_ID


@pytest.fixture
def cluster_home(tmp_path: Path) -> Path:
    """The sample experiment, every other trial run on the cluster's worker node, the rest on the daemon's
    machine."""
    home = tmp_path / "home"
    sample_store.fill(home, nodes=(None, WORKER_NODE))
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
            short = WORKER_NODE[:8]
            assert short in rows["2"] and short not in rows["1"], "trial 2 ran on the worker node, trial 1 here"

    asyncio.run(run())


def test_a_ray_node_id_is_named_by_its_first_8_digits_any_other_name_whole():
    assert fmt.node_name(WORKER_NODE) == WORKER_NODE[:8]
    assert fmt.node_name("gpu-box-3.lab.example.org") == "gpu-box-3.lab.example.org"


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
            assert facts[0].split()[0] == "status" and facts[1].split() == ["node", WORKER_NODE]
            await pilot.press("escape")
            app.open_trial(EXP, 1)
            await pilot.pause()
            assert "node" not in str(app.screen.query_one("#params").render()).split()

    asyncio.run(run())


@pytest.fixture
def cluster_app(cluster_home: Path, monkeypatch: pytest.MonkeyPatch):
    """The dashboard on the cluster sample, asking the stand-in daemon for its GPUs every 0.1 s."""
    monkeypatch.setattr(tui_app, "GPUS_EVERY", 0.1)
    return lambda exp=None: tui_app.DashboardApp(
        cluster_home, link=ClusterDaemon(), experiment=exp, clock=lambda: sample_store.NOW
    )


async def _gpu_panel_text(pilot) -> list[str]:
    app = pilot.app
    await loaded(pilot)
    await wait_until_async(lambda: len(app.state.node_gpus) == 2, "the worker node's GPUs listed", pause=pilot.pause)
    app.redraw(force=True)
    await pilot.pause()
    return str(app.screen.query_one(GpuPanel).render()).splitlines()


def test_the_gpu_panel_groups_gpus_by_node_this_machine_first(cluster_app):
    async def run() -> None:
        app = cluster_app()
        async with app.run_test(size=(100, 40)) as pilot:
            lines = await _gpu_panel_text(pilot)
            headings = [n for n, line in enumerate(lines) if line.startswith("▸")]
            assert len(headings) == 2 and lines[0].startswith("▸ this machine  2 GPUs")
            assert lines[headings[1]] == f"▸ node 10.0.0.7 · {WORKER_NODE[:8]}  2 GPUs"
            here, there = lines[1 : headings[1]], lines[headings[1] + 1 :]
            assert [line.split()[0] for line in here if line.startswith("GPU")] == ["GPU0", "GPU1"]
            gpus_there = [line.split()[:2] for line in there if line.startswith("GPU")]
            assert gpus_there == [["GPU0", "A100-SXM4-80GB"], ["GPU1", "A100-SXM4-80GB"]]
            assert "takes no trial: another user's process" in "\n".join(there)
            assert "4 GPUs" in app.screen.query_one("#status").render_line(0).text, "the headline counts every node's"

    asyncio.run(run())


def test_one_machine_s_gpus_have_no_headings(store_home):
    async def run() -> None:
        app = sample_store.dashboard(store_home)
        async with app.run_test(size=(100, 40)) as pilot:
            await loaded(pilot)
            lines = str(app.screen.query_one(GpuPanel).render()).splitlines()
            assert lines[0].startswith("GPU0") and not any(line.startswith("▸") for line in lines)

    asyncio.run(run())


def test_a_node_that_leaves_the_cluster_leaves_the_panel():
    state = DashboardState()
    listing = ClusterDaemon().request("gpus")["gpus"]
    state.take_gpu_listing(listing)
    assert sorted(state.gpus) == [0, 1] and sorted(state.node_gpus) == [(WORKER_NODE, 0), (WORKER_NODE, 1)]
    worker = state.node_gpus[(WORKER_NODE, 1)]
    assert worker.node_address == "10.0.0.7" and len(worker.utilization) == 1, "no sample event: the answer's reading"
    state.take_gpu_listing([gpu for gpu in listing if not gpu.get("node")])
    assert sorted(state.gpus) == [0, 1] and not state.node_gpus
