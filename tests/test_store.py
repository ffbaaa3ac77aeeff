"""The store keeps statuses as the shared enums: what is written as a member is read back, by a new handle on the
real SQLite file, as that same member; a name that is no status is refused before anything is written."""

from __future__ import annotations

from pathlib import Path

import pytest

from automl.states import ExperimentStatus, TrialStatus
from automl.store import Store

STORED_EXPERIMENT_STATUSES = [s for s in ExperimentStatus if s is not ExperimentStatus.ORPHANED]  # never stored


def _reread(home: Path) -> Store:
    """A fresh read-only handle: what another process reading the file sees."""
    store = Store.open_for_reading(home)
    assert store is not None
    return store


def _trial_with_status(store: Store, exp_id: str, status: TrialStatus) -> None:
    """A trial brought to `status` the way the experiment loop brings one there."""
    trial = store.add_trial(exp_id, {"x": 1}, tuner_key=0, gpus=[])
    if status is TrialStatus.WAITING:
        return
    store.trial_started(trial, pid=1, pid_created=None)
    if status.is_finished():
        store.trial_ended(trial, status)


def test_every_trial_status_round_trips_as_its_enum(home: Path) -> None:
    store = Store(home)
    exp_id = store.create_experiment("roundtrip", {}, None)
    for status in TrialStatus:
        _trial_with_status(store, exp_id, status)
    store.close()
    reader = _reread(home)
    assert [t.status for t in reader.trials(exp_id)] == list(TrialStatus)
    assert all(type(t.status) is TrialStatus for t in reader.trials(exp_id))
    reader.close()


def test_every_experiment_status_round_trips_as_its_enum(home: Path) -> None:
    store = Store(home)
    ids = {status: store.create_experiment(status.value, {}, None) for status in STORED_EXPERIMENT_STATUSES}
    for status, exp_id in ids.items():
        store.set_experiment_status(exp_id, status)
    store.close()
    reader = _reread(home)
    read = {e.id: e for e in reader.experiments()}
    for status, exp_id in ids.items():
        assert type(read[exp_id].status) is ExperimentStatus and read[exp_id].status is status
        assert (read[exp_id].ended is None) == status.is_active(), "only an ended experiment records when it ended"
    reader.close()


def test_a_decided_ending_round_trips_with_its_status_as_an_enum(home: Path) -> None:
    store = Store(home)
    exp_id = store.create_experiment("decided", {}, None)
    trial = store.add_trial(exp_id, {}, tuner_key=0, gpus=[])
    store.trial_started(trial, pid=1, pid_created=None)
    store.decide_ending(trial, TrialStatus.EARLY_STOPPED, "stopped early by asha")
    store.close()
    reader = _reread(home)
    (read,) = reader.trials(exp_id)
    assert read.decision == (TrialStatus.EARLY_STOPPED, "stopped early by asha")
    assert type(read.decision[0]) is TrialStatus
    reader.close()


def test_a_plain_string_status_is_stored_as_its_member_and_a_misspelt_one_is_refused(home: Path) -> None:
    store = Store(home)
    exp_id = store.create_experiment("plain", {}, None)
    trial = store.add_trial(exp_id, {}, tuner_key=0, gpus=[])
    store.trial_started(trial, pid=1, pid_created=None)
    with pytest.raises(ValueError, match="succeded"):
        store.trial_ended(trial, "succeded")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="stoped"):
        store.set_experiment_status(exp_id, "stoped")  # type: ignore[arg-type]
    store.trial_ended(trial, "succeeded")  # type: ignore[arg-type]
    assert trial.status is TrialStatus.SUCCEEDED
    (read,) = store.trials(exp_id)
    assert read.status is TrialStatus.SUCCEEDED
    assert store.find_experiment(exp_id).status is ExperimentStatus.RUNNING
    store.close()
