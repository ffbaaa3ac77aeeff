"""The experiment loop: ask the tuner, place and launch trials, follow their metrics, learn from their results.

One loop, hosted by `automl run` in the foreground (and by the daemon for
many experiments at once). Trials are asyncio tasks; the tuner runs on a
worker thread so a slow suggestion never stalls metric collection.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import metrics_file
from .config import ExperimentConfig
from .gpu_pool import GpuPool
from .launcher import (
    METRICS_FILE,
    LocalLauncher,
    TrialSpec,
    describe_exit,
    kill_tree,
    stderr_tail,
    terminate_tree,
)
from .store import Experiment, Store, Trial
from .tuner_worker import TunerWorker
from .tuners.base import NoMoreTrials

log = logging.getLogger("automl")

Listener = Callable[[str, dict[str, Any]], None]


@dataclass
class _Request:
    """A parameter set waiting for a free slot: a new config from the tuner, or a retry of a failed one."""

    params: dict[str, Any]
    key: int
    retry_of: int | None = None
    attempt: int = 0


@dataclass
class _Running:
    trial: Trial
    key: int
    gpus: list[int]
    pid: int | None = None
    final: float | None = None
    seq: int = 0  # metric lines read so far
    ending: tuple[str, str] | None = None  # (status, reason) decided by us: timeout, bad metric, stop
    terminating: bool = False
    task: asyncio.Task[None] | None = field(default=None, repr=False)


class ExperimentLoop:
    """Runs one experiment to its end: done (budget or space exhausted), stopped, or failed."""

    def __init__(self, store: Store, experiment: Experiment, config: ExperimentConfig, tuner: Any,
                 gpus: GpuPool, *, launcher: LocalLauncher | None = None, poll_interval: float = 0.1,
                 grace: float = 5.0, cpus_per_trial: int = 1):
        self.store, self.experiment, self.config = store, experiment, config
        self.gpus = gpus
        self.launcher = launcher or LocalLauncher()
        self.poll_interval, self.grace, self.cpus_per_trial = poll_interval, grace, cpus_per_trial
        self.listeners: list[Listener] = []
        self.best: Trial | None = None
        self.configs_started = 0
        self.configs_ended = 0
        self._worker = TunerWorker(tuner)
        self._keys = itertools.count(1)
        self._ready: deque[_Request] = deque()
        self._running: dict[int, _Running] = {}
        self._asking = False
        self._exhausted = False
        self._tuner_waiting = False
        self._stop_reason: str | None = None
        self._error: BaseException | None = None  # raised by a task; ends the experiment as failed
        self._wake = asyncio.Event()
        self._started = 0.0

    @property
    def running(self) -> int:
        """How many trials run now."""
        return len(self._running)

    @property
    def elapsed(self) -> float:
        """Seconds since the loop started."""
        return time.monotonic() - self._started if self._started else 0.0

    def stop(self, reason: str = "stopped by user") -> None:
        """End the experiment: no new trials, running ones are terminated (their status: killed)."""
        if self._stop_reason is None:
            self._stop_reason = reason
            self._wake.set()

    def kill_now(self) -> None:
        """SIGKILL every running trial's process tree at once (a second Ctrl-C)."""
        self.stop()
        for running in self._running.values():
            if running.pid is not None:
                kill_tree(running.pid)

    async def run(self) -> str:
        """Run until the experiment ends and return its final status."""
        self._started = time.monotonic()
        status, error = "done", None
        try:
            while self._stop_reason is None and not self._finished():
                if self._error is not None:
                    raise self._error
                if self._out_of_time():
                    log.info("experiment %s reached max_duration", self.experiment.id)
                    self._stop_reason = "max_duration reached"
                    break
                self._launch_what_fits()
                await self._sleep_until_something_happens()
            if self._error is not None:
                raise self._error
            if self._stop_reason is not None and self._stop_reason != "max_duration reached":
                status = "stopped"
        except Exception as e:
            log.exception("experiment %s failed", self.experiment.id)
            status, error = "failed", f"{type(e).__name__}: {e}"
            self._stop_reason = self._stop_reason or "experiment failed"
        finally:
            await self._end_running_trials()
            self._worker.close()
            self.store.set_experiment_status(self.experiment.id, status, error)
            self._emit("experiment_status", status=status, error=error)
        return status

    # deciding what runs

    def _finished(self) -> bool:
        if self._running or self._ready or self._asking:
            return False
        return self._exhausted or self._budget_spent() or self._tuner_waiting

    def _budget_spent(self) -> bool:
        return self.config.max_trials is not None and self.configs_started >= self.config.max_trials

    def _out_of_time(self) -> bool:
        return self.config.max_duration is not None and self.elapsed >= self.config.max_duration

    def _launch_what_fits(self) -> None:
        while len(self._running) < self.config.concurrency:
            if self._ready:
                gpus = self.gpus.acquire()
                if gpus is None:
                    return
                self._start(self._ready.popleft(), gpus)
                continue
            if len(self._running) + len(self._ready) < self.config.concurrency and self._can_ask():
                self._asking = True
                asyncio.get_running_loop().create_task(self._ask(next(self._keys)))
            return

    def _can_ask(self) -> bool:
        return not (self._asking or self._exhausted or self._tuner_waiting or self._budget_spent())

    async def _ask(self, key: int) -> None:
        params = None
        try:
            params = await self._worker.call(self._worker.tuner.ask, key)
        except NoMoreTrials:
            log.info("experiment %s: the tuner has no more configurations", self.experiment.id)
            self._exhausted = True
        except Exception as e:
            self._error = e
        finally:
            self._asking = False
            self._wake.set()
        if params is None:
            self._tuner_waiting = not (self._exhausted or self._error)
            return
        self.configs_started += 1
        self._ready.append(_Request(params, key))

    async def _sleep_until_something_happens(self) -> None:
        timeout = None
        if self.config.max_duration is not None:
            timeout = max(0.0, self.config.max_duration - self.elapsed)
        try:
            await asyncio.wait_for(self._wake.wait(), timeout)
        except TimeoutError:
            pass
        self._wake.clear()

    # one trial

    def _start(self, request: _Request, gpus: list[int]) -> None:
        trial = self.store.add_trial(self.experiment.id, request.params, request.retry_of, request.attempt)
        running = _Running(trial, request.key, gpus)
        self._running[trial.id] = running
        running.task = asyncio.get_running_loop().create_task(self._guarded(self._follow(running)))

    async def _guarded(self, work: Any) -> None:
        """Run a background task; an unexpected error in it ends the experiment as failed, never silently."""
        try:
            await work
        except Exception as e:
            self._error = self._error or e
            self._wake.set()

    async def _follow(self, running: _Running) -> None:
        trial = running.trial
        spec = TrialSpec(self.experiment.id, trial.id, self.config.argv(), self.config.working_dir,
                         self.trial_dir(trial.id), trial.params, self.cpus_per_trial, running.gpus, self.config.env)
        try:
            process = await self.launcher.start(spec)
        except OSError as e:
            self._finish(running, "failed", None, f"could not start {spec.argv[0]!r}: {e.strerror or e}")
            return
        running.pid = process.pid
        self.store.trial_started(trial, process.pid, running.gpus)
        self._emit("trial_started", trial=trial.id, params=trial.params, gpus=running.gpus)
        deadline = None if self.config.trial_timeout is None else time.monotonic() + self.config.trial_timeout
        exit_wait = asyncio.ensure_future(process.wait())
        while True:
            done, _ = await asyncio.wait({exit_wait}, timeout=self.poll_interval)
            self._collect(running)
            if done:
                break
            if running.ending is None and deadline is not None and time.monotonic() >= deadline:
                running.ending = ("failed", f"timed out after {self.config.trial_timeout:g} s")
            if running.ending is not None and not running.terminating:
                running.terminating = True
                asyncio.get_running_loop().create_task(terminate_tree(process.pid, self.grace))
        code = exit_wait.result()
        if running.ending is not None:
            status, reason = running.ending
        elif code != 0:
            status, reason = "failed", _with_tail(describe_exit(code), spec.trial_dir)
        elif running.final is None:
            status, reason = "failed", "exited without reporting a final result (call report_final)"
        else:
            status, reason = "succeeded", None
        self._finish(running, status, code, reason)

    def _collect(self, running: _Running) -> None:
        """Persist the metrics the trial appended since the last look, then act on them."""
        trial = running.trial
        result = metrics_file.read_new(self.trial_dir(trial.id) / METRICS_FILE, trial.metrics_offset,
                                       running.seq, self.config.objective.metric)
        if not result.metrics:
            return
        self.store.add_metrics(trial, result.metrics, result.offset)
        running.seq += len(result.metrics)
        trial.steps += sum(m.kind == "intermediate" for m in result.metrics)
        for metric in result.metrics:
            if metric.kind == "final" and running.final is None and metric.value is not None:
                running.final = metric.value
            self._emit("trial_metric", trial=trial.id, kind=metric.kind, step=metric.step, value=metric.value)
        if result.problem and running.ending is None:
            running.ending = ("failed", result.problem)

    def _finish(self, running: _Running, status: str, code: int | None, reason: str | None) -> None:
        trial = running.trial
        value = running.final if status == "succeeded" else None
        self.store.trial_ended(trial, status, code, reason, value)
        self.gpus.release(running.gpus)
        del self._running[trial.id]
        if status == "succeeded" and (self.best is None or self._better(value, self.best.value)):
            self.best = trial
        self._emit("trial_ended", trial=trial.id, status=status, value=value, error=reason)
        if status == "failed" and self._stop_reason is None and trial.attempt < self.config.retries:
            log.info("trial %d failed (%s); retrying (attempt %d of %d)", trial.id, reason, trial.attempt + 1,
                     self.config.retries)
            self._ready.append(_Request(trial.params, running.key, trial.retry_of or trial.id, trial.attempt + 1))
        else:
            self.configs_ended += 1
            asyncio.get_running_loop().create_task(self._guarded(self._tell(running.key, value)))
        self._wake.set()

    async def _tell(self, key: int, value: float | None) -> None:
        await self._worker.call(self._worker.tuner.tell, key, value)
        self._tuner_waiting = False
        self._wake.set()

    async def _end_running_trials(self) -> None:
        reason = self._stop_reason or "experiment ended"
        for running in self._running.values():
            running.ending = running.ending or ("killed", reason)
        tasks = [r.task for r in self._running.values() if r.task is not None]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    def _better(self, value: float | None, than: float | None) -> bool:
        if value is None or than is None:
            return than is None
        return value > than if self.config.objective.mode == "maximize" else value < than

    def trial_dir(self, trial_id: int) -> Path:
        """Where a trial's params, metrics and logs live."""
        return self.store.home / "experiments" / self.experiment.id / "trials" / str(trial_id)

    def _emit(self, event: str, **data: Any) -> None:
        for listener in self.listeners:
            listener(event, data)


def _with_tail(reason: str, trial_dir: Path) -> str:
    tail = stderr_tail(trial_dir)
    return f"{reason}: {tail}" if tail else reason
