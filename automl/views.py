"""The JSON shapes of experiments and trials that `ls --json`, `show --json` and later tooling rely on."""

from __future__ import annotations

from typing import Any

from .errors import UserError
from .export import best_of, flatten
from .importance import importance
from .launchers.base import METRICS_FILE, PARAMS_FILE, STDERR_FILE, STDOUT_FILE
from .paths import trial_dir
from .processes import is_alive
from .states import ExperimentStatus, TrialStatus
from .store import ExperimentRecord, Store, TrialRecord
from .usage import USAGE_FIELDS, totals


def trial_view(trial: TrialRecord) -> dict[str, Any]:
    """One trial as a plain mapping."""
    return {
        "id": trial.id,
        "status": trial.status,
        "params": trial.params,
        "value": trial.value,
        "steps": trial.steps,
        "gpus": trial.gpus,
        "node": trial.node,
        "started": trial.started,
        "ended": trial.ended,
        "exit_code": trial.exit_code,
        "error": trial.error,
        "attempt": trial.attempt,
        "retry_of": trial.retry_of,
        **{name: getattr(trial, name) for name in USAGE_FIELDS},
    }


def is_orphaned(experiment: ExperimentRecord) -> bool:
    """Whether the experiment runs (or is paused) in the foreground of an `automl run` that is gone (killed): no
    process carries it on until `automl resume` hands it to the daemon or `automl stop` ends it."""
    return (
        experiment.status.is_active()
        and experiment.host == "foreground"
        and experiment.host_pid is not None
        and not is_alive(experiment.host_pid, experiment.host_started)
    )


def shown_status(experiment: ExperimentRecord) -> ExperimentStatus:
    """The stored status, or `orphaned` for an experiment whose foreground host is gone."""
    return ExperimentStatus.ORPHANED if is_orphaned(experiment) else experiment.status


def listing_key(status: str, created: float) -> tuple[bool, float]:
    """The order `ls` and the dashboard list experiments in: active ones (running, paused, orphaned) first, then
    newest first."""
    return not (ExperimentStatus(status).is_active() or status == ExperimentStatus.ORPHANED), -created


def experiment_summary(experiment: ExperimentRecord, trials: list[TrialRecord]) -> dict[str, Any]:
    """An experiment's headline figures: what `ls` shows."""
    best = best_trial(experiment, trials)
    return {
        "id": experiment.id,
        "name": experiment.name,
        "status": shown_status(experiment),
        "created": experiment.created,
        "ended": experiment.ended,
        "trials": len(trials),
        "max_trials": experiment.config.get("max_trials"),
        "best_value": None if best is None else best.value,
        "cost": totals(trials, experiment.config.get("cost", {}).get("currency", "USD")),
    }


def experiment_view(store: Store, experiment: ExperimentRecord) -> dict[str, Any]:
    """An experiment with all its trials: what `show --json` prints."""
    trials = store.trials(experiment.id)
    best = best_trial(experiment, trials)
    return {
        **experiment_summary(experiment, trials),
        "error": experiment.error,
        "note": experiment.note,
        "config_path": experiment.config_path,
        "objective": experiment.config["objective"],
        "tuner": experiment.config["tuner"],
        "best": None if best is None else trial_view(best),
        "importance": importance_of(experiment, trials),
        "trials": [trial_view(t) for t in trials],
    }


def importance_of(experiment: ExperimentRecord, trials: list[TrialRecord]) -> dict[str, float]:
    """Each parameter's share of importance for the objective, from the succeeded trials (`automl.importance`);
    empty while there are too few of them."""
    done = [t for t in trials if t.status == TrialStatus.SUCCEEDED and t.value is not None]
    return importance(
        [flatten(t.params) for t in done],
        [t.value for t in done],
        experiment.config["objective"]["mode"] == "maximize",
        experiment.config.get("search_space"),
    )


def trial_detail_view(store: Store, experiment: ExperimentRecord, trial_id: int) -> dict[str, Any]:
    """One trial with its whole curve and where its files are: what `show EXP TRIAL --json` prints."""
    trial = next((t for t in store.trials(experiment.id) if t.id == trial_id), None)
    if trial is None:
        raise UserError(f"experiment {experiment.id} ({experiment.name}) has no trial {trial_id}")
    folder = trial_dir(store.home, experiment.id, trial_id)
    return {
        **trial_view(trial),
        "experiment": experiment.id,
        "curve": [
            {"kind": m.kind, "step": m.step, "value": m.value, "time": m.time}
            for m in store.metrics(experiment.id, trial_id)
        ],
        "files": {
            "folder": str(folder),
            **{
                name: str(folder / file)
                for name, file in (
                    ("stdout", STDOUT_FILE),
                    ("stderr", STDERR_FILE),
                    ("metrics", METRICS_FILE),
                    ("params", PARAMS_FILE),
                )
            },
        },
    }


def best_trial(experiment: ExperimentRecord, trials: list[TrialRecord]) -> TrialRecord | None:
    """The succeeded trial with the best objective value, or None."""
    return best_of(trials, experiment.config["objective"]["mode"])
