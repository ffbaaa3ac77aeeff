"""Deleting experiments (`automl rm`, and the dashboard's delete): their store rows and their folder."""

from __future__ import annotations

import shutil
from pathlib import Path

from .errors import UserError
from .states import ExperimentStatus
from .store import ExperimentRecord, Store
from .views import shown_status


def removable(experiment: ExperimentRecord) -> str | None:
    """Why the experiment cannot be deleted as it is (running, paused or orphaned: trials may still run), or
    None."""
    status = shown_status(experiment)
    if status in (ExperimentStatus.RUNNING, ExperimentStatus.PAUSED, ExperimentStatus.ORPHANED):
        return f"experiment {experiment.name} [{experiment.id}] is {status}; stop it first (or rm --force)"
    return None


def remove(home: Path, exp_id: str) -> None:
    """Delete an experiment that no process runs: its rows, then its folder (trial folders, log, tuner state).
    UserError if it is running or paused, or when the store takes no writes."""
    store = Store(home)
    try:
        experiment = store.find_experiment(exp_id)
        why = removable(experiment)
        if why is not None:
            raise UserError(why)
        store.delete_experiment(experiment.id)
    finally:
        store.close()
    folder = home / "experiments" / experiment.id
    try:
        shutil.rmtree(folder)
    except FileNotFoundError:
        pass
    except OSError as e:
        raise UserError(
            f"experiment {experiment.id} is deleted from the store, but not its folder {folder}: {e}"
        ) from e
