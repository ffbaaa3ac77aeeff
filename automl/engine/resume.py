"""Resuming an experiment from the store after its host died or detached: the loop takes up where it was.

Its counts, best trial and the tuner's and stopper's history are rebuilt from the stored trials; then each trial
the store kept as waiting or running is found again through the launcher (`Launcher.attach`) and enters the
loop's lifecycle where it is: still running (followed, then ended), ended while no daemon watched (concluded from
its recorded exit status, or marked interrupted when nothing recorded it: a machine restart), or never started
(started now under its own id, in a fresh folder). These functions are the loop's own part, on its state.
"""

from __future__ import annotations

import itertools
import logging
from typing import TYPE_CHECKING, Any

from ..launchers.base import Locator, TrialIdentity
from ..paths import set_aside
from ..states import TrialStatus
from ..store import TrialRecord

if TYPE_CHECKING:
    from .experiment import ExperimentLoop, _Running

log = logging.getLogger("automl")

Curves = dict[int, list[float | None]]


async def resume_from_store(loop: ExperimentLoop) -> None:
    """Take up where the store says this experiment was: counts, best, tuner history, live trials."""
    trials = loop.store.trials(loop.experiment.id)
    if not trials:
        return
    loop._keys = itertools.count(max(t.tuner_key for t in trials) + 1)
    last_attempts: dict[int, TrialRecord] = {}
    for trial in trials:
        last_attempts[trial.tuner_key] = trial
        if trial.gpu_memory_mib:
            loop.gpus.estimate.observe(trial.gpu_memory_mib)
    curves = loop.store.curves(loop.experiment.id)
    if loop.stopper is not None:  # before any re-attached trial reports again
        await loop._worker.call(loop.stopper.restore, [(t.id, curves.get(t.id, []), t.status) for t in trials])
    ended, pending, live = _sort_out(loop, last_attempts)
    await loop._worker.call(_restore_tuner, loop, ended, pending)
    for trial, key in live:  # after the tuner knows the history: a trial that ended meanwhile reports at once
        await _take_up(loop, trial, key, curves.get(trial.id, []))
    log.info(
        "experiment %s resumed: %d configurations, %d ended, %d trials re-attached",
        loop.experiment.id,
        loop.configs_started,
        loop.configs_ended,
        len(loop._running),
    )


def _sort_out(
    loop: ExperimentLoop, last_attempts: dict[int, TrialRecord]
) -> tuple[list[TrialRecord], list[dict[str, Any]], list[tuple[TrialRecord, int]]]:
    """Count each configuration's last attempt: ended ones are history for the tuner; live ones and ones to run
    again are pending (their outcome reaches the tuner when they end); the live ones are returned to take up."""
    ended: list[TrialRecord] = []
    pending: list[dict[str, Any]] = []
    live: list[tuple[TrialRecord, int]] = []
    for key, trial in last_attempts.items():
        loop.configs_started += 1
        if trial.status in (TrialStatus.WAITING, TrialStatus.RUNNING):
            pending.append(trial.params)
            live.append((trial, key))
        elif loop._would_run_again(trial):
            pending.append(trial.params)
            loop._ready.append(loop._again(trial, key, recovered=True))
        else:
            ended.append(trial)
            loop.configs_ended += 1
            loop._count_outcome(trial)
            loop._note_best(trial)
    return ended, pending, live


def _restore_tuner(loop: ExperimentLoop, ended: list[TrialRecord], pending: list[dict[str, Any]]) -> None:
    """On the worker thread: give the tuner the ended trials with what it learns from each, and the pending sets."""
    loop._worker.tuner.restore([(trial.params, loop.told(trial)) for trial in ended], pending)


async def _take_up(loop: ExperimentLoop, trial: TrialRecord, key: int, intermediate: list[float | None]) -> None:
    """A trial the store says is running (or about to): follow it, conclude it, start it, or mark it
    interrupted."""
    identity = TrialIdentity(trial.experiment_id, trial.id)
    stored = None if trial.pid is None else Locator(trial.pid, trial.pid_created, trial.node)
    handle = await loop.launcher.attach(identity, stored, loop.trial_dir(trial.id))
    if trial.status == TrialStatus.WAITING and handle.locator is not None:
        loop._mark_started(trial, handle.locator, handle.locator.created)
    running = loop._resumed(trial, key, handle, intermediate)
    if running.ending is not None and running.ending[0] == TrialStatus.EARLY_STOPPED and loop.stopper is not None:
        running.judged_at = await loop._worker.call(loop.stopper.judged_at, trial.id, len(intermediate))
    if handle.locator is not None:
        loop._attach(running, handle)
        loop._spawn(running, loop._follow_to_end(running))
        return
    code = await handle.wait()
    if trial.status == TrialStatus.WAITING and code is None:
        _start_again(loop, running)
        return
    await loop.launcher.kill_leftovers(identity)
    if await loop._collect(running, final=True):
        _conclude(loop, running, code)
    else:  # more than one look reads, or a store that takes no writes now: conclude once every line is in it
        loop._spawn(running, _settle(loop, running, code))


def _start_again(loop: ExperimentLoop, running: _Running) -> None:
    """automl died between storing the trial and starting its process: start it now, under its own id, in a
    fresh folder (no process of it runs, so what the cut-short start wrote there is only set aside); unless the
    experiment is being stopped."""
    trial = running.trial
    if loop._stop_reason is not None:
        loop._finish(running, TrialStatus.KILLED, None, f"{loop._stop_reason} before it started")
        return
    set_aside(loop.trial_dir(trial.id))
    running.handle = None
    if trial.metrics_offset:  # the cut-short start reported: its lines stay in the folder set aside
        loop._write(loop.store.forget_metrics, trial)
        running.seq, running.final, running.intermediate, trial.steps = 0, None, [], 0
    loop._spawn(running, loop._start_to_end(running))


async def _settle(loop: ExperimentLoop, running: _Running, code: int | None) -> None:
    """Conclude a trial that ended while automl was down, once the store has taken all its metrics."""
    await loop._collect_all(running)
    _conclude(loop, running, code)


def _conclude(loop: ExperimentLoop, running: _Running, code: int | None) -> None:
    """Conclude a trial that ended while automl was down: from its recorded exit status, or as interrupted."""
    if code is not None:
        loop._conclude(running, code)
    else:
        reason = "its process was gone when automl restarted (machine restart?)"
        loop._finish(running, TrialStatus.INTERRUPTED, None, reason)
