"""Reading what the dashboard shows from the store: read-only, in the store reader's worker thread.

The daemon is the store's only writer; the dashboard never writes. Summaries
of finished experiments are read once; the open experiment's learning curves
are read incrementally, by the metrics table's rowid, and its trial rows too:
after the first read, only new trials and those not finished at the last read
(a finished trial's row no longer changes).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from automl.export import flatten
from automl.importance import MIN_TRIALS
from automl.states import TrialStatus
from automl.store import ExperimentRecord, Store, TrialRecord
from automl.usage import USAGE_FIELDS, totals
from automl.views import best_trial, importance_of

from .scatter import param_kinds
from .state import ACTIVE, ExperimentSummary, StoreRead, TrialState

_NEW_POINTS = (
    "SELECT rowid, trial_id, step, value FROM metrics WHERE +experiment_id=? AND rowid>? "
    "AND kind='intermediate' ORDER BY rowid"
)  # `+`: walk the rowid, not the whole experiment's index


class StoreReader:
    """Reads summaries, the open experiment's trials and its new curve points; one per worker thread."""

    def __init__(self, home: Path):
        self.home = home
        self._store: Store | None = None
        self._settled: dict[str, ExperimentSummary] = {}
        self._generation = -1
        self._cursor = 0
        self._importance: tuple[str, int, tuple[dict[str, float], int]] | None = None
        self._known: dict[int, TrialRecord] = {}  # the open experiment's trials as last read, in id order

    def read(
        self,
        generation: int,
        exp_id: str | None,
        everything: bool,
        summaries: bool = False,
        compared: tuple[str, ...] = (),
    ) -> StoreRead:
        """One pass: new curve points of `exp_id` always; the summaries too when `summaries`; the summaries and
        its trial rows when `everything` (and on the first pass of a new generation, which reads its curves from
        the start)."""
        read = StoreRead(generation)
        store = self._open()
        if store is None:
            read.experiments = []
            return read
        fresh = generation != self._generation
        if fresh:
            self._generation, self._cursor, self._known = generation, 0, {}
            read.reset_curves = True
        trials: list[TrialRecord] | None = None
        if everything or fresh:
            if exp_id is not None:
                changed = self._changed_trials(store, exp_id)
                trials = list(self._known.values())
                read.trials = [trial_state(t) for t in changed]
                read.importance = self._importance_of(store, exp_id, trials)
            read.experiments = self._summaries(store, exp_id, trials)
            read.compared = {ref: best_so_far(store, ref) for ref in compared}
        elif summaries:
            read.experiments = self._summaries(store, exp_id, None)
        if exp_id is not None:
            read.points = self._new_points(store, exp_id)
        return read

    def close(self) -> None:
        """Let go of the database."""
        if self._store is not None:
            self._store.close()
            self._store = None
        self._known = {}

    def _open(self) -> Store | None:
        if self._store is None:
            self._store = Store.open_for_reading(self.home)
        return self._store

    def _changed_trials(self, store: Store, exp_id: str) -> list[TrialRecord]:
        """The open experiment's trial rows that are new or may have changed since the last read (all of them the
        first time), taken into the known trials."""
        if not self._known:
            changed = store.trials(exp_id)
        else:
            unfinished = [t.id for t in self._known.values() if not t.status.is_finished()]
            changed = store.trials_since(exp_id, next(reversed(self._known)), unfinished)
        for trial in changed:
            self._known[trial.id] = trial
        return changed

    def _summaries(
        self, store: Store, open_id: str | None, open_trials: list[TrialRecord] | None
    ) -> list[ExperimentSummary]:
        summaries = []
        for experiment in store.experiments():
            settled = self._settled.get(experiment.id)
            if settled is not None and settled.status == experiment.status:
                summaries.append(dataclasses.replace(settled))
                continue
            if experiment.id == open_id and open_trials is not None:
                trials = open_trials
            else:
                trials = store.trials(experiment.id)
            summary = summarize(experiment, trials)
            if experiment.status not in ACTIVE:
                self._settled[experiment.id] = summary
            summaries.append(dataclasses.replace(summary))
        return summaries

    def _importance_of(self, store: Store, exp_id: str, trials: list[TrialRecord]) -> tuple[dict[str, float], int]:
        """The experiment's parameter importance and how many succeeded trials it is from; computed again only
        when that number changed (here, off the UI thread)."""
        succeeded = sum(1 for t in trials if t.status == TrialStatus.SUCCEEDED and t.value is not None)
        if self._importance is None or self._importance[:2] != (exp_id, succeeded):
            found = importance_of(store.find_experiment(exp_id), trials) if succeeded >= MIN_TRIALS else {}
            self._importance = (exp_id, succeeded, (found, succeeded))
        return self._importance[2]

    def _new_points(self, store: Store, exp_id: str) -> dict[int, tuple[list[int], list[float]]]:
        points: dict[int, tuple[list[int], list[float]]] = {}
        for rowid, trial_id, step, value in store.conn.execute(_NEW_POINTS, (exp_id, self._cursor)):
            self._cursor = rowid
            if value is None:
                continue
            steps, values = points.setdefault(trial_id, ([], []))
            steps.append(step if step is not None else len(steps))
            values.append(value)
        return points


_FINISHED_VALUES = (
    "SELECT e.config, t.value, t.status FROM trials t JOIN experiments e ON e.id = t.experiment_id "
    "WHERE t.experiment_id=? AND t.value IS NOT NULL AND t.ended IS NOT NULL ORDER BY t.ended, t.id"
)


def best_so_far(store: Store, exp_id: str) -> list[float]:
    """An experiment's best succeeded value after each of its trials that finished with a value, in the order they
    finished (before its first success: that trial's value)."""
    curve: list[float] = []
    best: float | None = None
    maximize = True
    for n, (config, value, status) in enumerate(store.conn.execute(_FINISHED_VALUES, (exp_id,))):
        if n == 0:
            maximize = (json.loads(config).get("objective") or {}).get("mode", "maximize") == "maximize"
        if status == TrialStatus.SUCCEEDED and (best is None or (value > best if maximize else value < best)):
            best = value
        curve.append(best if best is not None else value)
    return curve


def trial_state(trial: TrialRecord) -> TrialState:
    """A store row as the dashboard's trial (its curve arrives separately)."""
    usage = {
        name: float(v)
        for name in USAGE_FIELDS
        if isinstance(v := getattr(trial, name, None), (int, float)) and not isinstance(v, bool)
    }
    return TrialState(
        trial.id,
        trial.status,
        trial.params,
        trial.value,
        trial.started,
        trial.ended,
        list(trial.gpus),
        trial.pid,
        trial.error,
        trial.attempt,
        trial.retry_of,
        usage,
        trial.node,
    )


def summarize(experiment: ExperimentRecord, trials: list[TrialRecord]) -> ExperimentSummary:
    """An experiment's headline figures from its row and its trials."""
    config = experiment.config
    objective = config.get("objective") or {}
    best = best_trial(experiment, trials)
    running = [t for t in trials if t.status == TrialStatus.RUNNING]
    return ExperimentSummary(
        id=experiment.id,
        name=experiment.name,
        status=experiment.status,
        created=experiment.created,
        ended=experiment.ended,
        error=experiment.error,
        note=experiment.note,
        mode=str(objective.get("mode", "maximize")),
        metric=str(objective.get("metric", "default")),
        max_trials=config.get("max_trials"),
        max_duration=config.get("max_duration"),
        concurrency=int(config.get("concurrency") or 1),
        mean_trial_seconds=mean_duration(trials),
        param_names=param_names(config, trials),
        constant_params=constant_params(config),
        param_kinds=param_kinds(config.get("search_space") if isinstance(config.get("search_space"), dict) else None),
        finished=sum(1 for t in trials if t.status not in (TrialStatus.WAITING, TrialStatus.RUNNING)),
        running=len(running),
        best_value=None if best is None else best.value,
        best_trial=None if best is None else best.id,
        cost=cost_totals(config, trials),
        gpus_in_use=sorted({g for t in running for g in t.gpus}),
    )


def mean_duration(trials: list[TrialRecord]) -> float | None:
    """How long its finished trials took on average, or None before one has finished."""
    spans = [t.ended - t.started for t in trials if t.started is not None and t.ended is not None]
    return sum(spans) / len(spans) if spans else None


def param_names(config: dict[str, Any], trials: list[TrialRecord]) -> list[str]:
    """Parameter names in search-space order, nested choices as dotted names, then any others trials have."""
    names: dict[str, None] = {}
    space = config.get("search_space")
    if isinstance(space, dict):
        names.update((name, None) for name in space)
    for trial in trials[:50]:
        names.update((name, None) for name in flatten(trial.params))
    return list(names)


def constant_params(config: dict[str, Any]) -> frozenset[str]:
    """Parameters that take one value only (a choice of one): no column is worth them."""
    space = config.get("search_space")
    if not isinstance(space, dict):
        return frozenset()
    return frozenset(
        name
        for name, spec in space.items()
        if isinstance(spec, dict) and spec.get("_type") == "choice" and len(spec.get("_value") or []) == 1
    )


def cost_totals(config: dict[str, Any], trials: list[TrialRecord]) -> dict[str, Any]:
    """The experiment's resource use summed over its trials (`automl.usage.totals`), and `money`: what it cost
    when the experiment has prices (a cost above zero, or a price in its `cost:` config), else None, and the
    dashboard shows GPU-hours instead."""
    prices = config.get("cost") or {}
    sums = totals(trials, str(prices.get("currency") or "USD"))
    priced = sums["cost"] > 0 or any((prices.get(name) or 0) > 0 for name in ("price_per_kwh", "price_per_gpu_hour"))
    sums["money"] = sums["cost"] if priced else None
    return sums
