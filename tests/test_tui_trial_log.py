"""The trial screen's log pane shows an NNI script's trial.log, where `import nni` sends its print() output."""

from __future__ import annotations

import asyncio

from tests import tui_sample_store as sample_store
from tests.helpers import wait_until_async
from tests.tui_sample_store import dashboard, loaded


def test_the_log_pane_opens_on_nni_trial_log_and_switches_through_every_stream(store_home):
    trial_dir = store_home / "experiments" / sample_store.EXPERIMENT_ID / "trials" / "24"
    (trial_dir / "trial.log").write_text("[2026-01-01 00:00:00] PRINT accuracy 0.91\n")
    seen = asyncio.run(_streams_shown(dashboard(store_home, sample_store.EXPERIMENT_ID)))
    assert [stream for stream, _ in seen] == ["trial.log", "stdout", "stderr", "trial.log"]
    assert "PRINT accuracy 0.91" in seen[0][1] and "epoch 17" in seen[1][1]
    assert seen[2][1] == "(empty)", "a stream with nothing in it says so"


async def _streams_shown(app) -> list[tuple[str, str]]:
    """Open the selected trial, then press `l` three times: each stream's name and text as shown."""
    seen = []
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(pilot)
        await pilot.press("enter")
        for _ in range(4):
            log = await _log_once_read(pilot)
            seen.append((str(log.border_title).split(" ", 1)[0], "\n".join(log.lines)))
            await pilot.press("l")
    return seen


async def _log_once_read(pilot):
    log = pilot.app.screen.query_one("#log")
    await pilot.pause(0.05)
    await wait_until_async(
        lambda: log.lines or "nothing written yet" in str(log.border_title), "the log pane's text", pause=pilot.pause
    )
    return log


def test_a_short_log_shows_every_line_on_a_tall_terminal(store_home):
    assert asyncio.run(_hidden_rows(dashboard(store_home, sample_store.EXPERIMENT_ID))) == 0


async def _hidden_rows(app) -> int:
    """Open the selected trial at 200x50, where its 18-line log fits: how many of its rows are scrolled out of view."""
    async with app.run_test(size=(200, 50)) as pilot:
        await loaded(pilot)
        await pilot.press("enter")
        log = pilot.app.screen.query_one("#log")
        await wait_until_async(lambda: "epoch 17" in "\n".join(log.lines), "the whole log", pause=pilot.pause)
        await pilot.pause(0.1)
        return log.max_scroll_y
