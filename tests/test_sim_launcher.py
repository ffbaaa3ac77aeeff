"""Simulated trials on the virtual clock: the real experiment loop, tuner, stopper and store, without processes."""

from __future__ import annotations

import random
import time
from collections import Counter

import pytest

from automl.config.model import build_config
from automl.launchers.simulated import SimulatedLauncher, simulate
from automl.stoppers import create_stopper
from automl.tuners import create_tuner

EPOCHS = 27


def _curve(params, epoch):
    """Rises towards x with the epochs: a larger x is better at every epoch."""
    return params["x"] * (1 - 0.5**epoch)


def _config(tmp_path, **fields):
    raw = {
        "name": "sim",
        "command": "true",
        "concurrency": 8,
        "max_trials": 200,
        "tuner": {"name": "Random"},
        "search_space": {"x": {"_type": "uniform", "_value": [0, 1]}},
        **fields,
    }
    return build_config(raw, tmp_path, "test")


def _run(tmp_path, launcher, max_epochs=None, **fields):
    config = _config(tmp_path, **fields)
    tuner = create_tuner(config.tuner.name, config.tuner.args, config.search_space, config.objective.mode)
    started = []
    sim = simulate(
        tmp_path / "home",
        config,
        tuner,
        launcher,
        max_epochs=max_epochs,
        listeners=(lambda event, data: event == "trial_started" and started.append(data["trial"]),),
    )
    return sim, sim.store.trials(sim.experiment_id), started


def test_an_epoch_budget_stops_the_experiment_once_spent(tmp_path):
    launcher = SimulatedLauncher(_curve, epochs=10, epoch_seconds=1)
    sim, trials, _ = _run(tmp_path, launcher, max_epochs=55, concurrency=2)
    assert sim.status == "stopped"
    assert 55 <= launcher.epochs_run < 55 + 2 * 10, "it stops at the first report past the budget"
    assert any(t.status == "killed" for t in trials) and len(trials) < 200


def test_two_hundred_trials_with_asha_run_on_the_virtual_clock(tmp_path):
    launcher = SimulatedLauncher(_curve, epochs=EPOCHS, epoch_seconds=60)
    asha = {"name": "ASHA", "args": {"min_resource": 1, "max_resource": EPOCHS, "reduction_factor": 3}}
    sim, trials, started = _run(tmp_path, launcher, stopper=asha)

    assert sim.status == "done"
    assert len(trials) == len(started) == 200
    statuses = Counter(t.status for t in trials)
    assert statuses["early_stopped"] > 100 and statuses["succeeded"] > 0
    assert statuses["early_stopped"] + statuses["succeeded"] == 200
    for trial in trials:
        if trial.status == "early_stopped":
            assert trial.steps < EPOCHS and trial.exit_code == -15
            assert "stopped early by ASHA at step" in trial.error
        else:
            assert trial.steps == EPOCHS and trial.exit_code == 0
            assert trial.value == _curve(trial.params, EPOCHS)
    assert launcher.epochs_run == sum(t.steps for t in trials) < 200 * EPOCHS / 2
    # 8 workers share the epochs; the clock ran at least that long, and not much longer
    assert launcher.epochs_run * 60 / 8 <= sim.seconds <= launcher.epochs_run * 60
    assert 0 < max(t.ended for t in trials) - min(t.created for t in trials) <= sim.seconds


def test_asha_with_brackets_stops_trials_of_the_later_bracket_only_from_its_first_rung(tmp_path):
    launcher = SimulatedLauncher(_curve, epochs=EPOCHS, epoch_seconds=60)
    args = {"min_resource": 1, "max_resource": EPOCHS, "reduction_factor": 3, "brackets": 2}
    sim, trials, _ = _run(tmp_path, launcher, stopper={"name": "ASHA", "args": args}, max_trials=60)

    assert sim.status == "done"
    stopper = create_stopper("ASHA", args, "maximize")
    stopped_at: dict[int, set[int]] = {0: set(), 1: set()}
    for trial in trials:
        if trial.status == "early_stopped":
            stopped_at[stopper.bracket(trial.id)].add(trial.steps)
    assert 1 in stopped_at[0], "bracket 0 judges from step 1"
    assert stopped_at[1] and min(stopped_at[1]) >= 3, "bracket 1 judges from step 3 only"


def test_every_reported_value_is_in_the_store_with_its_virtual_time(tmp_path):
    launcher = SimulatedLauncher(_curve, epochs=5, epoch_seconds=10)
    sim, trials, _ = _run(tmp_path, launcher, max_trials=3, concurrency=1)

    assert [t.status for t in trials] == ["succeeded"] * 3
    for trial in trials:
        metrics = sim.store.metrics(sim.experiment_id, trial.id)
        assert [(m.kind, m.step, m.value) for m in metrics] == [
            *(("intermediate", e, _curve(trial.params, e)) for e in range(1, 6)),
            ("final", None, trial.value),
        ]
        assert [round(m.time - trial.started) for m in metrics] == [10, 20, 30, 40, 50, 50]
    assert round(sim.seconds) == 150


def test_a_trial_timeout_ends_trials_in_virtual_time(tmp_path):
    launcher = SimulatedLauncher(_curve, epochs=100, epoch_seconds=60)
    sim, trials, _ = _run(tmp_path, launcher, max_trials=4, concurrency=2, trial_timeout=600)

    assert [(t.status, t.error) for t in trials] == [("failed", "timed out after 600 s")] * 4
    assert all(t.steps in (9, 10) for t in trials)
    assert round(sim.seconds) == 1200


def test_a_curve_that_raises_fails_its_trial_with_the_error(tmp_path):
    def broken(params, epoch):
        if epoch == 3:
            raise ValueError("diverged")
        return params["x"]

    sim, trials, _ = _run(tmp_path, SimulatedLauncher(broken, epochs=5), max_trials=2, concurrency=2)
    assert [(t.status, t.steps, t.error) for t in trials] == [
        ("failed", 2, "exited with code 1: ValueError: diverged")
    ] * 2


class _Dawdling:
    """A tuner that takes a random real time, up to 3 ms, over every call: the virtual clock must not care."""

    def __init__(self, tuner, seed):
        self._tuner, self._rng = tuner, random.Random(seed)

    def __getattr__(self, name):
        attr = getattr(self._tuner, name)
        if not callable(attr):
            return attr

        def dawdle(*args, **kwargs):
            time.sleep(self._rng.uniform(0, 0.003))
            return attr(*args, **kwargs)

        return dawdle


@pytest.mark.parametrize("seed", [1, 2])
def test_a_simulation_does_not_depend_on_how_long_the_tuner_really_takes(tmp_path, seed):
    asha = {"name": "ASHA", "args": {"min_resource": 1, "max_resource": 9, "reduction_factor": 3}}
    config = _config(tmp_path, max_trials=60, concurrency=4, tuner={"name": "TPE", "args": {"seed": 0}}, stopper=asha)
    runs = []
    for run, dawdling in enumerate((False, True)):
        tuner = create_tuner(config.tuner.name, config.tuner.args, config.search_space, config.objective.mode)
        sim = simulate(
            tmp_path / f"home{run}",
            config,
            _Dawdling(tuner, seed) if dawdling else tuner,
            SimulatedLauncher(_curve, epochs=9),
        )
        trials = sim.store.trials(sim.experiment_id)
        began = sim.store.find_experiment(sim.experiment_id).created
        runs.append([(t.params, t.status, t.steps, t.created - began, t.ended - began) for t in trials])
        sim.store.close()
    assert len(runs[0]) == 60
    assert runs[0] == runs[1]


class _Recording:
    """A tuner that keeps what it is told, by key, and passes everything on to the real one."""

    def __init__(self, tuner):
        self._tuner, self.told = tuner, {}

    def __getattr__(self, name):
        return getattr(self._tuner, name)

    def tell(self, key, value):
        self.told[key] = value
        self._tuner.tell(key, value)


def _dips(params, epoch):
    """Best at the first epoch and worse later, so that a trial's value at a rung is neither its last nor its
    best: x, then x - 1 from the second epoch, then x - 0.5 from the fourth."""
    return params["x"] - (0 if epoch == 1 else 1 if epoch < 4 else 0.5)


def test_learning_from_rungs_ranks_full_trials_first_then_by_the_rung_reached_then_by_value(tmp_path):
    asha = {"name": "ASHA", "args": {"min_resource": 1, "max_resource": 9, "reduction_factor": 3}, "learn_from": "rung"}
    config = _config(tmp_path, max_trials=60, concurrency=4, stopper=asha)
    tuner = _Recording(create_tuner("Random", {}, config.search_space, config.objective.mode))
    sim = simulate(tmp_path / "home", config, tuner, SimulatedLauncher(_dips, epochs=9))
    trials = sim.store.trials(sim.experiment_id)

    assert len(tuner.told) == len(trials) == 60
    stopped = [t for t in trials if t.status == "early_stopped"]
    assert {t.steps for t in stopped} == {1, 3}, "stopped at both rungs"
    for trial in stopped:
        assert trial.value == _dips(trial.params, trial.steps), "it keeps the value it was judged on"
    order = sorted(trials, key=lambda t: tuner.told[t.tuner_key], reverse=True)  # maximize: the best first
    expected = sorted(
        trials,
        key=lambda t: (t.status == "succeeded", t.status == "succeeded" or t.steps, t.value),
        reverse=True,
    )
    assert [t.id for t in order] == [t.id for t in expected]
