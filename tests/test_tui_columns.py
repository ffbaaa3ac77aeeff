"""The trials table's parameter columns: ordered by importance, short unambiguous headers, the same columns
whatever the trials, and the user's choice of columns (a key, the palette) remembered per experiment."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest

from tests import tui_sample_store as sample_store
from tests.tui_sample_store import FixedDaemon, loaded
from tui import format as fmt
from tui import trial_rows
from tui.app import DashboardApp
from tui.prefs import PREFS_FILE
from tui.screens import overview
from tui.widgets.dialogs import ColumnsDialog
from tui.widgets.table import LiveTable


@pytest.fixture
def store_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The sample store, times in UTC."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    home = tmp_path / "home"
    sample_store.fill(home)
    yield home
    monkeypatch.delenv("TZ")
    time.tzset()


def _app(home: Path) -> DashboardApp:
    return DashboardApp(home, link=FixedDaemon(), experiment=sample_store.EXPERIMENT_ID, clock=lambda: sample_store.NOW)


def _keys(app: DashboardApp) -> list[str]:
    return [c.key for c in app.screen.query_one("#trials", LiveTable).columns]


def test_headers_are_short_and_never_two_alike():
    names = ["optimizer", "optimizer.lr", "optimizer.momentum", "model.hidden_size", "hidden_size", "lr"]
    labels = fmt.short_names(names)
    assert labels["optimizer.momentum"] == "momentum" and labels["optimizer.lr"] == "optimizer.lr"
    assert len(set(labels.values())) == len(names)
    cut = fmt.short_names(["hidden_size_1", "hidden_size_2", "hidden_size_3x"], 8)
    assert len(set(cut.values())) == 3 and all(len(label) <= 8 for label in cut.values())
    same = fmt.short_names(["aaaaaaaaaa1", "aaaaaaaaaa1b"], 4)
    assert len(set(same.values())) == 2 and all(len(label) <= 4 for label in same.values())


def test_param_columns_follow_importance_and_do_not_depend_on_the_trials():
    names = ["lr", "opt", "opt.m", "seed"]
    assert trial_rows.param_columns(names, {"seed"}, {}) == ["lr", "opt", "opt.m"]
    assert trial_rows.param_columns(names, {"seed"}, {"opt.m": 0.7, "lr": 0.2, "opt": 0.1}) == ["opt.m", "lr", "opt"]
    assert trial_rows.param_columns(names, (), {"seed": 0.9}) == ["seed", "lr", "opt", "opt.m"]


def test_the_table_orders_params_by_importance_and_shows_the_importance_panel(store_home):
    async def run() -> None:
        app = _app(store_home)
        async with app.run_test(size=(80, 24)) as pilot:
            await loaded(pilot)
            for _ in range(100):
                if app.state.importance:
                    break
                await pilot.pause(0.05)
            app.redraw(force=True)
            await pilot.pause()
            params = [k.removeprefix("param:") for k in _keys(app) if k.startswith("param:")]
            assert params == list(app.state.importance)
            await pilot.press("5")
            await pilot.pause()
            text = str(app.screen.query_one("#importance").render())
            assert "from 16 succeeded trials" in text and params[0] in text

    asyncio.run(run())


def test_columns_are_picked_reordered_hidden_and_remembered(store_home):
    async def choose(app: DashboardApp, pilot: Any) -> None:
        await loaded(pilot)
        app.redraw(force=True)
        await pilot.pause()
        before = _keys(app)
        await pilot.press("v")
        await pilot.pause()
        assert isinstance(app.screen, ColumnsDialog)
        await pilot.press("down", "down", "space", "down", "minus", "escape")
        await pilot.pause()
        keys = _keys(app)
        assert before[2] not in keys, "the third column was hidden"
        assert keys[2] == before[3], "the fourth moved up"
        assert len(keys) == len(before) - 1

    async def run() -> list[str]:
        app = _app(store_home)
        async with app.run_test(size=(80, 24)) as pilot:
            await choose(app, pilot)
            chosen = _keys(app)
        again = _app(store_home)
        async with again.run_test(size=(80, 24)) as pilot:
            await loaded(pilot)
            assert _keys(again) == chosen, "remembered for the experiment"
            await pilot.press("ctrl+p")
            await pilot.pause()
            await pilot.press(*"default columns")
            await pilot.pause(0.3)
            await pilot.press("enter")
            await pilot.pause(0.2)
            assert len(_keys(again)) == len(chosen) + 1, "the palette restores the default columns"
        return chosen

    asyncio.run(run())
    prefs = json.loads((store_home / PREFS_FILE).read_text())
    assert prefs == {"columns": {}}


def test_the_keys_help_lists_our_keys_over_the_screen(store_home):
    from tui.widgets.dialogs import KeysDialog

    async def run() -> list[tuple[str, str]]:
        app = _app(store_home)
        async with app.run_test(size=(80, 24)) as pilot:
            await loaded(pilot)
            await pilot.press("question_mark")
            await pilot.pause()
            assert isinstance(app.screen, KeysDialog)
            rows = app.screen.rows
            await pilot.press("question_mark")
            await pilot.pause()
            assert not isinstance(app.screen, KeysDialog)
            return rows

    rows = dict((what, keys) for keys, what in asyncio.run(run()))
    assert rows["Pause/Resume"] == "p" and rows["Columns"] == "v" and rows["Quit"] == "q"
    assert "Focus Next" not in rows, "Textual's own keys are not ours to list"


def test_marked_experiments_have_their_best_so_far_curves_overlaid(store_home):
    from tui.widgets.chart import BrailleChart

    sample_store.fill_finished(store_home)

    async def run() -> tuple[dict[str, list[float]], int]:
        app = DashboardApp(store_home, link=FixedDaemon(), clock=lambda: sample_store.NOW)
        async with app.run_test(size=(80, 24)) as pilot:
            await loaded(pilot)
            await pilot.press("space", "down", "space")
            for _ in range(100):
                if len(app.state.compared) == 2:
                    break
                await pilot.pause(0.05)
            app.redraw(force=True)
            await pilot.pause()
            assert app.screen.has_class("-comparing")
            series = len(app.screen.query_one("#compare", BrailleChart).series)
            compared = dict(app.state.compared)
            await pilot.press("x")
            await pilot.pause()
            assert not app.screen.has_class("-comparing"), "the GPUs again"
            return compared, series

    compared, series = asyncio.run(run())
    assert series == 2 and set(compared) == {sample_store.EXPERIMENT_ID, "9b07e4aa"}
    running_best = compared[sample_store.EXPERIMENT_ID]
    assert all(b >= a for a, b in zip(running_best, running_best[1:], strict=False)), "a running best (maximize)"
    assert max(running_best) == pytest.approx(0.881111, abs=1e-6), "it reaches the best trial's value"


def test_every_overview_column_is_reachable_at_80_columns(store_home):
    """At 80x24 the columns that do not fit scroll in from the right, ID and NAME staying in place."""

    async def run() -> None:
        app = sample_store.dashboard(store_home)
        async with app.run_test(size=(80, 24)) as pilot:
            await loaded(pilot)
            table = app.screen.query_one("#experiments", LiveTable)
            header = table.render_line(0).text
            assert "CREATED" not in header and header.rstrip().endswith("›"), "more columns on the right, marked"
            seen = set(header.split())
            for _ in range(len(overview.COLUMNS)):
                await pilot.press("right")
                header = table.render_line(0).text
                seen |= set(header.replace("‹", " ").split())
                assert header.split()[:2] == ["ID", "NAME"], "the fixed columns stay"
            assert overview.COLUMNS[-1].label in header and "›" not in header, "scrolled to the last column"
            assert {c.label for c in overview.COLUMNS} <= seen
            assert "‹" in header and sample_store.EXPERIMENT_ID in table.render_line(1).text
            for _ in range(len(overview.COLUMNS)):
                await pilot.press("left")
            assert table.render_line(0).text.split()[:3] == ["ID", "NAME", "STATUS"], "back to the first columns"

    asyncio.run(run())


def test_the_overview_shows_every_column_when_they_fit(store_home):
    async def run() -> None:
        app = sample_store.dashboard(store_home)
        async with app.run_test(size=(120, 30)) as pilot:
            await loaded(pilot)
            table = app.screen.query_one("#experiments", LiveTable)
            assert table.shown_columns == [c.key for c in overview.COLUMNS]
            await pilot.press("right")
            assert table.shown_columns == [c.key for c in overview.COLUMNS] and "‹" not in table.render_line(0).text

    asyncio.run(run())
