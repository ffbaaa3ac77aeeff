"""The names shared by the daemon, the store, the CLI, the protocol and the dashboard: a trial's status, an
experiment's status, and the kinds of events the daemon publishes.

A contract: these strings are stored in SQLite and sent over the control socket, so an old store and an
older or newer client read them. Never rename or remove a member. A new status is a new schema version of the
store (automl/store.py MIGRATIONS), so an older automl refuses the newer store instead of misreading it; a new
event kind may be added freely (clients ignore kinds they do not know).
"""

from __future__ import annotations

from enum import Enum


class _Name(str, Enum):
    """A `str` enum (equal to its value, JSON-serialised as it) that prints as its value on every Python."""

    def __str__(self) -> str:
        return str(self.value)


class TrialStatus(_Name):
    """Where a trial is in its life: waiting (stored, not started), running, or one of the endings."""

    WAITING = "waiting"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    EARLY_STOPPED = "early_stopped"
    KILLED = "killed"
    INTERRUPTED = "interrupted"

    def is_finished(self) -> bool:
        """Whether the trial has ended (its status changes no more, except by a re-run under a new id)."""
        return self not in (TrialStatus.WAITING, TrialStatus.RUNNING)


class ExperimentStatus(_Name):
    """Where an experiment is: running or paused while a loop hosts it, else how it ended. `orphaned` is never
    stored: it is what a reader shows for a running experiment whose host is gone."""

    RUNNING = "running"
    PAUSED = "paused"
    DONE = "done"
    STOPPED = "stopped"
    FAILED = "failed"
    ORPHANED = "orphaned"

    def is_active(self) -> bool:
        """Whether a loop may be running it (it has not ended)."""
        return self in (ExperimentStatus.RUNNING, ExperimentStatus.PAUSED)


class EventKind(_Name):
    """What the daemon publishes to subscribed clients (and `automl run` shows on its progress line)."""

    TRIAL_STARTED = "trial_started"
    TRIAL_METRIC = "trial_metric"
    TRIAL_ENDED = "trial_ended"
    EXPERIMENT_STATUS = "experiment_status"
    EXPERIMENT_NOTE = "experiment_note"
    EXPERIMENT_UPDATED = "experiment_updated"
    STORE_FAULT = "store_fault"
    GPU_SAMPLE = "gpu_sample"
