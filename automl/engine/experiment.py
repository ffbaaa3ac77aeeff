"""The experiment loop: ask the tuner, place and start trials, follow their metrics, learn from their results.

One loop, hosted by `automl run` in the foreground and by the daemon for
many experiments at once. Trials are asyncio tasks; the tuner runs on a
worker thread so a slow suggestion never stalls metric collection. A loop
can resume an experiment from the store (`resume.py`): trials still running
are re-attached, trials that ended meanwhile are concluded from their
recorded exit status, trials automl died before starting are started, and
trials a reboot took are marked interrupted (and re-run).
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config.model import ExperimentConfig
from ..errors import UserError
from ..gpu.pool import GpuSlots, Placement
from ..launchers.base import (
    Launcher,
    Locator,
    NoRoom,
    ProcessUsage,
    TrialHandle,
    TrialLost,
    TrialSpec,
    describe_exit,
    stderr_tail,
)
from ..launchers.local import LocalLauncher
from ..paths import trial_dir
from ..states import EventKind, ExperimentStatus, TrialStatus
from ..stoppers.base import Stopper
from ..store import ExperimentRecord, Store, StoreUnavailable, TrialRecord
from ..trial import BARE_PARAMETER_ENV
from ..tuners.base import NoMoreTrials
from .learning import stopped_value, told_value
from .metering import Meter
from .resume import resume_from_store
from .trial_logs import cap_logs, oversized_logs
from .tuner_worker import TunerWorker

log = logging.getLogger("automl")

Listener = Callable[[str, dict[str, Any]], None]
MAX_DURATION_REACHED = "max_duration reached"
DETACHED = "detached"
CAP_LOGS_EVERY = 1.0  # seconds between looks at the size of a running trial's log files
NO_ROOM_RETRY = 1.0  # seconds a trial the launcher found no place for waits before it asks again
MIB = 1 << 20


@dataclass
class _Request:
    """A parameter set waiting for a free slot: a new config from the tuner, or a re-run of an earlier one."""

    params: dict[str, Any]
    key: int
    retry_of: int | None = None
    attempt: int = 0
    recovered: bool = False  # its configuration came from the store: the tuner learns it through restore()


@dataclass
class _Running:
    """A trial between its placement and its end, as the loop follows it."""

    trial: TrialRecord
    key: int
    placement: Placement
    meter: Meter
    handle: TrialHandle | None = None  # how the loop reaches the trial, once it was started or found again
    final: float | None = None
    seq: int = 0  # metric lines read so far
    recovered: bool = False  # re-attached after a restart: the current tuner never handed it out
    ending: tuple[TrialStatus, str] | None = None  # (status, reason) decided by us: timeout, bad metric, stop, kill
    intermediate: list[float | None] = field(default_factory=list)  # its intermediate values, in order
    judged_at: int | None = None  # the step the stopper stopped it at (asked again after a restart), if it did
    termination: asyncio.Task[None] | None = field(default=None, repr=False)
    logs_capped: float = 0.0  # when its log files were last looked at
    capping: asyncio.Future[int] | None = field(default=None, repr=False)
    task: asyncio.Task[None] | None = field(default=None, repr=False)


class ExperimentLoop:
    """Runs one experiment to its end: done (budget or space exhausted), stopped, or failed.

    The path of a trial, one method per step:

    ask     `_ask`     the tuner proposes a configuration (on its worker thread); it waits as a `_Request`
    place   `_place`   once concurrency and the GPU pool allow, it gets its GPUs and its row in the store
    start   `_start`   the launcher starts it and hands back its `TrialHandle`; it is stored as running
    follow  `_follow`  its metrics are stored as they come, its usage metered, its logs capped, until it exits
    judge   `_judge`   a bad metric, the timeout or the stopper decide it ends early (stored first, then
                       `_follow` terminates it)
    end     `_end`     its leftovers are ended, its last metrics stored, its status concluded from how it
                       exited, its GPUs given back
    tell    `_tell`    a failed trial is retried, an interrupted one re-run, or else the tuner learns the outcome

    After a restart, `resume.py` takes each trial the store kept as live up at `_follow`, `_end` or `_start`.
    Every decision goes to the store first (`_write`), and waits in order while the store takes no writes.
    """

    def __init__(
        self,
        store: Store,
        experiment: ExperimentRecord,
        config: ExperimentConfig,
        tuner: Any,
        gpus: GpuSlots,
        *,
        launcher: Launcher | None = None,
        poll_interval: float = 0.1,
        grace: float = 5.0,
    ):
        self.store, self.experiment, self.config = store, experiment, config
        self.stopper = _stopper(config)
        self.gpus = gpus
        self.launcher = launcher or LocalLauncher()
        self.poll_interval, self.grace = poll_interval, grace
        self.listeners: list[Listener] = []
        self.best: TrialRecord | None = None
        self.configs_started = 0
        self.configs_ended = 0
        self.paused = experiment.status == ExperimentStatus.PAUSED
        self._worker = TunerWorker(tuner)
        self._keys = itertools.count(1)
        self._ready: deque[_Request] = deque()
        self._running: dict[int, _Running] = {}
        self._asking = False
        self._learning = 0  # tell/restore calls not yet done: the tuner may still have something to say
        self._exhausted = False
        self._tuner_waiting = False
        self._time_up = False  # max_duration passed with on_max_duration 'finish': running trials end on their own
        self._worked = False  # some trial succeeded or was stopped early: the trial code runs
        self._failures: list[str] = []  # errors of the trials that failed for good before any trial worked
        self._failure: str | None = None  # why the experiment failed, decided by the loop itself
        self._stop_reason: str | None = None
        self._killing = False  # a second Ctrl-C: processes a trial left behind get no grace period either
        self._error: BaseException | None = None  # raised by a task; ends the experiment as failed
        self._unsaved: deque[Callable[[], None]] = deque()  # records the store did not take yet, in order
        self._leaving = False  # detached: records not stored by then are left to the next loop to reconstruct
        self._wake = asyncio.Event()
        gpus.bind(running=lambda: len(self._running), wake=self._wake.set)
        self.launcher.watch(self._launcher_trouble)

    @property
    def running(self) -> int:
        """How many trials run now."""
        return len(self._running)

    @property
    def deciding(self) -> bool:
        """Whether a tuner or stopper call is still being answered on the worker thread."""
        return self._worker.pending > 0

    @property
    def elapsed(self) -> float:
        """Seconds since the experiment was created (what max_duration is measured against)."""
        return self.store.clock() - self.experiment.created

    # control

    def stop(self, reason: str = "stopped by user") -> None:
        """End the experiment: no new trials, running ones are terminated (their status: killed). The decision is
        stored first, so a host that dies before it is carried out leaves it to the next one."""
        if self._stop_reason is None:
            if reason != DETACHED:
                self._write(self.store.decide_stop, self.experiment.id, reason)
            self._stop_reason = reason
            self._wake.set()

    def detach(self) -> None:
        """Leave the experiment as it is, its trials running, for a later loop to resume (daemon shutdown)."""
        self._leaving = True
        self.stop(DETACHED)

    def kill_now(self) -> None:
        """SIGKILL every running trial's process tree at once (a second Ctrl-C)."""
        self.stop()
        self._killing = True
        for running in self._running.values():
            if running.handle is not None:
                running.handle.kill()

    def pause(self) -> None:
        """Start no new trials; running ones go on."""
        self._set_paused(True)

    def resume(self) -> None:
        """Start trials again after a pause."""
        self._set_paused(False)

    def kill_trial(self, trial_id: int) -> None:
        """Terminate one running trial (status killed); the experiment goes on."""
        running = self._running.get(trial_id)
        if running is None:
            raise UserError(f"trial {trial_id} of experiment {self.experiment.id} is not running")
        self._decide(running, TrialStatus.KILLED, "killed by user")
        self._wake.set()

    def update(
        self, concurrency: int | None = None, max_trials: int | None = None, max_duration: float | None = None
    ) -> None:
        """Change the experiment's limits while it runs; the new ones are stored and apply at once."""
        for name, value in (("concurrency", concurrency), ("max_trials", max_trials), ("max_duration", max_duration)):
            if value is not None and value < 1:
                raise UserError(f"{name} must be at least 1, got {value}")
        if concurrency is not None:
            self.config.concurrency = concurrency
        if max_trials is not None:
            self.config.max_trials = max_trials
            self._give_back_unstarted()
        if max_duration is not None:
            self.config.max_duration = max_duration
            self._time_up = self._time_up and self._out_of_time()  # a longer budget lets new trials start again
        self._write(self.store.update_config, self.experiment.id, self.config.model_dump(mode="json"))
        self._emit(
            EventKind.EXPERIMENT_UPDATED,
            concurrency=self.config.concurrency,
            max_trials=self.config.max_trials,
            max_duration=self.config.max_duration,
        )
        self._wake.set()

    # the loop

    async def run(self) -> str:
        """Run until the experiment ends and return its final status ('detached' if handed over)."""
        status, error = ExperimentStatus.DONE, None
        self._stop_reason = self.experiment.stop_reason  # a stop decided before a crash is carried out now
        try:
            await resume_from_store(self)
            await self._drive()
            status, error = self._outcome()
        except asyncio.CancelledError:
            self._stop_reason = DETACHED
            raise
        except Exception as e:
            log.exception("experiment %s failed", self.experiment.id)
            status, error = ExperimentStatus.FAILED, f"{type(e).__name__}: {e}"
            self._stop_reason = self._stop_reason or "experiment failed"
        finally:
            await self._wind_down()
        if self._stop_reason == DETACHED:
            self._save_unsaved()
            return DETACHED
        self._write(self.store.set_experiment_status, self.experiment.id, status, error)
        await self._all_saved()
        self._emit(EventKind.EXPERIMENT_STATUS, status=status, error=error)
        return status

    async def _drive(self) -> None:
        """Start trials as slots free up, until the experiment ends, is stopped or runs out of time; an error a
        task raised ends it as failed."""
        while self._stop_reason is None and not self._finished():
            if self._error is not None:
                raise self._error
            if self._out_of_time() and not self._time_up:
                log.info("experiment %s reached max_duration", self.experiment.id)
                if self.config.on_max_duration == "kill":
                    self._stop_reason = MAX_DURATION_REACHED
                    self._note("max_duration reached: running trials were killed")
                    break
                self._let_running_finish()
            self._launch_what_fits()
            await self._sleep_until_something_happens()
        if self._error is not None:
            raise self._error

    def _outcome(self) -> tuple[ExperimentStatus, str | None]:
        """How the experiment ended, and the error of a failed one (noting why a done one ended short)."""
        if self._failure is not None:
            return ExperimentStatus.FAILED, self._failure
        if self._stop_reason not in (None, MAX_DURATION_REACHED):
            return ExperimentStatus.STOPPED, None
        if not self._worked and self._failures:
            return ExperimentStatus.FAILED, _failure_summary(f"all {len(self._failures)} trials failed", self._failures)
        if self._stop_reason is None and not (self._time_up or self._exhausted) and self._budget_spent():
            self._note(f"max_trials reached ({self.config.max_trials} trials)")
        return ExperimentStatus.DONE, None

    async def _wind_down(self) -> None:
        """Leave the running trials to the next loop (detached), or end them; close the tuner's thread."""
        self.gpus.withdraw()
        if self._stop_reason == DETACHED:
            await self._let_go()
        else:
            await self._end_running_trials()
        self.launcher.close()
        self._worker.close()

    # writing to the store

    def _write(self, write: Callable[..., None], *args: Any, **kwargs: Any) -> None:
        """Store a record now or, while the store takes no writes (locked, disk full, read-only), as soon as it
        does again, after the records queued before it. A decision (stop, pause, how a trial ends) goes through
        here before it is acted on: stored first whenever the store works, and never held up when it does not."""
        self._unsaved.append(functools.partial(write, *args, **kwargs))
        self._save_unsaved()

    def _save_unsaved(self) -> bool:
        """Write the queued records in order for as long as the store takes them; whether all are written."""
        while self._unsaved and self.store.due():
            try:
                self._unsaved[0]()
            except StoreUnavailable:
                return False
            self._unsaved.popleft()
        return not self._unsaved

    async def _all_saved(self) -> None:
        """Wait until every queued record is in the store; a daemon that shuts down leaves the rest to its restart,
        which reconstructs them from the trials' folders."""
        while not self._save_unsaved() and not self._leaving:
            await self._sleep_until_something_happens()

    async def _store_takes_writes(self) -> None:
        """Sleep until a failing store may be tried again."""
        await asyncio.sleep(self.store.retry_in() or self.poll_interval)

    def _note(self, note: str) -> None:
        """Record and announce why the experiment ends, or will end, short of its budget."""
        log.info("experiment %s: %s", self.experiment.id, note)
        self.experiment.note = note
        self._write(self.store.set_experiment_note, self.experiment.id, note)
        self._emit(EventKind.EXPERIMENT_NOTE, note=note)

    def _launcher_trouble(self, why: str, fatal: bool) -> None:
        """Where trials run is in trouble (a cluster went away) or out of it: say so; end the experiment as
        failed when it cannot go on."""
        if fatal and self._failure is None:
            self._failure = why
            self.stop(f"experiment failed: {why}")
        elif not fatal:
            self._note(why)
        self._wake.set()

    # the experiment's state

    def _let_running_finish(self) -> None:
        """max_duration with on_max_duration 'finish': start nothing more, let the running trials end on their own."""
        self._time_up = True
        for request in list(self._ready):
            self._ready.remove(request)
            if request.retry_of is None:
                self.configs_started -= 1
                self._give_back(request.key)
        self._note(f"max_duration reached: no new trials; {len(self._running)} running trial(s) may finish")

    def _set_paused(self, paused: bool) -> None:
        status = ExperimentStatus.PAUSED if paused else ExperimentStatus.RUNNING
        self._write(self.store.set_experiment_status, self.experiment.id, status)
        self.paused = paused
        if paused:
            self.gpus.withdraw()
        self._emit(EventKind.EXPERIMENT_STATUS, status=status, error=None)
        self._wake.set()

    def _finished(self) -> bool:
        if self._running or self._ready or self._asking or self._learning:
            return False
        return self._exhausted or self._budget_spent() or self._tuner_waiting or self._time_up

    def _budget_spent(self) -> bool:
        return self.config.max_trials is not None and self.configs_started >= self.config.max_trials

    def _out_of_time(self) -> bool:
        return self.config.max_duration is not None and self.elapsed >= self.config.max_duration

    async def _sleep_until_something_happens(self) -> None:
        timeout = None
        if self.config.max_duration is not None and not self._time_up:
            timeout = max(0.0, self.config.max_duration - self.elapsed)
        if self._unsaved or self._ready and self.store.fault is not None:
            retry = self.store.retry_in() or self.poll_interval
            timeout = retry if timeout is None else min(timeout, retry)
        try:
            await asyncio.wait_for(self._wake.wait(), timeout)
        except asyncio.TimeoutError:
            pass
        self._wake.clear()

    def _launch_what_fits(self) -> None:
        """Place the waiting configurations while slots are free, and ask the tuner for more when none wait."""
        if not self._save_unsaved() or not self.store.due():
            return  # a new trial needs its row first, and the store takes no writes now
        while not (self.paused or self._time_up) and len(self._running) < self.config.concurrency:
            if self._ready:
                if not self._place():
                    return
                continue
            if len(self._running) + len(self._ready) < self.config.concurrency and self._can_ask():
                self._asking = True
                asyncio.get_running_loop().create_task(self._ask(next(self._keys)))
            return

    # ask

    def _can_ask(self) -> bool:
        return not (self._asking or self._exhausted or self._tuner_waiting or self._time_up or self._budget_spent())

    async def _ask(self, key: int) -> None:
        """Ask the tuner for configuration `key`; it waits for a slot as a `_Request`."""
        params = None
        try:
            params = await self._worker.call(self._worker.tuner.ask, key)
        except NoMoreTrials as e:
            self._exhausted = True
            self._note(f"the tuner has no more configurations after {self.configs_started}: {e}")
        except Exception as e:  # noqa: BLE001 - a tuner is user code: whatever it raises fails the experiment
            self._error = e
        finally:
            self._asking = False
            self._wake.set()
        if params is None:
            self._tuner_waiting = not (self._exhausted or self._error)
            return
        if self._budget_spent() or self._time_up:  # max_trials was lowered or time ran out while the tuner thought
            self._give_back(key)
            return
        self.configs_started += 1
        self._ready.append(_Request(params, key))

    def _give_back_unstarted(self) -> None:
        """Drop the newest new configurations not started yet that a lowered max_trials no longer allows."""
        for request in reversed(list(self._ready)):
            if self.config.max_trials is None or self.configs_started <= self.config.max_trials:
                return
            if request.retry_of is None:
                self._ready.remove(request)
                self.configs_started -= 1
                self._give_back(request.key)

    def _give_back(self, key: int) -> None:
        """Tell the tuner its configuration `key` will not run (as a trial without a result)."""
        self._learning += 1
        outcome = self._worker.call(self._worker.tuner.tell, key, None)
        asyncio.get_running_loop().create_task(self._guarded(self._learned(outcome)))

    # place

    def _place(self) -> bool:
        """Give the next waiting configuration its GPUs and its trial row, then start it; whether another may be
        placed now (False: no GPU is free, or the store takes no writes)."""
        placement = self.gpus.acquire()
        if placement is None:
            return False
        request = self._ready.popleft()
        try:
            trial = self.store.add_trial(
                self.experiment.id, request.params, request.key, placement.gpus, request.retry_of, request.attempt
            )
        except StoreUnavailable:
            self.gpus.release(placement)
            self._ready.appendleft(request)  # placed once the store takes writes again
            return False
        running = _Running(trial, request.key, placement, Meter(trial, placement), recovered=request.recovered)
        self._running[trial.id] = running
        self._spawn(running, self._start_to_end(running))
        return self.store.fault is None

    def _spawn(self, running: _Running, work: Coroutine[Any, Any, None]) -> None:
        """Carry out the rest of a trial's path as its task."""
        running.task = asyncio.get_running_loop().create_task(self._guarded(work))

    async def _guarded(self, work: Awaitable[None]) -> None:
        """Run a background task; an unexpected error in it ends the experiment as failed, never silently."""
        try:
            await work
        except Exception as e:  # noqa: BLE001 - a task's boundary: any error ends the experiment as failed
            self._error = self._error or e
            self._wake.set()

    async def _start_to_end(self, running: _Running) -> None:
        """A placed trial's path: start, follow, end."""
        if await self._start(running):
            await self._follow_to_end(running)

    async def _follow_to_end(self, running: _Running) -> None:
        """A started trial's path: follow it until it exits, then end it."""
        try:
            code = await self._follow(running)
        except TrialLost as lost:  # the machine it ran on is gone, and the trial with it
            await self._lost(running, lost)
            return
        await self._end(running, code)

    # taken up after a restart (resume.py), then on the same path

    def _resumed(self, trial: TrialRecord, key: int, handle: TrialHandle, intermediate: list[float | None]) -> _Running:
        """Follow a trial taken up after a restart: its GPUs claimed again, its metrics and usage so far."""
        placement = self.gpus.claim(trial.gpus, trial.gpu_memory_mib)
        running = _Running(
            trial,
            key,
            placement,
            Meter.resumed(trial, placement),
            handle,
            self.store.final_value(trial.experiment_id, trial.id),
            trial.metric_lines,
            recovered=True,
            intermediate=list(intermediate),
            ending=trial.decision,
        )
        self._running[trial.id] = running
        return running

    # start

    async def _start(self, running: _Running) -> bool:
        """Have the launcher start the trial and store it as running; whether it started (else it failed)."""
        trial = running.trial
        spec = TrialSpec(
            self.experiment.id,
            trial.id,
            self.config.argv(),
            self.config.working_dir,
            self.trial_dir(trial.id),
            {**self.config.fixed_params, **trial.params},
            self.config.cpus_per_trial(),
            running.placement.gpus,
            self._trial_env(),
        )
        try:
            handle = await self._launch(running, spec)
        except OSError as e:
            self._finish(running, TrialStatus.FAILED, None, f"could not start {spec.argv[0]!r}: {e.strerror or e}")
            return False
        if handle is None:
            assert running.ending is not None
            self._finish(running, running.ending[0], None, running.ending[1])
            return False
        self._attach(running, handle)
        self._mark_started(trial, handle.locator, self.store.clock())
        self._emit(EventKind.TRIAL_STARTED, trial=trial.id, params=trial.params, gpus=running.placement.gpus)
        return True

    async def _launch(self, running: _Running, spec: TrialSpec) -> TrialHandle | None:
        """The launcher's handle of the started trial; while the launcher has no place for it (`NoRoom`), ask again
        every `NO_ROOM_RETRY` seconds, until its ending is decided (None then: it never started)."""
        said = False
        while True:
            try:
                # shielded: a process half-started when the loop detaches is found again by its environment
                return await asyncio.shield(self.launcher.start(spec))
            except NoRoom as e:
                if not said:
                    log.info("trial %d waits: %s", running.trial.id, e)
                    said = True
            await asyncio.sleep(NO_ROOM_RETRY)
            if running.ending is not None:
                return None

    def _trial_env(self) -> dict[str, str]:
        """The config's environment for trials, and the name of a parameter NNI's trial API hands out bare."""
        bare = self._worker.tuner.bare_parameter
        return self.config.env if bare is None else {**self.config.env, BARE_PARAMETER_ENV: bare}

    def _attach(self, running: _Running, handle: TrialHandle) -> None:
        """Follow the trial through its handle: its processes for CPU and memory, its GPUs for load and energy."""
        assert handle.locator is not None, "only a trial that runs is followed"
        running.handle = handle
        self.gpus.started(running.placement, (self.experiment.id, running.trial.id), handle.locator.pid)

    def _mark_started(self, trial: TrialRecord, locator: Locator | None, started: float | None) -> None:
        """Record that a trial runs where `locator` says (in memory at once, in the store as soon as it takes it)."""
        assert locator is not None and started is not None, "a started trial has a locator and a start time"
        trial.status, trial.pid, trial.pid_created, trial.started, trial.node = (
            TrialStatus.RUNNING,
            locator.pid,
            locator.created,
            started,
            locator.node,
        )
        gpus = None if locator.gpus is None else list(locator.gpus)
        trial.gpus = trial.gpus if gpus is None else gpus
        self._write(self.store.trial_started, trial, locator.pid, locator.created, started, locator.node, gpus)

    # follow

    async def _follow(self, running: _Running) -> int | None:
        """Store the trial's metrics as they come, meter its usage, cap its logs and carry out a decided ending
        (SIGTERM, SIGKILL after the grace period), until it exits; its exit status."""
        trial, handle = running.trial, running.handle
        assert handle is not None, "only a started trial is followed"
        exit_code = asyncio.ensure_future(handle.wait())
        deadline = None if self.config.trial_timeout is None else (trial.started or 0) + self.config.trial_timeout
        while not (await asyncio.wait({exit_code}, timeout=self.poll_interval))[0]:
            await self._collect(running)
            running.meter.look(asyncio.get_running_loop().time(), handle, self.gpus, self.store, self.config.cost)
            self._cap_logs(running)
            if running.ending is None and deadline is not None and self.store.clock() >= deadline:
                self._decide(running, TrialStatus.FAILED, f"timed out after {self.config.trial_timeout:g} s")
            if running.ending is not None and running.termination is None:
                running.termination = asyncio.ensure_future(handle.terminate(self.grace))
        return exit_code.result()

    async def _collect(self, running: _Running, final: bool = False) -> bool:
        """Persist the metrics the trial appended since the last look (one chunk of its file), then judge them;
        whether it is all stored: False when more is waiting, or when the store took no writes (the lines stay in
        the metrics file, read again from the same offset). `final`: the trial has ended, so a last line without
        a newline counts too."""
        trial, handle = running.trial, running.handle
        assert handle is not None, "only trials with a handle have metrics"
        if not self.store.due():
            return False
        result = await handle.read_metrics(trial.metrics_offset, running.seq, self.config.objective.metric, final=final)
        if result.metrics or result.offset != trial.metrics_offset:
            try:
                self.store.add_metrics(trial, result.metrics, result.offset)
            except StoreUnavailable:
                return False
        running.seq += len(result.metrics)
        trial.steps += sum(m.kind == "intermediate" for m in result.metrics)
        reports = []
        for metric in result.metrics:
            if metric.kind == "final" and running.final is None and metric.value is not None:
                running.final = metric.value
            if metric.kind == "intermediate":
                running.intermediate.append(metric.value)
                reports.append((len(running.intermediate), metric.value))
            self._emit(EventKind.TRIAL_METRIC, trial=trial.id, kind=metric.kind, step=metric.step, value=metric.value)
        self._judge(running, result.problem, reports)
        return not result.more

    async def _collect_all(self, running: _Running) -> None:
        """Store every metric line an ended trial wrote: chunk by chunk, waiting out a store that takes no writes."""
        while not await self._collect(running, final=True):
            if self.store.fault is not None:
                await self._store_takes_writes()
            else:
                await asyncio.sleep(0)

    def _cap_logs(self, running: _Running) -> None:
        """Every second, look at the sizes of the trial's log files; cap those over max_log_mib on a worker thread
        (it may move megabytes)."""
        now = asyncio.get_running_loop().time()
        if now - running.logs_capped < CAP_LOGS_EVERY or running.capping is not None and not running.capping.done():
            return
        running.logs_capped = now
        folder = self.trial_dir(running.trial.id)
        if oversized_logs(folder, self._log_limit()):
            running.capping = asyncio.ensure_future(asyncio.to_thread(cap_logs, folder, self._log_limit()))

    def _log_limit(self) -> int:
        return int(self.config.max_log_mib * MIB)

    # judge

    def _judge(self, running: _Running, problem: str | None, reports: list[tuple[int, float | None]]) -> None:
        """A bad metric fails the trial; its new intermediate results go to the stopper, which may end it early."""
        if problem and running.ending is None:
            self._decide(running, TrialStatus.FAILED, problem)
        if reports and self.stopper is not None and running.ending is None and running.final is None:
            self._learning += 1
            judged = self._worker.call(_first_stop, self.stopper, running.trial.id, reports)
            asyncio.get_running_loop().create_task(self._guarded(self._judged(running, judged)))

    async def _judged(self, running: _Running, judged: Awaitable[int | None]) -> None:
        """End the trial early if the stopper said so (it gets SIGTERM, then SIGKILL after the grace period)."""
        try:
            step = await judged
        finally:
            self._learning -= 1
            self._wake.set()
        if step is not None and running.ending is None and running.trial.id in self._running:
            assert self.config.stopper is not None
            log.info("trial %d stopped early by %s at step %d", running.trial.id, self.config.stopper.name, step)
            reason = f"stopped early by {self.config.stopper.name} at step {step}"
            self._decide(running, TrialStatus.EARLY_STOPPED, reason)
            running.judged_at = step

    def _decide(self, running: _Running, status: TrialStatus, reason: str) -> None:
        """Decide how a running trial ends (unless that is decided already): stored first, then acted on."""
        if running.ending is None:
            self._write(self.store.decide_ending, running.trial, status, reason)
            running.ending = (status, reason)

    # end

    async def _end(self, running: _Running, code: int | None) -> None:
        """The trial exited: once its whole tree is gone and every metric it wrote is stored, conclude it."""
        handle = running.handle
        assert handle is not None, "only a started trial ends this way"
        if running.termination is not None:
            await running.termination  # the whole tree is gone before its GPUs are handed on
        await handle.end_leftovers(0.0 if self._killing else self.grace)
        await self._collect_all(running)  # all it wrote, now that nothing of it writes any more
        folder = self.trial_dir(running.trial.id)
        if oversized_logs(folder, self._log_limit()):
            await asyncio.to_thread(cap_logs, folder, self._log_limit())
        self._conclude(running, code)

    async def _lost(self, running: _Running, lost: TrialLost) -> None:
        """The trial's machine left the cluster: store what it reported, and end it interrupted, naming why."""
        if running.termination is not None:
            await running.termination
        await self._collect_all(running)
        self._finish(running, TrialStatus.INTERRUPTED, None, str(lost))

    def _conclude(self, running: _Running, code: int | None) -> None:
        """The trial's status from our decision, its exit status and whether it reported a final result."""
        if running.ending is not None:
            status, reason = running.ending
        elif code is None and running.final is None:
            status, reason = TrialStatus.FAILED, "ended while automl was not running; its exit status is unknown"
        elif code is None:
            status, reason = TrialStatus.SUCCEEDED, None
        elif code != 0:
            status, reason = TrialStatus.FAILED, _with_tail(describe_exit(code), self.trial_dir(running.trial.id))
        elif running.final is None:
            status, reason = TrialStatus.FAILED, "exited without reporting a final result (call report_final)"
        else:
            status, reason = TrialStatus.SUCCEEDED, None
        self._finish(running, status, code, reason)

    def _finish(self, running: _Running, status: TrialStatus, code: int | None, reason: str | None) -> None:
        """Store how the trial ended and what it used, give its GPUs back, then tell."""
        trial = running.trial
        value = running.final if status == TrialStatus.SUCCEEDED else self._learned_from_stopped(running, status)
        energy, peak = self.gpus.release(running.placement)
        used = ProcessUsage() if running.handle is None else running.handle.usage()  # also what it left unwatched
        usage = running.meter.total(energy, peak, used, self.store.clock(), self.config.cost)
        ended = self.store.clock() if used.ended is None else used.ended
        trial.status, trial.exit_code, trial.error, trial.value, trial.ended = status, code, reason, value, ended
        self._write(self.store.trial_ended, trial, status, code, reason, value, usage, ended=ended)
        del self._running[trial.id]
        self._emit(EventKind.TRIAL_ENDED, trial=trial.id, status=status, value=value, error=reason)
        self._tell(trial, running.key, running.recovered, running.judged_at)
        self._wake.set()

    def _learned_from_stopped(self, running: _Running, status: TrialStatus) -> float | None:
        """The value a trial the stopper ended (at step `running.judged_at`) keeps (`learning.stopped_value`); None
        for any other unfinished one."""
        spec = self.config.stopper
        if status != TrialStatus.EARLY_STOPPED or spec is None or running.judged_at is None:
            return None
        return stopped_value(spec, self.config.objective.mode, running.intermediate, running.judged_at)

    async def _end_running_trials(self) -> None:
        reason = self._stop_reason or "experiment ended"
        for running in self._running.values():
            running.ending = running.ending or (TrialStatus.KILLED, reason)
        tasks = [r.task for r in self._running.values() if r.task is not None]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _let_go(self) -> None:
        """Stop following trials without touching them; the store keeps them as running."""
        tasks = [r.task for r in self._running.values() if r.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # tell

    def _tell(self, trial: TrialRecord, key: int, recovered: bool, judged_at: int | None) -> None:
        """Retry a failed or re-run an interrupted trial, or else tell the tuner (and stopper) its configuration's
        outcome; `judged_at`: the step the stopper stopped it at, if it did."""
        self._note_best(trial)
        if self._would_run_again(trial) and self._stop_reason is None and not self._time_up:
            log.info("trial %d %s (%s); running it again", trial.id, trial.status, trial.error)
            self._ready.append(self._again(trial, key, recovered))
            return
        self.configs_ended += 1
        self._count_outcome(trial)
        if self.stopper is not None:
            ended = self._worker.call(self.stopper.ended, trial.id, trial.status, trial.value)
            asyncio.get_running_loop().create_task(self._guarded(ended))
        if self._stop_reason is not None:
            return  # the experiment is ending: nothing more to ask the tuner
        outcome = self._worker.call(self._teach, trial, key, recovered, judged_at)
        self._learning += 1
        asyncio.get_running_loop().create_task(self._guarded(self._learned(outcome)))

    def _teach(self, trial: TrialRecord, key: int, recovered: bool, judged_at: int | None) -> None:
        """On the worker thread: tell the tuner what it learns from an ended trial (`learning.told_value`); through
        `restore` when the current tuner never handed the trial out."""
        told = self.told(trial, judged_at)
        if recovered:
            self._worker.tuner.restore([(trial.params, told)])
        else:
            self._worker.tuner.tell(key, told)

    def told(self, trial: TrialRecord, judged_at: int | None = None) -> float | None:
        """What the tuner learns from an ended trial; on the worker thread, where the stopper is asked where an
        early-stopped trial was judged when `judged_at` is not known."""
        if judged_at is None and self.stopper is not None and trial.status == TrialStatus.EARLY_STOPPED:
            judged_at = self.stopper.judged_at(trial.id, trial.steps)
        return told_value(self.config.stopper, self.config.objective.mode, trial, judged_at)

    def _note_best(self, trial: TrialRecord) -> None:
        """Keep the best succeeded trial so far."""
        if trial.status == TrialStatus.SUCCEEDED and (self.best is None or self._better(trial.value, self.best.value)):
            self.best = trial

    def _again(self, trial: TrialRecord, key: int, recovered: bool) -> _Request:
        """The same configuration once more: a retry uses up one of its retries, a re-run after a reboot none."""
        attempt = trial.attempt + (trial.status == TrialStatus.FAILED)
        return _Request(trial.params, key, trial.retry_of or trial.id, attempt, recovered)

    async def _learned(self, outcome: Awaitable[None]) -> None:
        try:
            await outcome
        finally:
            self._learning -= 1
            self._tuner_waiting = False
            self._wake.set()

    def _count_outcome(self, trial: TrialRecord) -> None:
        """Note whether an ended trial shows the trial code working; fail the experiment after max_failures
        failures before any trial worked (a broken script or environment)."""
        if trial.status in (TrialStatus.SUCCEEDED, TrialStatus.EARLY_STOPPED):
            self._worked = True
        elif trial.status == TrialStatus.FAILED and not self._worked:
            self._failures.append(trial.error or "failed")
            limit = self.config.max_failures
            if limit is not None and len(self._failures) >= limit and self._failure is None:
                self._failure = _failure_summary(
                    f"the first {limit} trials all failed (max_failures: {limit})", self._failures
                )
                self.stop("experiment failed: its first trials all failed")

    def _would_run_again(self, trial: TrialRecord) -> bool:
        """Whether an ended trial's configuration runs once more: a retry after a failure, a re-run after a reboot."""
        if trial.status == TrialStatus.INTERRUPTED:
            return self.config.rerun_interrupted
        return trial.status == TrialStatus.FAILED and trial.attempt < self.config.retries

    def _better(self, value: float | None, than: float | None) -> bool:
        if value is None or than is None:
            return than is None
        return value > than if self.config.objective.mode == "maximize" else value < than

    def trial_dir(self, trial_id: int) -> Path:
        """Where a trial's params, metrics and logs live."""
        return trial_dir(self.store.home, self.experiment.id, trial_id)

    def _emit(self, event: EventKind, **data: Any) -> None:
        for listener in self.listeners:
            listener(event, data)


def _stopper(config: ExperimentConfig) -> Stopper | None:
    if config.stopper is None:
        return None
    from ..stoppers import create_stopper

    return create_stopper(
        config.stopper.name,
        config.stopper.args,
        config.objective.mode,
        class_name=config.stopper.class_name,
        code_directory=config.stopper.code_directory,
    )


def _first_stop(stopper: Stopper, key: int, reports: list[tuple[int, float | None]]) -> int | None:
    """Feed a trial's new intermediate results to the stopper; the step at which it said stop, if it did."""
    for step, value in reports:
        if stopper.report(key, step, value):
            return step
    return None


def _failure_summary(what: str, errors: list[str]) -> str:
    """'all 4 trials failed; most common error (3 of 4): ...' for an experiment that failed through its trials."""
    error, count = Counter(errors).most_common(1)[0]
    return f"{what}; most common error ({count} of {len(errors)}): {error}"


def _with_tail(reason: str, trial_dir: Path) -> str:
    tail = stderr_tail(trial_dir)
    return f"{reason}: {tail}" if tail else reason
