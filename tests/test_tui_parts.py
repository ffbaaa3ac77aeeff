"""The dashboard's parts without a screen: braille charts, number spelling, the state, the store reader, the
trials table's order."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from automl.config.model import CostPolicy
from automl.store import Metric, Store
from tests import tui_sample_store as sample_store
from tui import format as fmt
from tui import trial_rows
from tui.braille import Series, draw
from tui.reader import StoreReader
from tui.screens import overview
from tui.state import DashboardState, StoreRead, TrialState

EXP = sample_store.EXPERIMENT_ID


def _text(rows: list[list[tuple[str, str | None]]]) -> list[str]:
    return ["".join(text for text, _ in row) for row in rows]


def _dots(char: str) -> int:
    return ord(char) - 0x2800 if 0x2800 <= ord(char) <= 0x28FF else 0


def _plot(row: str) -> str:
    """A chart row without its y axis."""
    return row[max(row.find("┤"), row.find("│")) + 1 :]


# braille charts


def test_a_rising_line_runs_from_the_bottom_left_to_the_top_right():
    rows = _text(draw([Series("a", [0, 1], [0.0, 1.0], "red")], width=20, height=6))
    assert len(rows) == 6 and all(len(row) == 20 for row in rows)
    top, bottom = rows[0], rows[4]
    assert top.lstrip().startswith("1┤") and bottom.lstrip().startswith("0┤"), "the highest value on top"
    assert _dots(_plot(bottom)[0]) & 0x40, "the first point: lowest dot of the first column"
    assert _dots(_plot(top)[-1]) & 0x08, "the last point: highest dot of the last column"
    assert rows[5].lstrip().startswith("└0") and rows[5].endswith("1"), "x axis from the first to the last x"


def test_thinning_keeps_a_single_spike_among_thousands_of_points():
    ys = [0.0] * 10_000
    ys[6_543] = 1.0
    rows = _text(draw([Series("a", list(range(10_000)), ys, "red")], width=30, height=5))
    plot = [_plot(row) for row in rows[:-1]]
    assert any(_dots(c) for c in plot[0]), "the spike reaches the top row"
    assert all(_dots(c) for c in plot[-1][1:]), "the baseline is drawn all along"


def test_later_series_are_drawn_over_earlier_ones_each_in_its_colour():
    series = [
        Series("a", [0, 1], [0.0, 0.0], "red"),
        Series("b", [0, 1], [1.0, 1.0], "blue"),
        Series("c", [0, 1], [0.0, 0.0], "green"),
    ]
    rows = draw(series, width=20, height=5)
    colors = {color for row in rows[:-1] for text, color in row if text.strip() and color != "bright_black"}
    assert colors == {"blue", "green"}, "red is hidden under green, which runs along the same line"


def test_a_missing_value_breaks_the_line():
    ys = [0.0] * 10 + [None] * 10 + [0.0] * 10
    bottom = _text(draw([Series("a", list(range(30)), ys, "red")], width=32, height=3, y_range=(0, 1)))[1]
    plot = _plot(bottom)
    assert _dots(plot[0]) and _dots(plot[-1])
    assert not any(_dots(c) for c in plot[12:18]), "nothing drawn across the gap"


def test_points_are_dots_not_lines():
    rows = _text(draw([Series("a", [0, 1], [0.0, 1.0], "red", points=True)], width=20, height=6))
    assert sum(bin(_dots(c)).count("1") for row in rows[:-1] for c in _plot(row)) == 2


def test_nothing_to_draw_says_so():
    assert "no data yet" in "".join(_text(draw([Series("a", [], [], "red")], width=30, height=5)))


# spelling numbers


@pytest.mark.parametrize(
    ("value", "width", "text"),
    [
        (0.77367123, 8, "0.77367"),
        (0.0008012, 7, "8.01e-4"),
        (1e-9, 8, "1e-9"),
        (123456.7, 8, "1.2346e5"),
        (3, 8, "3"),
        (None, 8, "—"),
        (math.nan, 8, "—"),
        (-0.5, 4, "-0.5"),
    ],
)
def test_numbers_fit_their_width(value, width, text):
    assert fmt.number(value, width) == text
    assert len(fmt.number(value, width)) <= width


def test_durations_money_and_bars():
    assert [fmt.duration(s) for s in (42, 192, 3900, 2 * 86400 + 3 * 3600, None)] == [
        "42s",
        "3m12s",
        "1h05m",
        "2d03h",
        "—",
    ]
    assert fmt.money(4.1, "USD") == "$4.10" and fmt.money(4.1, "CHF") == "4.10 CHF" and fmt.money(None, "EUR") == "—"
    assert fmt.bar(0.5, 4) == ("██", "░░") and fmt.bar(1 / 16, 2) == ("▏", "░")


# the state


def _event(name: str, exp: str | None = EXP, when: float = 100.0, **data):
    return {"v": 1, "event": name, "experiment": exp, "time": when, "data": data}


def test_events_update_the_open_experiment_and_the_gpus():
    state = DashboardState()
    state.apply_read(StoreRead(0, experiments=[_summary()]))
    state.open(EXP)
    assert state.apply_event(_event("trial_started", trial=1, params={"x": 0.5}, gpus=[0])) == "all"
    assert state.apply_event(_event("trial_metric", trial=1, kind="intermediate", step=1, value=0.1)) == "metrics"
    assert (
        state.apply_event(_event("trial_metric", exp="other", trial=1, kind="intermediate", step=1, value=0.1)) is None
    ), "another experiment's metrics are not read"
    assert state.apply_event(_event("trial_started", exp="other", trial=7, params={}, gpus=[1])) == "summaries", (
        "another experiment's trials are not read, only its headline figures"
    )
    assert 7 not in state.trials
    state.apply_event(_event("trial_ended", when=160.0, trial=1, status="succeeded", value=0.9, error=None))
    trial = state.trials[1]
    assert (trial.status, trial.value, trial.started, trial.ended, trial.gpus) == ("succeeded", 0.9, 100.0, 160.0, [0])
    state.apply_event(_event("experiment_updated", concurrency=4, max_trials=50, max_duration=None))
    state.apply_event(_event("experiment_status", status="paused", error=None))
    assert (state.summary.concurrency, state.summary.max_trials, state.summary.status) == (4, 50, "paused")
    state.apply_event(_event("experiment_note", note="the tuner has no more configurations after 6: done"))
    assert state.summary.note == "the tuner has no more configurations after 6: done"
    for tick in range(3):
        sample = sample_store.gpu_sample(tick)
        sample["data"]["gpus"][0]["processes"].append("not a process")
        state.apply_event(sample)
    assert list(state.gpus) == [0, 1] and len(state.gpus[0].utilization) == 3
    gpu0 = sample["data"]["gpus"][0]
    assert state.gpus[0].memory[-1] == pytest.approx(100 * gpu0["memory_used_mib"] / gpu0["memory_total_mib"])
    assert state.gpus[0].processes == gpu0["processes"][:-1], "what is not a process is dropped"


def test_reads_for_an_experiment_no_longer_open_are_dropped():
    state = DashboardState()
    generation = state.open(EXP)
    state.open("other")
    state.apply_read(StoreRead(generation, trials=[TrialState(1, "running", {})]))
    assert state.trials == {}


def test_best_so_far_follows_the_objective_direction():
    state = DashboardState()
    state.apply_read(StoreRead(0, experiments=[_summary(mode="minimize")]))
    generation = state.open(EXP)
    state.apply_read(
        StoreRead(
            generation,
            trials=[
                TrialState(1, "succeeded", {}, value=0.5, ended=1.0),
                TrialState(2, "succeeded", {}, value=0.7, ended=2.0),
                TrialState(3, "failed", {}, value=None, ended=3.0),
                TrialState(4, "succeeded", {}, value=0.2, ended=4.0),
            ],
        )
    )
    assert state.best_so_far() == ([1.0, 2.0, 3.0], [0.5, 0.7, 0.2], [0.5, 0.5, 0.2])
    assert state.best_trial().id == 4


# the store reader


def test_the_reader_reads_curves_once_and_then_only_what_is_new(tmp_path: Path):
    home = tmp_path / "home"
    sample_store.fill(home, trials=6, steps=10, running=2)
    reader = StoreReader(home)
    first = reader.read(1, EXP, everything=False)
    assert first.reset_curves and len(first.trials) == 6
    assert sum(len(steps) for steps, _ in first.points.values()) == sum(t.steps for t in _trials(home))
    assert reader.read(1, EXP, everything=False).points == {}, "nothing new"
    store = Store(home)
    running = [t for t in store.trials(EXP) if t.status == "running"][0]
    store.add_metrics(running, [Metric(99, "intermediate", 99, 0.42, {"default": 0.42}, 0.0)], 0)
    store.close()
    assert reader.read(1, EXP, everything=False).points == {running.id: ([99], [0.42])}
    again = reader.read(2, EXP, everything=False)
    assert again.reset_curves and len(again.points) == 6, "a new generation reads from the start"
    reader.close()


def test_the_reader_reads_again_only_new_trials_and_those_not_finished(tmp_path: Path):
    home = tmp_path / "home"
    sample_store.fill(home, trials=8, steps=3, running=2)
    reader = StoreReader(home)
    state = DashboardState()
    generation = state.open(EXP)
    first = reader.read(generation, EXP, everything=True)
    state.apply_read(first)
    assert len(first.trials) == 8
    running = [t.id for t in first.trials if t.status == "running"]
    store = Store(home)
    ending = next(t for t in store.trials(EXP) if t.id == running[0])
    store.trial_ended(ending, "succeeded", 0, None, 0.987, usage={"gpu_seconds": 12.0})
    new = store.add_trial(EXP, {"lr": 0.5, "batch_size": 32, "dropout": 0.2, "optimizer": "adam"}, 0, [])
    store.close()
    second = reader.read(generation, EXP, everything=True)
    assert sorted(t.id for t in second.trials) == sorted([*running, new.id]), "finished trials are not read again"
    state.apply_read(second)
    assert (state.trials[ending.id].status, state.trials[ending.id].value) == ("succeeded", 0.987)
    assert state.trials[ending.id].cost["gpu_seconds"] == 12.0
    assert state.trials[new.id].params["optimizer"] == "adam" and len(state.trials) == 9
    (summary,) = second.experiments
    assert (summary.running, summary.finished) == (1, 7), "the summary counts every trial, read now or before"
    third = reader.read(generation, EXP, everything=True)
    assert sorted(t.id for t in third.trials) == [running[1], new.id], "the trial that ended is not read again"
    reader.close()


def test_summaries_count_trials_and_take_the_daemons_cost(tmp_path: Path):
    home = tmp_path / "home"
    sample_store.fill(home, trials=10, steps=5, running=2)
    (summary,) = StoreReader(home).read(1, None, everything=True).experiments
    trials = _trials(home)
    assert (summary.running, summary.finished) == (2, 8)
    best = max((t for t in trials if t.status == "succeeded"), key=lambda t: t.value)
    assert (summary.best_trial, summary.best_value) == (best.id, best.value)
    assert summary.cost["currency"] == "EUR"
    assert summary.cost["money"] == pytest.approx(sum(t.cost or 0 for t in trials), abs=1e-5)
    assert summary.param_names == ["lr", "batch_size", "dropout", "optimizer"]
    assert summary.gpus_in_use == [0, 1]


def test_cost_is_money_with_prices_and_gpu_hours_without(tmp_path: Path):
    home = tmp_path / "home"
    sample_store.fill(home, trials=4, steps=3, running=0, gpus=1)
    sample_store.fill(
        home, trials=4, steps=3, running=0, gpus=1, name="unpriced", exp_id="0000beef", prices=CostPolicy()
    )
    summaries = {s.id: s for s in StoreReader(home).read(1, None, everything=True).experiments}
    priced, unpriced = summaries[EXP], summaries["0000beef"]
    assert priced.cost["money"] > 0 and unpriced.cost["money"] is None
    assert str(overview.experiment_cells(priced, 0.0)["cost"]).startswith("€")
    gpu_hours = unpriced.cost["gpu_seconds"] / 3600
    assert gpu_hours > 0 and overview.experiment_cells(unpriced, 0.0)["cost"] == f"{gpu_hours:.1f}GPUh"
    trial = TrialState(1, "succeeded", {}, cost={"gpu_seconds": 5400.0, "cost": 0.0})
    assert trial_rows.cells(trial, [], None, None, True, 0.0, None)["cost"] == "1.50h"
    trial.cost["cost"] = 1.25
    assert trial_rows.cells(trial, [], None, None, True, 0.0, "EUR")["cost"] == "€1.25"


# the trials table


def test_order_sorts_missing_values_last_and_filters_by_status():
    trials = {
        1: TrialState(1, "succeeded", {}, value=0.3),
        2: TrialState(2, "failed", {}),
        3: TrialState(3, "succeeded", {}, value=0.9),
        4: TrialState(4, "running", {}),
    }
    trials[4].add_points([1], [0.5], maximize=True)
    assert trial_rows.order(trials, "best", True, None, 0.0, True) == [3, 4, 1, 2]
    assert trial_rows.order(trials, "best", False, None, 0.0, True) == [1, 4, 3, 2]
    assert trial_rows.order(trials, "id", True, "succeeded", 0.0, True) == [3, 1]
    assert trial_rows.filters(trials.values()) == [None, "running", "succeeded", "failed"]


def _summary(mode: str = "maximize"):
    from tui.state import ExperimentSummary

    return ExperimentSummary(EXP, "exp", "running", 0.0, mode=mode)


def _trials(home: Path):
    store = Store.open_for_reading(home)
    try:
        return store.trials(EXP)
    finally:
        store.close()


def test_the_status_bar_shows_a_store_that_takes_no_writes_until_it_does_again():
    from tui.widgets.status_bar import link_text

    state = DashboardState()
    state.set_link(True, "connected", {"pid": 1, "store_fault": {"error": "database is locked", "since": 0.0}})
    assert "store takes no writes: database is locked" in link_text(state).plain
    state.apply_event({"event": "store_fault", "experiment": None, "time": 1.0, "data": {"fault": None}})
    assert link_text(state).plain == "● daemon"
    state.apply_event(
        {
            "event": "store_fault",
            "experiment": None,
            "time": 2.0,
            "data": {"fault": {"error": "database or disk is full"}},
        }
    )
    assert "database or disk is full" in link_text(state).plain


def test_eta_from_trial_durations_and_the_budget_left():
    from tui.state import ExperimentSummary

    summary = ExperimentSummary(EXP, "exp", "running", 1000.0, max_trials=10, concurrency=2, finished=4)
    assert summary.eta(2000.0) is None, "no trial finished yet: no estimate"
    summary.mean_trial_seconds = 60.0
    assert summary.eta(2000.0) == 3 * 60.0, "6 trials left, 2 at a time, a minute each"
    summary.max_duration = 1100.0
    assert summary.eta(2000.0) == 100.0, "max_duration ends it sooner"
    summary.status = "done"
    assert summary.eta(2000.0) is None


def test_the_scatter_fits_its_axis_to_the_parameter():
    from tui.scatter import scatter

    trials = [
        TrialState(n, "succeeded", {"lr": 10.0 ** -(n % 4 + 1), "opt": ["sgd", "adam"][n % 2]}, value=n / 10)
        for n in range(1, 9)
    ]
    trials.append(TrialState(9, "failed", {"lr": 0.5, "opt": "sgd"}))
    log = scatter(trials, "lr", "loguniform", best_id=8)
    assert log.axis == "log" and [label for _, label in log.ticks(-4.0, -1.0)] == ["0.0001", "0.001", "0.01", "0.1"]
    assert sorted(log.series[0].xs + log.series[1].xs) == sorted(float(-(n % 4 + 1)) for n in range(1, 9))
    assert (log.series[1].xs, log.series[1].ys) == ([-1.0], [0.8]), "the best trial, drawn last"
    assert scatter(trials, "lr", "uniform", best_id=8).axis == "linear"
    choice = scatter(trials, "opt", "choice", best_id=8)
    assert choice.axis == "categories" and choice.x_range == (-0.5, 1.5)
    assert [label for _, label in choice.ticks(-0.5, 1.5)] == ["adam", "sgd"]
    assert all(abs(x - round(x)) <= 0.3 for x in choice.series[0].xs), "each dot near its category"
