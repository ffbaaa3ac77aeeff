"""The experiment loop with hand-made tuners: slow suggestions, deferred ones, broken ones. Real trial processes."""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time

import psutil

from automl.config.model import GpuPolicy, build_config
from automl.engine.experiment import ExperimentLoop
from automl.gpu.pool import GpuPool
from automl.store import Metric, Store
from automl.trial_exit import EXIT_FILE
from automl.tuners.base import NoMoreTrials, Tuner
from tests.helpers import wait_until_async, write_trial


class SlowSecondAsk(Tuner):
    """Answers the first ask at once and the second only once `release` is set (or after 30 s)."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.told: list[tuple[int, float | None]] = []

    def ask(self, key):
        if key >= 2:
            self.release.wait(30)
        if key > 2:
            raise NoMoreTrials
        return {"x": key / 10}

    def tell(self, key, value):
        self.told.append((key, value))


class WaitsForResults(Tuner):
    """Like Evolution: proposes two configs, then nothing until it has heard a result."""

    def __init__(self) -> None:
        self.told = 0
        self.answered = 0

    def ask(self, key):
        if self.answered >= 2 + 2 * self.told:
            return None
        self.answered += 1
        return {"x": key / 10}

    def tell(self, key, value):
        self.told += 1


class Broken(Tuner):
    def ask(self, key):
        raise ZeroDivisionError("tuner bug")

    def tell(self, key, value):
        pass


def _loop(tmp_path, tuner, **fields):
    write_trial(
        tmp_path, "for i in range(3):\n    trial.report(i)\n    time.sleep(0.1)\ntrial.report_final(params['x'])\n"
    )
    raw = {
        "name": "loop",
        "command": [sys.executable, "trial.py"],
        "concurrency": 2,
        "search_space": {"x": {"_type": "uniform", "_value": [0, 1]}},
        **fields,
    }
    config = build_config(raw, tmp_path, "test")
    store = Store(tmp_path / "home")
    experiment = store.find_experiment(store.create_experiment("loop", config.model_dump(mode="json"), None))
    return store, ExperimentLoop(store, experiment, config, tuner, GpuPool(None).slots(experiment.id, GpuPolicy(), 0))


def test_a_slow_suggestion_does_not_stop_trials_from_being_followed(tmp_path):
    tuner = SlowSecondAsk()
    store, loop = _loop(tmp_path, tuner, max_trials=5)
    loop.listeners.append(lambda event, data: event == "trial_ended" and tuner.release.set())
    assert asyncio.run(loop.run()) == "done"
    first, second = store.trials(loop.experiment.id)
    assert first.status == second.status == "succeeded"
    assert first.steps == 3
    assert first.ended < second.created, "trial 1 was followed to its end while the second ask was running"


def test_a_tuner_that_waits_for_results_gets_them_and_goes_on(tmp_path):
    tuner = WaitsForResults()
    store, loop = _loop(tmp_path, tuner, max_trials=6)
    assert asyncio.run(loop.run()) == "done"
    trials = store.trials(loop.experiment.id)
    assert [t.status for t in trials] == ["succeeded"] * 6
    assert tuner.told == 6


def test_a_broken_tuner_fails_the_experiment_with_its_error(tmp_path):
    store, loop = _loop(tmp_path, Broken(), max_trials=3)
    assert asyncio.run(loop.run()) == "failed"
    experiment = store.find_experiment(loop.experiment.id)
    assert (experiment.status, experiment.error) == ("failed", "ZeroDivisionError: tuner bug")
    assert store.trials(loop.experiment.id) == []


def test_stop_kills_running_trials_and_marks_the_experiment_stopped(tmp_path):
    write_trial(tmp_path, "trial.report(1)\ntime.sleep(60)\n", name="hang.py")
    store, loop = _loop(tmp_path, WaitsForResults(), max_trials=4, command=[sys.executable, "hang.py"])

    async def stop_when_both_report():
        task = asyncio.ensure_future(loop.run())
        await wait_until_async(
            lambda: sum(t.steps for t in store.trials(loop.experiment.id)) >= 2, "a step of both trials", timeout=30
        )
        loop.stop()
        return await task

    assert asyncio.run(stop_when_both_report()) == "stopped"
    assert [(t.status, t.error, t.steps) for t in store.trials(loop.experiment.id)] == [
        ("killed", "stopped by user", 1)
    ] * 2


class Generations(Tuner):
    """Like PBT: hands out a generation of two, then nothing until both have reported; slow to digest a result."""

    def __init__(self) -> None:
        self.issued = 0
        self.told = 0

    def ask(self, key):
        if self.issued - self.told >= 2 or (self.issued % 2 == 0 and self.told < self.issued):
            return None
        self.issued += 1
        return {"x": key / 10}

    def tell(self, key, value):
        time.sleep(0.3)
        self.told += 1


def test_the_experiment_does_not_end_while_the_tuner_is_still_digesting_a_result(tmp_path):
    tuner = Generations()
    store, loop = _loop(tmp_path, tuner, max_trials=6)
    assert asyncio.run(loop.run()) == "done"
    assert len(store.trials(loop.experiment.id)) == 6


def test_a_stopped_trial_that_lingers_on_sigterm_is_gone_before_it_is_recorded(tmp_path):
    write_trial(
        tmp_path,
        """
        import os, signal
        def linger(*_):
            time.sleep(1)
            sys.exit(0)
        signal.signal(signal.SIGTERM, linger)
        open(os.path.join(trial.trial_dir(), "pid"), "w").write(str(os.getpid()))
        trial.report(1)
        time.sleep(60)
    """,
        name="linger.py",
    )
    store, loop = _loop(tmp_path, WaitsForResults(), max_trials=1, concurrency=1, command=[sys.executable, "linger.py"])
    alive_when_recorded = []

    def on_end(event, data):
        if event == "trial_ended":
            pid = int((loop.trial_dir(data["trial"]) / "pid").read_text())
            alive_when_recorded.append(psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)

    loop.listeners.append(on_end)

    async def stop_once_it_reports():
        task = asyncio.ensure_future(loop.run())
        await wait_until_async(
            lambda: store.trials(loop.experiment.id) and store.trials(loop.experiment.id)[0].steps >= 1,
            "the trial's first step",
            timeout=30,
        )
        loop.stop()
        return await task

    assert asyncio.run(stop_once_it_reports()) == "stopped"
    (killed,) = store.trials(loop.experiment.id)
    assert killed.status == "killed"
    assert alive_when_recorded == [False], "its GPUs are handed on only once the whole trial is gone"


def test_a_trial_stored_but_never_started_before_a_crash_runs_under_its_own_id(tmp_path):
    """automl died between storing a trial and starting its process: the next loop starts it, and no other."""
    store, loop = _loop(tmp_path, WaitsForResults(), max_trials=2)
    store.add_trial(loop.experiment.id, {"x": 0.5}, 1, [])
    assert asyncio.run(loop.run()) == "done"
    trials = store.trials(loop.experiment.id)
    assert [(t.id, t.status, t.retry_of) for t in trials] == [(1, "succeeded", None), (2, "succeeded", None)]
    assert (trials[0].params, trials[0].steps, trials[0].value) == ({"x": 0.5}, 3, 0.5)


def test_max_trials_lowered_while_the_tuner_thinks_gives_its_answer_back(tmp_path):
    tuner = SlowSecondAsk()
    store, loop = _loop(tmp_path, tuner, max_trials=5)

    async def drive():
        run = asyncio.create_task(loop.run())
        await wait_until_async(
            lambda: loop.running == 1,
            "the first trial to run (the second configuration is being asked)",
            timeout=30,
            every=0.01,
        )
        loop.update(max_trials=1)
        tuner.release.set()
        return await run

    assert asyncio.run(drive()) == "done"
    assert [t.params for t in store.trials(loop.experiment.id)] == [{"x": 0.1}]
    assert sorted(tuner.told) == [(1, 0.1), (2, None)], "the tuner hears that its second configuration will not run"


def test_max_trials_lowered_below_a_configuration_waiting_to_start_drops_it(tmp_path):
    tuner = SlowSecondAsk()
    store, loop = _loop(tmp_path, tuner, max_trials=5)

    async def drive():
        run = asyncio.create_task(loop.run())
        await wait_until_async(lambda: loop.running == 1, "a running trial", timeout=30, every=0.01)
        loop.pause()
        tuner.release.set()
        await wait_until_async(
            lambda: loop.configs_started == 2,
            "the second configuration's answer (it waits for the pause to end)",
            timeout=30,
            every=0.01,
        )
        loop.update(max_trials=1)
        assert loop.configs_started == 1
        loop.resume()
        return await run

    assert asyncio.run(drive()) == "done"
    assert [t.params for t in store.trials(loop.experiment.id)] == [{"x": 0.1}]
    assert sorted(tuner.told) == [(1, 0.1), (2, None)]


class RecordsRestore(Tuner):
    """Keeps what `restore` gives it and proposes nothing more."""

    def __init__(self):
        self.history = []

    def ask(self, key):
        raise NoMoreTrials("nothing more")

    def tell(self, key, value):
        pass

    def restore(self, history, pending=()):
        self.history.extend(history)


def test_a_resumed_experiment_learning_from_rungs_gives_its_tuner_the_same_ranks(tmp_path):
    asha = {"name": "ASHA", "learn_from": "rung", "args": {"min_resource": 1, "max_resource": 9}}
    tuner = RecordsRestore()
    store, loop = _loop(tmp_path, tuner, stopper=asha, max_trials=3)
    ended = [  # (x, how it ended, its intermediate values, its value)
        (0.1, "succeeded", [0.1] * 9, 0.1),
        (0.9, "early_stopped", [0.5, 0.5, 0.9, 0.9], 0.9),  # stopped at rung 3, reported one step more
        (0.95, "early_stopped", [0.95, 0.95], 0.95),  # stopped at rung 1
    ]
    for key, (x, status, curve, value) in enumerate(ended):
        trial = store.add_trial(loop.experiment.id, {"x": x}, key, [])
        metrics = [Metric(step, "intermediate", step, v, {"default": v}, 0.0) for step, v in enumerate(curve, 1)]
        store.add_metrics(trial, metrics, 0)
        store.trial_ended(trial, status, 0, None, value)

    assert asyncio.run(loop.run()) == "done"
    told = {params["x"]: value for params, value in tuner.history}
    assert told[0.1] > told[0.9] > told[0.95], "a full trial first, then the one stopped later, whatever the values"
    stopped_at_3 = loop.told(store.trials(loop.experiment.id)[1], judged_at=3)
    assert told[0.9] == stopped_at_3, "judged at its rung, 3, not at the 4 steps it reported"


def test_a_stop_decided_before_a_restart_keeps_the_value_and_rank_of_the_rung_it_was_judged_at(tmp_path):
    asha = {"name": "ASHA", "learn_from": "rung", "args": {"min_resource": 1, "max_resource": 9}}
    tuner = RecordsRestore()
    store, loop = _loop(tmp_path, tuner, stopper=asha, max_trials=1)
    trial = store.add_trial(loop.experiment.id, {"x": 0.9}, 0, [])
    curve = [0.5, 0.5, 0.7, 0.9]  # stopped at rung 3; its process reported once more before it ended
    store.add_metrics(
        trial, [Metric(step, "intermediate", step, v, {"default": v}, 0.0) for step, v in enumerate(curve, 1)], 0
    )
    store.trial_started(trial, os.getpid(), 0.0)  # a process that is gone: not this one, created at another time
    store.decide_ending(trial, "early_stopped", "stopped early by ASHA at step 3")
    loop.trial_dir(trial.id).mkdir(parents=True)
    (loop.trial_dir(trial.id) / EXIT_FILE).write_text("-15\n")  # the daemon went down before it saw the exit

    assert asyncio.run(loop.run()) == "done"
    (ended,) = store.trials(loop.experiment.id)
    assert (ended.status, ended.value) == ("early_stopped", 0.7), "the value at rung 3, not at its last step"
    assert tuner.history == [({"x": 0.9}, loop.told(ended))], "the rank a later restart gives it too"
