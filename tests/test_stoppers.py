"""Early-stopping strategies on hand-made learning curves: ASHA, Hyperband, and NNI's Medianstop and Curvefitting."""

from __future__ import annotations

import logging
import math
import random
import re
import subprocess
import sys
import time
from collections.abc import Callable

import pytest

from automl.errors import UserError
from automl.stoppers import STOPPER_NAMES, Stopper, canonical_stopper_name, check_stopper, create_stopper

pytestmark = pytest.mark.filterwarnings("ignore::scipy.optimize.OptimizeWarning")

NAN = math.nan

Report = tuple[int, int, float | None]


def decisions(stopper: Stopper, reports: list[Report]) -> list[bool]:
    """The stopper's answer to each (key, step, value) report, in order."""
    return [stopper.report(key, step, value) for key, step, value in reports]


def at_step(step: int, values: list[float | None], first_key: int = 0) -> list[Report]:
    """One report per trial, all at `step`: trial first_key + i reports values[i]."""
    return [(first_key + i, step, value) for i, value in enumerate(values)]


def keys_in_bracket(stopper: Stopper, bracket: int, count: int) -> list[int]:
    """The first `count` keys that the stopper deals to `bracket`."""
    return [key for key in range(10_000) if stopper.bracket(key) == bracket][:count]


# ASHA


def test_asha_rungs_are_min_resource_times_powers_of_eta_below_max_resource() -> None:
    assert create_stopper("ASHA", {"max_resource": 27}, "maximize").rungs == (1, 3, 9)
    assert create_stopper("ASHA", {"max_resource": 28}, "maximize").rungs == (1, 3, 9, 27)
    assert create_stopper("ASHA", {}, "maximize").rungs == (1, 3, 9, 27, 81)
    args = {"min_resource": 2, "max_resource": 20, "reduction_factor": 2}
    assert create_stopper("asha", args, "minimize").rungs == (2, 4, 8, 16)


@pytest.mark.parametrize("mode, sign", [("maximize", 1.0), ("minimize", -1.0)])
def test_asha_keeps_the_top_third_at_each_rung(mode: str, sign: float) -> None:
    stopper = create_stopper("ASHA", {"max_resource": 27, "reduction_factor": 3}, mode)

    def signed(values: list[float]) -> list[float | None]:
        return [sign * value for value in values]

    # Rung 1: the first two go on (fewer than eta values); then only the best third goes on.
    rung1 = decisions(stopper, at_step(1, signed([0.5, 0.4, 0.3, 0.6, 0.55, 0.58])))
    assert rung1 == [False, False, True, False, True, False]
    # Step 2 is no rung: nobody is judged, however bad.
    assert decisions(stopper, at_step(2, signed([0.0, -5.0, 0.0, 0.0, 0.0, 0.0]))) == [False] * 6
    # Rung 3, among the survivors 0, 1, 3, 5: 0 and 1 go on (fewer than eta), 3 is not the best of three,
    # 5 is the best of four.
    rung3 = decisions(stopper, [(0, 3, sign * 0.7), (1, 3, sign * 0.1), (3, 3, sign * 0.65), (5, 3, sign * 0.9)])
    assert rung3 == [False, False, True, False]
    # Rung 9 starts empty again.
    assert decisions(stopper, [(5, 9, sign * 0.01)]) == [False]


def test_asha_a_tie_with_the_cutoff_goes_on() -> None:
    stopper = create_stopper("ASHA", {"max_resource": 10}, "maximize")
    # n=3 keeps 1: the best is 0.5, and two more at 0.5 tie with it; 0.49 is below it.
    assert decisions(stopper, at_step(1, [0.5, 0.5, 0.5, 0.49])) == [False, False, False, True]
    # n=5 keeps 1 (cutoff 0.5); n=6 keeps 2 (cutoff still 0.5).
    assert decisions(stopper, at_step(1, [0.5, 0.5], first_key=4)) == [False, False]
    # n=7 keeps 2: the second best is 0.5, and 0.5 - 1e-9 is below it.
    assert decisions(stopper, at_step(1, [0.5 - 1e-9], first_key=6)) == [True]


@pytest.mark.parametrize("mode", ["maximize", "minimize"])
def test_asha_stops_nan_and_none_at_a_rung_and_counts_them_as_worst(mode: str) -> None:
    sign = 1.0 if mode == "maximize" else -1.0
    stopper = create_stopper("ASHA", {"max_resource": 10}, mode)
    # A NaN or None at a rung stops the trial even while fewer than eta values were seen there.
    assert decisions(stopper, at_step(1, [NAN, None])) == [True, True]
    # They count as the worst values at the rung: the third value is the best of three and goes on,
    # the fourth is not the best of four.
    assert decisions(stopper, at_step(1, [sign * 0.1, sign * 0.05], first_key=2)) == [False, True]
    # Off the rungs, NaN and None are not judged.
    assert decisions(stopper, [(2, 2, NAN), (3, 2, None)]) == [False, False]


def test_asha_infinite_values_are_ordinary_extremes() -> None:
    stopper = create_stopper("ASHA", {"max_resource": 10}, "minimize")
    # A diverged loss (+inf) is the worst possible value when minimizing: stopped at once.
    assert decisions(stopper, at_step(1, [math.inf, 0.3, -math.inf])) == [True, False, False]


def test_asha_never_judges_a_trial_at_a_rung_it_did_not_reach() -> None:
    stopper = create_stopper("ASHA", {"max_resource": 27}, "maximize")
    assert decisions(stopper, at_step(1, [0.9, 0.8, 0.95])) == [False, False, False]
    # Trial 0 reports two steps only and ends: it has no value at rung 3.
    assert decisions(stopper, [(0, 2, 0.99)]) == [False]
    stopper.ended(0, "failed", None)
    # So at rung 3 trials 1 and 2 are the only two values: both go on, although 2 is worse than 1.
    assert decisions(stopper, [(1, 2, 0.9), (2, 2, 0.9), (1, 3, 0.9), (2, 3, 0.1)]) == [False] * 4
    # A third value makes the rung judge: 0.5 is not the best of three.
    assert decisions(stopper, [(3, 1, 0.99), (3, 2, 0.5), (3, 3, 0.5)]) == [False, False, True]


def test_asha_ignores_a_repeated_step() -> None:
    stopper = create_stopper("ASHA", {"max_resource": 10}, "maximize")
    assert decisions(stopper, at_step(1, [0.9, 0.8])) == [False, False]
    # Trial 1 reporting step 1 again is ignored: it neither adds a third value nor changes its own.
    assert decisions(stopper, [(1, 1, 0.99)]) == [False]
    # So 0.95 is the best of three and goes on; 0.85 is not the best of four.
    assert decisions(stopper, at_step(1, [0.95, 0.85], first_key=2)) == [False, True]


def test_asha_with_brackets_deals_keys_over_hyperbands_first_brackets() -> None:
    stopper = create_stopper("ASHA", {"max_resource": 81, "brackets": 2}, "maximize")
    assert stopper.rungs == (1, 3, 9, 27), "the first bracket's rungs, as without brackets"
    hyperband = create_stopper("Hyperband", {"max_resource": 81}, "maximize")
    period = 81 + 34  # Hyperband's shares of its first two brackets
    first = [stopper.bracket(key) for key in range(period)]
    assert [first.count(bracket) for bracket in (0, 1)] == [81, 34]
    assert [stopper.bracket(key) for key in range(period, 2 * period)] == first
    assert create_stopper("ASHA", {"max_resource": 81, "brackets": 5}, "maximize").rungs == hyperband.rungs[0]
    assert [
        create_stopper("ASHA", {"max_resource": 81, "brackets": 5}, "maximize").bracket(key) for key in range(300)
    ] == [hyperband.bracket(key) for key in range(300)], "all the brackets: Hyperband's dealing"


def test_asha_with_brackets_judges_a_later_bracket_only_from_its_first_rung() -> None:
    stopper = create_stopper("ASHA", {"max_resource": 27, "brackets": 2}, "maximize")
    in_bracket_0 = keys_in_bracket(stopper, 0, 1)[0]
    in_bracket_1 = keys_in_bracket(stopper, 1, 1)[0]
    assert decisions(stopper, [(in_bracket_0, 1, NAN)]) == [True]
    assert decisions(stopper, [(in_bracket_1, step, NAN) for step in (1, 2, 3)]) == [False, False, True]


@pytest.mark.parametrize(
    "args, message",
    [
        ({"max_resource": 27, "brackets": 0}, "brackets must be an integer >= 1, got 0"),
        ({"max_resource": 27, "brackets": 1.5}, "brackets must be an integer >= 1, got 1.5"),
        (
            {"max_resource": 27, "brackets": 5},
            "brackets must be at most 4 for min_resource=1, max_resource=27 and reduction_factor=3",
        ),
    ],
)
def test_asha_rejects_brackets_its_ladder_does_not_have(args: dict[str, object], message: str) -> None:
    with pytest.raises(UserError, match=f"ASHA: invalid classArgs: {message}"):
        create_stopper("ASHA", args, "maximize")


# Hyperband


def test_hyperband_brackets_rungs_and_shares() -> None:
    stopper = create_stopper("Hyperband", {"max_resource": 81, "reduction_factor": 3}, "maximize")
    assert stopper.rungs == ((1, 3, 9, 27), (3, 9, 27), (9, 27), (27,), ())
    assert stopper.shares == (81, 34, 15, 8, 5)
    other = create_stopper("Hyperband", {"min_resource": 2, "max_resource": 30, "reduction_factor": 2}, "maximize")
    assert other.rungs == ((2, 4, 8, 16), (4, 8, 16), (8, 16), (16,))
    assert other.shares == (8, 6, 4, 4)


def test_hyperband_deals_keys_to_brackets_in_hyperbands_proportions() -> None:
    stopper = create_stopper("Hyperband", {"max_resource": 81}, "maximize")
    period = sum(stopper.shares)
    first = [stopper.bracket(key) for key in range(period)]
    assert [first.count(bracket) for bracket in range(5)] == [81, 34, 15, 8, 5]
    assert [stopper.bracket(key) for key in range(period, 2 * period)] == first
    # Each key goes to the bracket furthest behind its share (ties to the lower bracket), so a short run of
    # keys is spread over the brackets rather than filling bracket 0 first.
    assert first[:13] == [0, 1, 0, 2, 0, 1, 0, 0, 3, 0, 1, 0, 4]
    other = create_stopper("Hyperband", {"min_resource": 2, "max_resource": 30, "reduction_factor": 2}, "maximize")
    assert other.shares == (8, 6, 4, 4)
    assert [other.bracket(key) for key in range(11)] == [0, 1, 2, 3, 0, 1, 0, 2, 3, 1, 0]
    # The dealing depends on the key only: a fresh stopper asked in another order agrees.
    fresh = create_stopper("Hyperband", {"max_resource": 81}, "minimize")
    assert [fresh.bracket(key) for key in reversed(range(period))] == first[::-1]
    assert create_stopper("ASHA", {}, "maximize").bracket(0) is None


def test_hyperband_judges_each_bracket_from_its_own_minimum_resource() -> None:
    stopper = create_stopper("Hyperband", {"max_resource": 81}, "maximize")
    in_bracket_0 = keys_in_bracket(stopper, 0, 1)[0]
    in_bracket_2 = keys_in_bracket(stopper, 2, 1)[0]
    in_bracket_4 = keys_in_bracket(stopper, 4, 1)[0]
    # NaN stops a trial at a rung; bracket 2 has no rung at steps 1 and 3, only at 9.
    assert decisions(stopper, [(in_bracket_0, 1, NAN)]) == [True]
    assert decisions(stopper, [(in_bracket_2, step, NAN) for step in range(1, 10)]) == [False] * 8 + [True]
    # The last bracket never stops anything when max_resource is a power of eta.
    assert decisions(stopper, [(in_bracket_4, step, NAN) for step in range(1, 82)]) == [False] * 81


def test_hyperband_brackets_are_independent_ladders() -> None:
    stopper = create_stopper("Hyperband", {"max_resource": 81}, "maximize")
    bracket_1 = keys_in_bracket(stopper, 1, 3)
    bracket_0 = keys_in_bracket(stopper, 0, 1)[0]
    # Three bracket-1 trials at their first rung (step 3): the third is not the best of three.
    reports = [(key, step, value) for key, value in zip(bracket_1, [0.9, 0.8, 0.1], strict=True) for step in (1, 2, 3)]
    assert decisions(stopper, reports) == [False] * 8 + [True]
    # A bracket-0 trial with an even worse value at step 3 is the first value of its own rung 3: it goes on.
    assert decisions(stopper, [(bracket_0, 1, 0.0), (bracket_0, 2, 0.0), (bracket_0, 3, 0.0)]) == [False] * 3


def test_judged_at_is_the_last_rung_of_the_trials_bracket_reached() -> None:
    asha = create_stopper("ASHA", {"max_resource": 81, "brackets": 2}, "maximize")
    first, second = keys_in_bracket(asha, 0, 1)[0], keys_in_bracket(asha, 1, 1)[0]
    assert [asha.judged_at(first, steps) for steps in (1, 2, 3, 8, 9, 80)] == [1, 1, 3, 3, 9, 27]
    assert [asha.judged_at(second, steps) for steps in (2, 3, 8, 9, 30)] == [2, 3, 3, 9, 27]
    hyperband = create_stopper("Hyperband", {"max_resource": 81}, "maximize")
    late = keys_in_bracket(hyperband, 3, 1)[0]
    assert [hyperband.judged_at(late, steps) for steps in (5, 27, 40)] == [5, 27, 27]
    assert create_stopper("Medianstop", {}, "maximize").judged_at(0, 7) == 7, "it judges every report"


# restore


def _curve_events(seed: int, trials: int, steps: int) -> list[Report]:
    """Interleaved reports of `trials` trials, each with its own quality, started one after another."""
    rng = random.Random(seed)
    quality = {key: rng.uniform(0.2, 1.0) for key in range(trials)}
    position = {key: 0 for key in range(trials)}
    started = 0
    events: list[Report] = []
    while any(position[key] < steps for key in range(trials)):
        running = [key for key in range(started) if position[key] < steps]
        if started < trials and (not running or rng.random() < 0.3):
            running = [started]
            started += 1
        key = rng.choice(running)
        position[key] += 1
        step = position[key]
        value = quality[key] * (1 - 0.7**step) + rng.uniform(-0.02, 0.02)
        events.append((key, step, None if rng.random() < 0.03 else value))
    return events


class _Replay:
    """Feeds events to a stopper the way the experiment loop does, and records what it saw."""

    def __init__(self, stopper: Stopper, steps: int) -> None:
        self.stopper = stopper
        self.steps = steps
        self.values: dict[int, list[float | None]] = {}
        self.status: dict[int, str] = {}

    def feed(self, events: list[Report]) -> list[tuple[int, int, bool]]:
        decided = []
        for key, step, value in events:
            if self.status.get(key, "running") != "running":
                continue
            self.values.setdefault(key, []).append(value)
            stop = self.stopper.report(key, step, value)
            decided.append((key, step, stop))
            if stop:
                self.status[key] = "early_stopped"
                self.stopper.ended(key, "early_stopped", None)
            elif step == self.steps:
                self.status[key] = "succeeded"
                self.stopper.ended(key, "succeeded", value)
            else:
                self.status[key] = "running"
        return decided

    def history(self) -> list[tuple[int, list[float | None], str]]:
        return [(key, list(values), self.status[key]) for key, values in sorted(self.values.items(), reverse=True)]


@pytest.mark.parametrize(
    "name, args",
    [
        ("ASHA", {"max_resource": 10}),
        ("ASHA", {"max_resource": 10, "reduction_factor": 2, "brackets": 3}),
        ("Hyperband", {"max_resource": 10, "reduction_factor": 2}),
        ("Medianstop", {"start_step": 2}),
    ],
)
@pytest.mark.parametrize("mode", ["maximize", "minimize"])
def test_restore_then_more_reports_decides_like_a_stopper_that_saw_everything(
    name: str, args: dict[str, int], mode: str
) -> None:
    steps = 10
    sign = 1.0 if mode == "maximize" else -1.0
    events = [(key, step, None if v is None else sign * v) for key, step, v in _curve_events(7, 40, steps)]
    cut = len(events) // 2
    live = _Replay(create_stopper(name, args, mode), steps)
    live.feed(events[:cut])

    restored = _Replay(create_stopper(name, args, mode), steps)
    restored.stopper.restore(live.history())
    forgetful = _Replay(create_stopper(name, args, mode), steps)
    for replay in (restored, forgetful):
        replay.values = {key: list(values) for key, values in live.values.items()}
        replay.status = dict(live.status)

    later = live.feed(events[cut:])
    assert restored.feed(events[cut:]) == later
    assert any(stop for _, _, stop in later), "the second half must stop some trials"
    assert forgetful.feed(events[cut:]) != later, "without restore the decisions differ"


# Medianstop

COMPLETED = [[0.5, 0.6, 0.7, 0.8], [0.4, 0.5, 0.6, 0.7], [0.6, 0.7, 0.8, 0.9]]


def _medianstop(mode: str, start_step: int, completed: list[list[float]], sign: float = 1.0) -> Stopper:
    stopper = create_stopper("Medianstop", {"start_step": start_step}, mode)
    for key, curve in enumerate(completed, start=100):
        decisions(stopper, [(key, step, sign * v) for step, v in enumerate(curve, start=1)])
        stopper.ended(key, "succeeded", sign * curve[-1])
    return stopper


@pytest.mark.parametrize("mode, sign", [("maximize", 1.0), ("minimize", -1.0)])
def test_medianstop_stops_a_clearly_worse_curve_from_start_step_on(mode: str, sign: float) -> None:
    stopper = _medianstop(mode, 3, COMPLETED, sign)
    bad = [(1, step, sign * 0.1) for step in (1, 2, 3)]
    good = [(2, step, sign * v) for step, v in enumerate([0.6, 0.7, 0.8], start=1)]
    assert decisions(stopper, bad) == [False, False, True]
    assert decisions(stopper, good) == [False, False, False]


def test_medianstop_ignores_a_repeated_step() -> None:
    stopper = _medianstop("maximize", 3, COMPLETED)
    # The repeated step 1 is not a second report: at step 2 the trial is still short of start_step.
    assert decisions(stopper, [(1, 1, 0.1), (1, 1, 0.1), (1, 2, 0.1), (1, 3, 0.1)]) == [False, False, False, True]


def test_medianstop_without_succeeded_trials_stops_nothing() -> None:
    stopper = create_stopper("Medianstop", {}, "maximize")
    assert decisions(stopper, [(1, step, 0.0) for step in range(1, 6)]) == [False] * 5
    stopper.ended(1, "failed", None)
    assert decisions(stopper, [(2, step, -1.0) for step in range(1, 6)]) == [False] * 5


def test_medianstop_learns_only_from_succeeded_trials() -> None:
    stopper = _medianstop("maximize", 1, [[0.5] * 4])
    for key in (200, 201):
        decisions(stopper, [(key, step, 0.9) for step in range(1, 5)])
        stopper.ended(key, "failed", None)
    # The median is that of the one succeeded trial (0.5): 0.6 goes on.
    assert decisions(stopper, [(1, 1, 0.6), (1, 2, 0.6)]) == [False, False]


def test_medianstop_nan_and_none_count_as_worst_without_crashing() -> None:
    stopper = _medianstop("maximize", 2, COMPLETED)
    # A good trial that turns NaN keeps its best value so far, which is above the median.
    assert decisions(stopper, [(1, 1, 0.9), (1, 2, NAN), (1, 3, None)]) == [False, False, False]
    # A trial with nothing but NaN and None is stopped at start_step.
    assert decisions(stopper, [(2, 1, None), (2, 2, NAN)]) == [False, True]
    # A succeeded trial with NaN in its history joins the completed ones without harm.
    decisions(stopper, [(3, 1, NAN), (3, 2, 0.9), (3, 3, 0.9), (3, 4, 0.9)])
    stopper.ended(3, "succeeded", 0.9)
    assert decisions(stopper, [(4, 1, 0.9), (4, 2, 0.9)]) == [False, False]


# Curvefitting

GOOD_CURVE = [0.5 + 0.4 * (1 - 0.8**step) for step in range(1, 21)]


def _curvefitting(args: dict[str, object] | None = None) -> Stopper:
    """A Curvefitting stopper that has seen one good trial succeed (its last value about 0.9)."""
    stopper = create_stopper("Curvefitting", {"epoch_num": 20, "start_step": 6, **(args or {})}, "maximize")
    decisions(stopper, [(0, step, value) for step, value in enumerate(GOOD_CURVE, start=1)])
    stopper.ended(0, "succeeded", GOOD_CURVE[-1])
    return stopper


def test_curvefitting_stops_a_hopeless_curve_at_start_step_and_keeps_a_promising_one() -> None:
    stopper = _curvefitting()
    assert decisions(stopper, [(1, step, 0.2) for step in range(1, 7)]) == [False] * 5 + [True]
    promising = [(2, step, value) for step, value in enumerate(GOOD_CURVE[:6], start=1)]
    assert decisions(stopper, promising) == [False] * 6


def test_curvefitting_judges_nothing_before_a_trial_succeeded() -> None:
    stopper = create_stopper("Curvefitting", {"epoch_num": 20, "start_step": 6}, "maximize")
    assert decisions(stopper, [(1, step, 0.2) for step in range(1, 9)]) == [False] * 8
    stopper.ended(1, "early_stopped", None)
    assert decisions(stopper, [(2, step, NAN) for step in range(1, 9)]) == [False] * 8


def test_curvefitting_best_value_comes_from_the_trial_that_ended() -> None:
    stopper = create_stopper("Curvefitting", {"epoch_num": 20, "start_step": 6}, "maximize")
    # Trial 1 climbs to about 0.9 while nothing is judged yet; then trial 0 succeeds at 0.3.
    decisions(stopper, [(1, step, value) for step, value in enumerate(GOOD_CURVE, start=1)])
    decisions(stopper, [(0, step, 0.3) for step in range(1, 7)])
    stopper.ended(0, "succeeded", 0.3)
    # Trial 2, at 0.29, is the last one judged before trial 1 succeeds.
    decisions(stopper, [(2, step, 0.29) for step in range(1, 7)])
    stopper.ended(1, "succeeded", GOOD_CURVE[-1])
    # With trial 1's 0.9 as the best, a flat 0.5 is hopeless (NNI alone would take the best from trial 2: 0.3).
    assert decisions(stopper, [(3, step, 0.5) for step in range(1, 7)]) == [False] * 5 + [True]


def test_curvefitting_judges_every_gap_steps_and_stops_unfittable_curves() -> None:
    stopper = _curvefitting({"gap": 2})
    values: list[float | None] = [*GOOD_CURVE[:6], NAN, GOOD_CURVE[7]]
    # Judged by NNI at step 6 (promising), not at 7; at 8 the curve holds a NaN and cannot be fitted.
    assert decisions(stopper, [(1, step, value) for step, value in enumerate(values, start=1)]) == [False] * 7 + [True]
    # +inf cannot be fitted either, but it is no reason to stop.
    assert decisions(stopper, [(2, step, math.inf) for step in range(1, 9)]) == [False] * 8


@pytest.mark.parametrize("where", ["assessor", "curve fit"])
def test_curvefitting_failure_inside_nni_lets_the_trial_go_on_and_warns_once(
    where: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from nni.algorithms.hpo.curvefitting_assessor import model_factory

    from automl.stoppers import nni_curvefitting

    def broken(*args: object) -> None:
        raise FloatingPointError("simulated failure")

    stopper = _curvefitting()
    if where == "assessor":
        monkeypatch.setattr(nni_curvefitting.CurvefittingAssessor, "assess_trial", broken)
    else:
        monkeypatch.setattr(model_factory.CurveModel, "fit_theta", broken)
    with caplog.at_level(logging.WARNING):
        assert decisions(stopper, [(1, step, 0.2) for step in range(1, 9)]) == [False] * 8
    warnings = [record for record in caplog.records if record.levelno >= logging.WARNING]
    assert len(warnings) == 1
    assert "Curvefitting could not judge a trial (simulated failure)" in warnings[0].getMessage()


NOISE = random.Random(3)
CURVES = {
    "rising": GOOD_CURVE[:12],
    "slow": [0.1, 0.11, 0.115, 0.118, 0.12, 0.121, 0.1215, 0.122, 0.1222, 0.1223],
    "noisy": [0.3 + NOISE.uniform(-0.05, 0.05) for _ in range(15)],
    "falling": [0.9 - 0.03 * step for step in range(12)],
}


@pytest.mark.parametrize("curve", CURVES.values(), ids=CURVES.keys())
def test_curvefitting_fast_curve_model_predicts_what_nnis_model_predicts(curve: list[float]) -> None:
    import numpy as np
    from nni.algorithms.hpo.curvefitting_assessor import model_factory

    from automl.stoppers import nni_curvefitting

    state = np.random.get_state()
    predictions = []
    try:
        for model in (model_factory.CurveModel, nni_curvefitting.CurveModel):
            nni_curvefitting.reset_curve_parameters()
            np.random.seed(11)
            with np.errstate(all="ignore"):
                predictions.append(model(20).predict(curve))
    finally:
        np.random.set_state(state)
    nni, fast = predictions
    assert nni is not None
    assert fast == pytest.approx(nni, rel=1e-9)


@pytest.mark.parametrize("curve", CURVES.values(), ids=CURVES.keys())
def test_curvefitting_fast_posterior_equals_nnis_on_any_weights(curve: list[float]) -> None:
    import numpy as np
    from nni.algorithms.hpo.curvefitting_assessor import model_factory

    from automl.stoppers import nni_curvefitting

    nni_curvefitting.reset_curve_parameters()
    model = nni_curvefitting.CurveModel(20)
    with np.errstate(all="ignore"):
        model.predict(curve)
        weights = np.random.default_rng(5).uniform(0.01, 0.3, size=(10, model.effective_model_num))
        weights[1, 0] = -0.05
        weights[2] = -weights[2]
        weights[3] *= 40
        expected = model_factory.CurveModel.target_distribution(model, weights)
        assert model.target_distribution(weights) == pytest.approx(expected, rel=1e-9, abs=0)
    # Weights must be positive, and the combined curve must rise.
    assert expected[1] == expected[2] == 0
    assert (max(expected) == 0) == (curve == CURVES["falling"])


def test_curvefitting_judges_a_long_curve_quickly() -> None:
    stopper = _curvefitting({"epoch_num": 60, "start_step": 50, "threshold": 0.0})
    reports = [(1, step, 0.5 + 0.4 * (1 - 0.9**step)) for step in range(1, 51)]
    started = time.perf_counter()
    assert decisions(stopper, reports) == [False] * 50
    # NNI's own curve model takes about 10 s for this one judgement.
    assert time.perf_counter() - started < 2.0


def test_curvefitting_restore_brings_back_the_best_value_and_running_curves() -> None:
    stopper = create_stopper("Curvefitting", {"epoch_num": 20, "start_step": 6}, "maximize")
    stopper.restore([(0, list(GOOD_CURVE), "succeeded"), (1, [0.2] * 5, "running")])
    assert decisions(stopper, [(1, 6, 0.2)]) == [True]


# names and classArgs


def test_stopper_names_are_case_insensitive() -> None:
    assert STOPPER_NAMES == ("ASHA", "Hyperband", "Medianstop", "Curvefitting")
    assert [canonical_stopper_name(name) for name in ("asha", " HYPERBAND ", "medianStop", "CurveFitting")] == list(
        STOPPER_NAMES
    )
    with pytest.raises(UserError, match="unknown early-stopping strategy 'Assessor'; available: ASHA, Hyperband"):
        canonical_stopper_name("Assessor")


@pytest.mark.parametrize(
    "name, args, mode, message",
    [
        (
            "ASHA",
            {"grace_period": 1},
            "maximize",
            "ASHA has no classArgs 'grace_period'; it accepts: optimize_mode, "
            "min_resource, max_resource, reduction_factor",
        ),
        ("ASHA", {"min_resource": 0}, "maximize", "min_resource must be an integer >= 1, got 0"),
        ("ASHA", {"min_resource": "1"}, "maximize", "min_resource must be an integer >= 1, got '1'"),
        ("ASHA", {"max_resource": True}, "maximize", "max_resource must be an integer >= 1, got True"),
        ("ASHA", {"reduction_factor": 1}, "maximize", "reduction_factor must be an integer >= 2, got 1"),
        ("Hyperband", {"min_resource": 5, "max_resource": 5}, "maximize", "must be greater than min_resource"),
        (
            "ASHA",
            {"optimize_mode": "minimize"},
            "maximize",
            "classArgs.optimize_mode is 'minimize' but the experiment's optimize mode is 'maximize'",
        ),
        ("ASHA", [1, 2], "maximize", "classArgs must be a mapping"),
        ("ASHA", {}, "max", "optimize mode must be 'maximize' or 'minimize', got 'max'"),
        ("Medianstop", {"start_step": -1}, "maximize", "start_step must be an integer >= 0, got -1"),
        ("Medianstop", {"epoch_num": 3}, "maximize", "it accepts: optimize_mode, start_step"),
        ("Curvefitting", {}, "maximize", "Curvefitting needs classArgs.epoch_num"),
        ("Curvefitting", {"epoch_num": 20}, "minimize", "Curvefitting only works for optimize mode 'maximize'"),
        ("Curvefitting", {"epoch_num": 0}, "maximize", "epoch_num must be an integer >= 1, got 0"),
        ("Curvefitting", {"epoch_num": 20, "gap": 0}, "maximize", "gap must be an integer >= 1, got 0"),
        ("Curvefitting", {"epoch_num": 20, "threshold": "high"}, "maximize", "threshold must be a number >= 0"),
        ("Curvefitting", {"epoch_num": 20, "threshold": -0.5}, "maximize", "threshold must be a number >= 0"),
    ],
)
@pytest.mark.parametrize("function", [create_stopper, check_stopper])
def test_create_and_check_stopper_reject_bad_class_args(
    function: Callable[..., object], name: str, args: object, mode: str, message: str
) -> None:
    with pytest.raises(UserError, match=re.escape(message)):
        function(name, args, mode)


def test_create_stopper_accepts_an_agreeing_optimize_mode_and_defaults() -> None:
    factories: list[Callable[[], Stopper]] = [
        lambda: create_stopper("ASHA", {"optimize_mode": "minimize"}, "minimize"),
        lambda: create_stopper("Hyperband", None, "maximize"),
        lambda: create_stopper("Medianstop", {"optimize_mode": "maximize", "start_step": 5}, "maximize"),
        lambda: create_stopper("Curvefitting", {"epoch_num": 10, "threshold": 1, "gap": 2}, "maximize"),
    ]
    for factory in factories:
        assert isinstance(factory(), Stopper)


def test_checking_any_stopper_and_running_our_own_do_not_import_nni() -> None:
    code = (
        "import sys\n"
        "from automl.stoppers import check_stopper, create_stopper\n"
        "create_stopper('ASHA', {}, 'maximize').report(1, 1, 0.5)\n"
        "create_stopper('Hyperband', {}, 'minimize').report(1, 1, 0.5)\n"
        "assert check_stopper('medianstop', {'start_step': 2}, 'minimize') == 'Medianstop'\n"
        "assert check_stopper('curvefitting', {'epoch_num': 9}, 'maximize') == 'Curvefitting'\n"
        "assert 'nni' not in sys.modules, 'nni was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
