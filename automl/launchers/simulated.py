"""Simulated trials: learning curves from a function, one step per virtual epoch, run by the real experiment loop.

`SimulatedLauncher` stands in for `LocalLauncher`: a trial is a coroutine
that sleeps through each epoch and appends the curve's value to the trial's
metrics file exactly as `automl.trial` would. On a `VirtualClockLoop` the
sleeps cost no real time, so `simulate` runs a thousand-trial experiment,
with its tuner, stopper and store, in seconds. Benchmarks and tests use it.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config.model import ExperimentConfig, GpuPolicy
from ..engine.experiment import ExperimentLoop, Listener
from ..engine.virtual_clock import VirtualClockLoop
from ..gpu.pool import GpuPool
from ..store import Store
from ..trial_exit import EXIT_FILE
from .base import METRICS_FILE, PARAMS_FILE, STDERR_FILE, Locator, ProcessUsage, TrialIdentity, TrialSpec
from .metrics_file import MetricsReader, ReadResult

Curve = Callable[[dict[str, Any], int], float]
"""A trial's value at an epoch (1-based) for its parameters."""

EPOCHS_SPENT = "epoch budget spent"
FIRST_PID = 5_000_000  # above Linux's largest pid, so a simulated pid never names a real process


@dataclass
class SimulatedProcess:
    """A running simulated trial: its coroutine, and its exit status once it ends."""

    locator: Locator
    task: asyncio.Task[int] = field(repr=False)
    exit: asyncio.Future[int] = field(repr=False)
    signal: int = signal.SIGTERM

    def end(self, sig: int) -> None:
        """End the trial as signal `sig` would."""
        if not self.task.done():
            self.signal = sig
            self.task.cancel()


class SimulatedTrial:
    """The handle of a simulated trial; without a process, of one that never ran in this simulation."""

    def __init__(self, identity: TrialIdentity, trial_dir: Path, process: SimulatedProcess | None = None) -> None:
        self.identity, self.trial_dir, self._process = identity, trial_dir, process
        self.locator = None if process is None else process.locator
        self._metrics = MetricsReader(trial_dir / METRICS_FILE)

    async def read_metrics(self, offset: int, seq: int, objective: str, *, final: bool = False) -> ReadResult:
        """The records the trial appended to its metrics file after `offset`, one chunk at most."""
        return self._metrics.read(offset, seq, objective, final=final)

    async def wait(self) -> int | None:
        """The exit status: 0 after the last epoch, 1 for a broken curve, -N when ended by signal N."""
        return None if self._process is None else await asyncio.shield(self._process.exit)

    def sample(self) -> set[int]:
        """A simulated trial has no processes to look at."""
        return set()

    def usage(self) -> ProcessUsage:
        """A simulated trial uses nothing."""
        return ProcessUsage()

    async def terminate(self, grace: float) -> None:
        """End the trial as SIGTERM would, at once (a simulated trial needs no grace period)."""
        if self._process is not None:
            self._process.end(signal.SIGTERM)
            await self.wait()

    def kill(self) -> None:
        """End the trial as SIGKILL would."""
        if self._process is not None:
            self._process.end(signal.SIGKILL)

    async def end_leftovers(self, grace: float) -> list[int]:
        """A simulated trial starts no processes, so it leaves none behind."""
        return []


class SimulatedLauncher:
    """Runs trials as coroutines that report `curve(params, epoch)` for epochs 1..`epochs`, each `epoch_seconds`
    long, then report the last value as final."""

    def __init__(self, curve: Curve, epochs: int, epoch_seconds: float = 1.0) -> None:
        if epochs < 1 or epoch_seconds <= 0:
            raise ValueError(f"need epochs >= 1 and epoch_seconds > 0, got {epochs} and {epoch_seconds}")
        self.curve, self.epochs, self.epoch_seconds = curve, epochs, epoch_seconds
        self.epochs_run = 0
        """Epochs all trials have completed so far (the budget spent)."""
        self._pids = itertools.count(FIRST_PID)
        self._processes: dict[TrialIdentity, SimulatedProcess] = {}

    async def start(self, spec: TrialSpec) -> SimulatedTrial:
        """Write the trial's folder as `LocalLauncher` does and start its epochs."""
        spec.trial_dir.mkdir(parents=True, exist_ok=True)
        (spec.trial_dir / PARAMS_FILE).write_text(json.dumps(spec.params, indent=2) + "\n")
        (spec.trial_dir / METRICS_FILE).touch()
        (spec.trial_dir / EXIT_FILE).unlink(missing_ok=True)
        loop = asyncio.get_running_loop()
        task = loop.create_task(self._train(spec.trial_dir, spec.params))
        process = SimulatedProcess(Locator(next(self._pids), loop.time()), task, loop.create_future())
        task.add_done_callback(lambda done: process.exit.set_result(_exit_status(done, process.signal)))
        identity = TrialIdentity(spec.experiment_id, spec.trial_id)
        self._processes[identity] = process
        return SimulatedTrial(identity, spec.trial_dir, process)

    async def attach(self, identity: TrialIdentity, locator: Locator | None, trial_dir: Path) -> SimulatedTrial:
        """The handle of a trial this launcher runs still; else of one that left only its folder."""
        process = self._processes.get(identity)
        running = process is not None and not process.task.done()
        return SimulatedTrial(identity, trial_dir, process if running else None)

    async def kill_leftovers(self, identity: TrialIdentity) -> list[int]:
        """A simulated trial starts no processes, so it leaves none behind."""
        return []

    def watch(self, report: Callable[[str, bool], None]) -> None:
        """A simulation has no trouble of its own to report."""

    def close(self) -> None:
        """Nothing is held for an experiment beyond its trials."""

    async def _train(self, trial_dir: Path, params: dict[str, Any]) -> int:
        value = None
        for epoch in range(1, self.epochs + 1):
            await asyncio.sleep(self.epoch_seconds)
            self.epochs_run += 1
            try:
                value = float(self.curve(params, epoch))
            except Exception as e:  # noqa: BLE001 - a broken curve fails its trial, as a crashing script would
                (trial_dir / STDERR_FILE).write_text(f"{type(e).__name__}: {e}\n")
                (trial_dir / EXIT_FILE).write_text("1\n")
                return 1
            _append(trial_dir, {"kind": "intermediate", "step": epoch, "value": value})
        _append(trial_dir, {"kind": "final", "step": None, "value": value})
        (trial_dir / EXIT_FILE).write_text("0\n")
        return 0


@dataclass
class Simulation:
    """An experiment that ran on the virtual clock: its store (still open), id, final status and virtual length."""

    store: Store
    experiment_id: str
    status: str
    seconds: float


def simulate(
    home: Path,
    config: ExperimentConfig,
    tuner: Any,
    launcher: SimulatedLauncher,
    listeners: tuple[Listener, ...] = (),
    poll_interval: float | None = None,
    max_epochs: int | None = None,
) -> Simulation:
    """Run one experiment with simulated trials on a virtual clock, CPU-only, into a non-durable store at `home`.

    `poll_interval` is in virtual seconds, a tenth of an epoch unless given: short enough for stopping
    decisions to land within the epoch they judge, long enough not to spend the real time on polling.
    With `max_epochs`, the experiment is stopped once its trials have run that many epochs in all.
    """
    driven: list[ExperimentLoop] = []  # the experiment loop, once made: the clock waits while it is deciding
    loop = VirtualClockLoop(busy=lambda: any(d.deciding for d in driven))
    try:
        store = Store(home, durable=False, clock=loop.time)
        experiment = store.find_experiment(store.create_experiment(config.name, config.model_dump(mode="json"), None))
        slots = GpuPool(None).slots(experiment.id, GpuPolicy(), 0)
        experiment_loop = ExperimentLoop(
            store,
            experiment,
            config,
            tuner,
            slots,
            launcher=launcher,
            poll_interval=poll_interval or launcher.epoch_seconds / 10,
        )
        driven.append(experiment_loop)
        experiment_loop.listeners.extend(listeners)
        if max_epochs is not None:

            def stop_when_spent(event: str, data: dict[str, Any]) -> None:
                if launcher.epochs_run >= max_epochs:
                    experiment_loop.stop(EPOCHS_SPENT)

            experiment_loop.listeners.append(stop_when_spent)
        began = loop.time()
        status = loop.run_until_complete(experiment_loop.run())
        return Simulation(store, experiment.id, status, loop.time() - began)
    finally:
        _close(loop)


def _close(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel what is left (late tuner and stopper bookkeeping) and close, as `asyncio.run` does."""
    left = asyncio.all_tasks(loop)
    for task in left:
        task.cancel()
    loop.run_until_complete(_settled(left))
    loop.run_until_complete(loop.shutdown_asyncgens())
    loop.close()


async def _settled(tasks: set[asyncio.Task[Any]]) -> None:
    await asyncio.gather(*tasks, return_exceptions=True)


def _exit_status(task: asyncio.Task[int], sig: int) -> int:
    return -sig if task.cancelled() else task.result()


def _append(trial_dir: Path, record: dict[str, Any]) -> None:
    with open(trial_dir / METRICS_FILE, "a", encoding="utf-8") as f:
        f.write(json.dumps({**record, "time": asyncio.get_running_loop().time()}) + "\n")
