"""What the dashboard shows, as plain data: the experiments, the open experiment's trials and curves, the GPUs.

Only the UI thread changes this state: it applies daemon events and what the
store reader read. Every part carries a version number, so that screens redraw
only what changed.
"""

from __future__ import annotations

import math
import time
from array import array
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from automl.export import best_of, flatten
from automl.states import EventKind, ExperimentStatus, TrialStatus

ACTIVE = frozenset({ExperimentStatus.RUNNING, ExperimentStatus.PAUSED})
"""Experiment statuses of an experiment that still has work ahead."""

GPU_HISTORY = 300
"""Samples of history kept per GPU (10 minutes at the daemon's 2-second rate)."""


ROW_FIELDS = (
    "status",
    "params",
    "value",
    "started",
    "ended",
    "gpus",
    "pid",
    "error",
    "attempt",
    "retry_of",
    "cost",
    "node",
)
"""A trial's fields that a read of the store brings (its curve comes separately)."""


@dataclass
class TrialState:
    """One trial of the open experiment, with its learning curve (intermediate reports by step)."""

    id: int
    status: str
    params: dict[str, Any]
    value: float | None = None
    started: float | None = None
    ended: float | None = None
    gpus: list[int] = field(default_factory=list)
    pid: int | None = None
    error: str | None = None
    attempt: int = 0
    retry_of: int | None = None
    cost: dict[str, float] = field(default_factory=dict)
    node: str | None = None  # the cluster node it ran on (None: the daemon's machine)
    steps: array = field(default_factory=lambda: array("q"))
    values: array = field(default_factory=lambda: array("d"))
    last: float | None = None
    best: float | None = None
    stamp: int = 0
    _flat: tuple[dict[str, Any], dict[str, Any]] | None = field(default=None, repr=False, compare=False)

    def flat_params(self) -> dict[str, Any]:
        """The params with nested choices as dotted names (computed once per params object)."""
        if self._flat is None or self._flat[0] is not self.params:
            self._flat = (self.params, flatten(self.params))
        return self._flat[1]

    def add_points(self, steps: Sequence[int], values: Sequence[float], maximize: bool) -> None:
        """Append curve points in report order and keep `last` and `best` up to date."""
        if not values:
            return
        self.steps.extend(steps)
        self.values.extend(values)
        self.last = values[-1]
        top = max(values) if maximize else min(values)
        if self.best is None or (top > self.best if maximize else top < self.best):
            self.best = top
        self.stamp += 1

    def take_row(self, row: TrialState) -> bool:
        """Take the row fields of a fresh read of this trial (not its curve); whether anything changed."""
        fresh = {name: getattr(row, name) for name in ROW_FIELDS}
        if all(fresh[name] == getattr(self, name) for name in ROW_FIELDS):
            return False
        if row.params == self.params:
            fresh["params"] = self.params  # the same params object: flat_params() stays cached
        for name, value in fresh.items():
            setattr(self, name, value)
        self.stamp += 1
        return True

    def duration(self, now: float) -> float | None:
        """Seconds it ran (so far, while it runs)."""
        if self.started is None:
            return None
        return (self.ended if self.ended is not None else now) - self.started

    def shown_best(self, maximize: bool) -> float | None:
        """The best of its intermediate reports and its final value."""
        candidates = [v for v in (self.best, self.value) if v is not None]
        if not candidates:
            return None
        return max(candidates) if maximize else min(candidates)

    def shown_last(self) -> float | None:
        """Its final value once it has one, else its latest report."""
        return self.value if self.value is not None else self.last


@dataclass
class ExperimentSummary:
    """One experiment's headline figures, for the overview and the experiment's status line."""

    id: str
    name: str
    status: str
    created: float
    ended: float | None = None
    error: str | None = None
    note: str | None = None
    mode: str = "maximize"
    metric: str = "default"
    max_trials: int | None = None
    max_duration: float | None = None
    concurrency: int = 1
    mean_trial_seconds: float | None = None
    param_names: list[str] = field(default_factory=list)
    constant_params: frozenset[str] = frozenset()
    param_kinds: dict[str, str] = field(default_factory=dict)
    finished: int = 0
    running: int = 0
    best_value: float | None = None
    best_trial: int | None = None
    cost: dict[str, Any] = field(default_factory=dict)
    gpus_in_use: list[int] = field(default_factory=list)

    @property
    def maximize(self) -> bool:
        """Whether larger objective values are better."""
        return self.mode == "maximize"

    def eta(self, now: float) -> float | None:
        """Seconds until a running experiment is likely done: its trials left (running ones included) in rounds
        of `concurrency`, each as long as its finished trials took on average, and never past its `max_duration`;
        None when it is not running or nothing bounds it, or before a trial has finished."""
        if self.status != ExperimentStatus.RUNNING:
            return None
        deadline = None if self.max_duration is None else max(0.0, self.created + self.max_duration - now)
        by_trials = None
        if self.max_trials is not None and self.mean_trial_seconds is not None:
            left = max(0, self.max_trials - self.finished)
            by_trials = math.ceil(left / max(1, self.concurrency)) * self.mean_trial_seconds
        known = [t for t in (deadline, by_trials) if t is not None]
        return min(known) if known else None


@dataclass
class GpuState:
    """One GPU: its latest reading, a short history of load, memory and power, and who uses it; and the cluster
    node it is on (None: this machine)."""

    index: int
    node: str | None = None
    node_address: str | None = None
    sampled: bool = False  # whether `gpu_sample` events bring its readings (else the daemon's `gpus` answers do)
    name: str = ""
    utilization: deque = field(default_factory=lambda: deque(maxlen=GPU_HISTORY))
    memory: deque = field(default_factory=lambda: deque(maxlen=GPU_HISTORY))
    power: deque = field(default_factory=lambda: deque(maxlen=GPU_HISTORY))
    memory_used_mib: float | None = None
    memory_total_mib: float | None = None
    power_w: float | None = None
    processes: list[dict[str, Any]] = field(default_factory=list)
    takes_trial: bool | None = None
    reason: str = ""

    def take_sample(self, sample: dict[str, Any]) -> None:
        """Record one reading from a `gpu_sample` event."""
        self.name = str(sample.get("name") or self.name)
        used, total = sample.get("memory_used_mib"), sample.get("memory_total_mib")
        self.memory_used_mib, self.memory_total_mib = used, total
        self.power_w = sample.get("power_w")
        self.utilization.append(float(sample.get("utilization") or 0.0))
        self.memory.append(100.0 * used / total if used is not None and total else 0.0)
        self.power.append(float(self.power_w or 0.0))
        self.processes = [p for p in sample.get("processes") or [] if isinstance(p, dict)]


@dataclass
class StoreRead:
    """What one pass of the store reader found; `None` parts were not read this time."""

    generation: int
    experiments: list[ExperimentSummary] | None = None
    trials: list[TrialState] | None = None
    """The open experiment's trial rows that are new or may have changed since the reader's last read of them."""
    points: dict[int, tuple[list[int], list[float]]] = field(default_factory=dict)
    reset_curves: bool = False
    importance: tuple[dict[str, float], int] | None = None
    """The open experiment's parameter importance and how many succeeded trials it was computed from."""
    compared: dict[str, list[float]] | None = None
    """The best-so-far curves of the experiments marked in the overview (running best after each finished trial)."""


@dataclass
class Versions:
    """Change counters, one per part of the state: `trials` counts any change to the open experiment's trials,
    `results` only those to their status, value or times (not new curve points)."""

    experiments: int = 0
    trials: int = 0
    results: int = 0
    curves: int = 0
    gpus: int = 0
    link: int = 0
    importance: int = 0
    compared: int = 0


class DashboardState:
    """Everything on screen, changed only from the UI thread."""

    def __init__(self) -> None:
        self.experiments: dict[str, ExperimentSummary] = {}
        self.open_id: str | None = None
        self.generation = 0
        self.trials: dict[int, TrialState] = {}
        self.gpus: dict[int, GpuState] = {}  # this machine's, by index
        self.node_gpus: dict[tuple[str, int], GpuState] = {}  # the cluster nodes', by node and index
        self.daemon: dict[str, Any] | None = None
        self.store_fault: dict[str, Any] | None = None  # why the daemon's store takes no writes now, if it does not
        self.connected: bool | None = None
        self.ever_connected = False  # never: the dashboard shows the store read-only until a daemon appears
        self.link_note = "connecting to the daemon…"
        self.retry_at: float | None = None
        self.loaded = False
        self.importance: dict[str, float] = {}
        self.importance_from = 0  # the succeeded trials `importance` was computed from
        self.compared: dict[str, list[float]] = {}
        self.versions = Versions()

    @property
    def read_only(self) -> bool:
        """Whether no daemon has answered since the dashboard started: it shows the store, and its controls are
        off until one does."""
        return self.connected is False and not self.ever_connected

    # what is open

    def open(self, exp_id: str | None) -> int:
        """Show `exp_id`'s trials from now on; returns the new generation that reads for it must carry."""
        if exp_id != self.open_id:
            self.open_id = exp_id
            self.trials = {}
            self.importance, self.importance_from = {}, 0
            self.versions.importance += 1
            self.generation += 1
            self.versions.trials += 1
            self.versions.results += 1
            self.versions.curves += 1
        return self.generation

    @property
    def summary(self) -> ExperimentSummary | None:
        """The open experiment's summary."""
        return self.experiments.get(self.open_id or "")

    def best_trial(self) -> TrialState | None:
        """The open experiment's succeeded trial with the best final value (ties: the earlier trial), as
        `automl export --best` picks it."""
        summary = self.summary
        return best_of(list(self.trials.values()), summary.mode if summary else "maximize")

    def best_so_far(self) -> tuple[list[float], list[float], list[float]]:
        """Finished trials in the order they ended: their final values, and the running best after each."""
        summary = self.summary
        maximize = summary.maximize if summary else True
        done = sorted((t for t in self.trials.values() if t.value is not None), key=lambda t: (t.ended or 0.0, t.id))
        xs, values, best = [], [], []
        current: float | None = None
        for n, trial in enumerate(done, start=1):
            value = trial.value
            if trial.status == TrialStatus.SUCCEEDED and (
                current is None or (value > current if maximize else value < current)
            ):
                current = value
            xs.append(float(n))
            values.append(value)
            best.append(current if current is not None else value)
        return xs, values, best

    # applying what arrived

    def apply_read(self, read: StoreRead) -> None:
        """Take a pass of the store reader; reads for an experiment no longer open are dropped."""
        self._take_summaries(read)
        if read.generation != self.generation:
            return
        maximize = self.summary.maximize if self.summary else True
        if read.importance is not None and read.importance != (self.importance, self.importance_from):
            self.importance, self.importance_from = read.importance
            self.versions.importance += 1
        if read.trials is not None:
            self._take_trial_rows(read.trials)
        self._take_curves(read, maximize)

    def _take_summaries(self, read: StoreRead) -> None:
        """Take the read's experiment headlines and compared set, which do not depend on the open experiment."""
        if read.experiments is not None:
            self.experiments = {e.id: e for e in read.experiments}
            self.versions.experiments += 1
            self.loaded = True
        if read.compared is not None and read.compared != self.compared:
            self.compared = read.compared
            self.versions.compared += 1

    def _take_trial_rows(self, rows: list[TrialState]) -> None:
        """Merge the open experiment's trial rows into the known trials; bump the versions when any changed."""
        changed = False
        for row in rows:
            trial = self.trials.get(row.id)
            if trial is None:
                self.trials[row.id] = row
                changed = True
            else:
                changed = trial.take_row(row) or changed
        if changed:
            self.versions.trials += 1
            self.versions.results += 1

    def _take_curves(self, read: StoreRead, maximize: bool) -> None:
        """Add the read's new curve points, after clearing every curve when the read starts them over."""
        if read.reset_curves:
            for trial in self.trials.values():
                trial.steps, trial.values, trial.last, trial.best = array("q"), array("d"), None, None
        for trial_id, (steps, values) in read.points.items():
            trial = self.trials.get(trial_id)
            if trial is None:
                trial = self.trials[trial_id] = TrialState(trial_id, TrialStatus.RUNNING, {})
            trial.add_points(steps, values, maximize)
        if read.points or read.reset_curves:
            self.versions.curves += 1
            self.versions.trials += 1

    def apply_event(self, event: dict[str, Any]) -> str | None:
        """Take one daemon event; returns what to read from the store because of it: 'metrics' (the open
        experiment's new curve points), 'summaries' (every experiment's headline figures), 'all' (those and the
        open experiment's trials) or None."""
        kind, exp_id, when = event.get("event"), event.get("experiment"), event.get("time")
        data = event.get("data") if isinstance(event.get("data"), dict) else {}
        if kind == EventKind.GPU_SAMPLE:
            self._take_gpu_sample(data.get("gpus") or [])
            return None
        if kind == EventKind.STORE_FAULT:
            self.store_fault = data.get("fault") if isinstance(data.get("fault"), dict) else None
            self.versions.link += 1
            return None if self.store_fault else "all"  # once it works again, what waited is in the store
        summary = self.experiments.get(exp_id or "")
        if kind == EventKind.EXPERIMENT_STATUS and summary is not None:
            summary.status = str(data.get("status") or summary.status)
            summary.error = data.get("error")
            self.versions.experiments += 1
            return "all"
        if kind == EventKind.EXPERIMENT_NOTE and summary is not None:
            summary.note = data.get("note")
            self.versions.experiments += 1
            return None
        if kind == EventKind.EXPERIMENT_UPDATED and summary is not None:
            summary.concurrency = data.get("concurrency") or summary.concurrency
            summary.max_trials = data.get("max_trials", summary.max_trials)
            self.versions.experiments += 1
            return None
        if kind == EventKind.TRIAL_METRIC:
            return "metrics" if exp_id == self.open_id else None
        if kind in (EventKind.TRIAL_STARTED, EventKind.TRIAL_ENDED):
            if exp_id != self.open_id:
                return "summaries"
            if isinstance(data.get("trial"), int):
                self._take_trial_event(kind, data, when)
            return "all"
        return None

    def take_gpu_listing(self, gpus: list[dict[str, Any]]) -> None:
        """Take the daemon's `gpus` answer: whether each GPU takes trials now, and why not; for a cluster node's
        GPU that no `gpu_sample` event brings, its reading too. A node no longer listed has left the cluster."""
        listed = set()
        for entry in gpus:
            if not isinstance(entry, dict) or not isinstance(entry.get("index"), int):
                continue
            gpu = self._gpu(entry)
            listed.add((gpu.node, gpu.index))
            if gpu.node is not None and not gpu.sampled:
                gpu.take_sample(entry)
            gpu.name = str(entry.get("name") or gpu.name)
            gpu.takes_trial = entry.get("takes_trial")
            gpu.reason = str(entry.get("reason") or "")
        self.node_gpus = {key: gpu for key, gpu in self.node_gpus.items() if key in listed}
        self.versions.gpus += 1

    def _gpu(self, entry: dict[str, Any]) -> GpuState:
        """The GPU a sample or listing entry is about: this machine's by its index, a cluster node's by its node
        and index."""
        index, node = entry["index"], entry.get("node")
        if not node:
            return self.gpus.setdefault(index, GpuState(index))
        gpu = self.node_gpus.setdefault((str(node), index), GpuState(index, node=str(node)))
        gpu.node_address = entry.get("node_address") or gpu.node_address
        return gpu

    def set_link(
        self, connected: bool, note: str, daemon: dict[str, Any] | None = None, retry_in: float | None = None
    ) -> None:
        """Record whether the daemon answers, what to tell the user about it, and when it is tried again."""
        self.connected, self.link_note = connected, note
        self.ever_connected = self.ever_connected or connected
        if daemon is not None:
            self.daemon = daemon
            self.store_fault = daemon.get("store_fault")
        self.retry_at = None if retry_in is None else time.monotonic() + retry_in
        self.versions.link += 1

    def _take_trial_event(self, kind: str, data: dict[str, Any], when: Any) -> None:
        trial_id = data["trial"]
        trial = self.trials.get(trial_id)
        if trial is None:
            trial = self.trials[trial_id] = TrialState(trial_id, TrialStatus.WAITING, {})
        if kind == EventKind.TRIAL_STARTED:
            trial.status = TrialStatus.RUNNING
            trial.params = data.get("params") or trial.params
            trial.gpus = list(data.get("gpus") or [])
            trial.started = trial.started or (when if isinstance(when, (int, float)) else None)
        else:
            trial.status = str(data.get("status") or trial.status)
            trial.value = data.get("value")
            trial.error = data.get("error")
            trial.ended = when if isinstance(when, (int, float)) else trial.ended
        trial.stamp += 1
        self.versions.trials += 1
        self.versions.results += 1

    def _take_gpu_sample(self, samples: list[Any]) -> None:
        for sample in samples:
            if isinstance(sample, dict) and isinstance(sample.get("index"), int):
                gpu = self._gpu(sample)
                gpu.take_sample(sample)
                gpu.sampled = True
        self.versions.gpus += 1
