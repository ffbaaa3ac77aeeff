"""The SQLite store (WAL mode, one file per data directory): experiments, trials and every reported metric.

One process writes (the experiment loop's host); any number read. Every
metric is committed before anything acts on it.

Contract: the schema is read by other tools and by other automl versions. Columns and tables may be added, each
addition a new step in MIGRATIONS (which raises SCHEMA_VERSION); none is renamed, removed or given another meaning.
"""

from __future__ import annotations

import json
import logging
import math
import os
import secrets
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import DaemonError, UserError
from .paths import check_own_file, create_file, secure_home
from .processes import process_start_time
from .states import ExperimentStatus, TrialStatus
from .usage import USAGE_FIELDS

log = logging.getLogger("automl")


DB_NAME = "automl.db"
OPEN_WAIT = 10.0  # seconds opening the store waits for another writer's lock
LOOP_WRITE_WAIT = 0.1  # seconds an experiment loop's write waits for a lock: longer would stall the event loop
RETRY_FIRST = 0.2  # seconds before the first retry after a failed write; doubled per failure
RETRY_MAX = 5.0

# Contract: the dashboard, `automl` commands of older and newer versions and users' own scripts read these tables.
# Change them only by adding a column or a table: add it here and as a step of MIGRATIONS (for files an older version
# wrote), which raises SCHEMA_VERSION; never rename or remove a table or column, nor change what a stored value
# means. The status columns hold the values of `automl.states` (TrialStatus, ExperimentStatus), and a new status
# value needs a new schema version too (an older reader refuses a newer store rather than misread it);
# metrics.kind is `intermediate` or `final`. Readers tolerate a missing column (a file an older version wrote).
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS experiments (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    status TEXT NOT NULL,
    config TEXT NOT NULL,
    config_path TEXT,
    host TEXT NOT NULL DEFAULT 'foreground',
    created REAL NOT NULL,
    ended REAL,
    error TEXT,
    note TEXT,
    environment TEXT,
    stop_reason TEXT,
    host_pid INTEGER,
    host_started REAL
);
CREATE TABLE IF NOT EXISTS trials (
    experiment_id TEXT NOT NULL REFERENCES experiments(id),
    id INTEGER NOT NULL,
    params TEXT NOT NULL,
    status TEXT NOT NULL,
    retry_of INTEGER,
    attempt INTEGER NOT NULL DEFAULT 0,
    tuner_key INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL,
    started REAL,
    ended REAL,
    pid INTEGER,
    pid_created REAL,
    gpus TEXT NOT NULL DEFAULT '[]',
    exit_code INTEGER,
    error TEXT,
    value REAL,
    metrics_offset INTEGER NOT NULL DEFAULT 0,
    gpu_seconds REAL,
    energy_j REAL,
    cpu_seconds REAL,
    peak_rss_mib REAL,
    gpu_memory_mib REAL,
    cost REAL,
    decision TEXT,
    node TEXT,
    PRIMARY KEY (experiment_id, id)
);
CREATE TABLE IF NOT EXISTS metrics (
    experiment_id TEXT NOT NULL,
    trial_id INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    kind TEXT NOT NULL,
    step INTEGER,
    value REAL,
    raw TEXT NOT NULL,
    time REAL NOT NULL,
    PRIMARY KEY (experiment_id, trial_id, seq)
);
"""

_TRIALS = (
    "SELECT t.*, (SELECT COUNT(*) FROM metrics m WHERE m.experiment_id=t.experiment_id "
    "AND m.trial_id=t.id AND m.kind='intermediate') AS steps, "
    "(SELECT COUNT(*) FROM metrics m WHERE m.experiment_id=t.experiment_id AND m.trial_id=t.id) AS lines "
    "FROM trials t WHERE experiment_id=? {where} ORDER BY id"
)
"""Trial rows with their counts of intermediate reports and of all metric lines; `where`: more conditions."""


@dataclass(frozen=True)
class Migration:
    """One step of the schema's history: the version it brings a store to and the columns it adds to a table."""

    version: int
    table: str
    columns: tuple[tuple[str, str], ...]  # (name, SQL type), as added then


MIGRATIONS = (  # in order; a store at version v gets every step above v when it is opened for writing
    Migration(
        2,
        "trials",
        (
            ("gpu_seconds", "REAL"),
            ("energy_j", "REAL"),
            ("cpu_seconds", "REAL"),
            ("peak_rss_mib", "REAL"),
            ("gpu_memory_mib", "REAL"),
            ("cost", "REAL"),
        ),
    ),
    Migration(3, "experiments", (("note", "TEXT"), ("environment", "TEXT"))),
    Migration(4, "experiments", (("stop_reason", "TEXT"), ("host_pid", "INTEGER"), ("host_started", "REAL"))),
    Migration(4, "trials", (("decision", "TEXT"),)),
    Migration(5, "trials", (("node", "TEXT"),)),
)
SCHEMA_VERSION = MIGRATIONS[-1].version


@dataclass
class ExperimentRecord:
    """An experiment row; `config` is the resolved config as a plain mapping."""

    id: str
    name: str
    status: ExperimentStatus
    config: dict[str, Any]
    config_path: str | None
    host: str
    created: float
    ended: float | None
    error: str | None
    note: str | None = None  # why it ended or will end early, e.g. the tuner has no more configurations
    environment: dict[str, str] | None = None  # the submitting shell's, for its trials; None: the host's own
    stop_reason: str | None = None  # a stop decided and stored, carried out by whichever process hosts it next
    host_pid: int | None = None  # the process that hosts it (automl run, or the daemon), with its start time:
    host_started: float | None = None  # a foreground experiment whose host is gone is orphaned


@dataclass
class TrialRecord:
    """A trial row. A retry is a trial of its own whose `retry_of` names the first attempt."""

    experiment_id: str
    id: int
    params: dict[str, Any]
    status: TrialStatus
    retry_of: int | None = None
    attempt: int = 0
    tuner_key: int = 0
    created: float = 0.0
    started: float | None = None
    ended: float | None = None
    pid: int | None = None
    pid_created: float | None = None
    gpus: list[int] = field(default_factory=list)
    exit_code: int | None = None
    error: str | None = None
    value: float | None = None
    metrics_offset: int = 0
    steps: int = 0
    metric_lines: int = 0
    gpu_seconds: float | None = None
    energy_j: float | None = None
    cpu_seconds: float | None = None
    peak_rss_mib: float | None = None
    gpu_memory_mib: float | None = None
    cost: float | None = None
    decision: tuple[TrialStatus, str] | None = None  # (status, reason) an ending decided for it and not yet carried out
    node: str | None = None  # the cluster node it runs on (None: the machine of its host)


class StoreUnavailable(DaemonError):
    """The store cannot take a write now (locked, disk full, read-only, damaged); the writer retries later."""


@dataclass
class StoreFault:
    """Why writes to the store fail now, since when (wall clock), how often, and when to try again (monotonic)."""

    error: str
    since: float
    failures: int
    retry_at: float

    def describe(self) -> dict[str, Any]:
        """The fault as the daemon's `status` reports it."""
        return {
            "error": self.error,
            "since": self.since,
            "failures": self.failures,
            "retry_in": round(max(0.0, self.retry_at - time.monotonic()), 3),
        }


@dataclass
class Metric:
    """One line of a trial's metrics file: its objective `value` (None if not numeric) and the record as written."""

    seq: int
    kind: str
    step: int | None
    value: float | None
    raw: dict[str, Any]
    time: float


class Store:
    """Access to one data directory's database."""

    def __init__(
        self,
        home: Path,
        readonly: bool = False,
        *,
        durable: bool = True,
        clock: Callable[[], float] = time.time,
        write_wait: float = OPEN_WAIT,
    ):
        """`durable=False` skips the fsync per commit (simulations, where a crash loses nothing of value);
        `clock` stamps every record (a simulation's virtual clock); `write_wait` is how long a write waits for
        another writer's lock before it fails as StoreUnavailable."""
        self.home = home
        self.clock = clock
        self.path = home / DB_NAME
        self.fault: StoreFault | None = None
        self.on_fault: Callable[[StoreFault | None], None] | None = None  # told when a fault begins and ends
        if readonly:
            self.conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=10)
            self._checked(lambda: self._refuse_newer(self._schema_version()))
        else:
            _create_database_file(home)
            self.conn = sqlite3.connect(self.path, timeout=OPEN_WAIT, isolation_level=None)
            self._checked(lambda: self._prepare(durable))
            self.set_write_wait(write_wait)
        self.conn.row_factory = sqlite3.Row

    def set_write_wait(self, seconds: float) -> None:
        """How long a write waits for another writer's lock before it fails as StoreUnavailable."""
        self.conn.execute(f"PRAGMA busy_timeout={int(seconds * 1000)}")

    def _prepare(self, durable: bool) -> None:
        """WAL mode, and the schema unless it is current (so an existing store opens even while it takes no writes)."""
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute(f"PRAGMA synchronous={'FULL' if durable else 'OFF'}")
        version = self._schema_version()
        if version == SCHEMA_VERSION:
            return
        self._refuse_newer(version)
        with self._tx():
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    self.conn.execute(statement)
            self._migrate(version or 0)
            self.conn.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))

    def _refuse_newer(self, version: int | None) -> None:
        """A store a newer automl wrote may hold what this one cannot read right: it is not opened."""
        if version is not None and version > SCHEMA_VERSION:
            self.conn.close()
            raise UserError(
                f"the store {self.path} was written by a newer automl (schema version {version}; this automl knows "
                f"versions up to {SCHEMA_VERSION}); upgrade automl, or set AUTOML_HOME to another data directory"
            )

    def _schema_version(self) -> int | None:
        if not self.conn.execute("SELECT 1 FROM sqlite_master WHERE name='meta'").fetchone():
            return None
        row = self.conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        return None if row is None else int(row[0])

    def _checked(self, opening: Callable[[], Any]) -> None:
        """Run the first statements on a new connection; a damaged or unwritable store is a clear message."""
        try:
            opening()
        except (StoreUnavailable, sqlite3.OperationalError) as e:
            self.conn.close()
            raise StoreUnavailable(
                f"cannot open the store {self.path}: {e.__cause__ or e}; free disk space, or end "
                f"the process that holds it, and try again"
            ) from None
        except sqlite3.DatabaseError as e:
            self.conn.close()
            raise UserError(damaged_message(self.path, e)) from None

    @classmethod
    def open_for_reading(cls, home: Path) -> Store | None:
        """A read-only handle, or None when the data directory holds no database yet (nothing is created), or one
        whose first writer has not committed its tables yet."""
        if not (home / DB_NAME).exists():
            return None
        store = cls(home, readonly=True)
        if store._schema_version() is None:
            store.close()
            return None
        return store

    def close(self) -> None:
        self.conn.close()

    # experiments

    def create_experiment(
        self,
        name: str,
        config: dict[str, Any],
        config_path: str | None,
        host: str = "foreground",
        environment: dict[str, str] | None = None,
    ) -> str:
        """Insert a running experiment hosted by this process and return its new id; `host` says who runs it
        (foreground or daemon), `environment` what its trials run with (None: the host's own)."""
        pid, started = host_identity()
        with self._tx():
            while True:
                exp_id = secrets.token_hex(4)
                if not self.conn.execute("SELECT 1 FROM experiments WHERE id=?", (exp_id,)).fetchone():
                    break
            self.conn.execute(
                "INSERT INTO experiments (id, name, status, config, config_path, host, created, environment, "
                "host_pid, host_started) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (
                    exp_id,
                    name,
                    ExperimentStatus.RUNNING,
                    json.dumps(config),
                    config_path,
                    host,
                    self.clock(),
                    None if environment is None else json.dumps(environment),
                    pid,
                    started,
                ),
            )
        return exp_id

    def set_experiment_status(self, exp_id: str, status: ExperimentStatus, error: str | None = None) -> None:
        """Record the experiment's status; a final one also records when it ended."""
        status = ExperimentStatus(status)
        ended = None if status.is_active() else self.clock()
        with self._tx():
            self.conn.execute(
                "UPDATE experiments SET status=?, ended=?, error=? WHERE id=?", (status, ended, error, exp_id)
            )

    def set_experiment_note(self, exp_id: str, note: str | None) -> None:
        """Record why the experiment ended, or will end without using its whole budget."""
        with self._tx():
            self.conn.execute("UPDATE experiments SET note=? WHERE id=?", (note, exp_id))

    def decide_stop(self, exp_id: str, reason: str) -> None:
        """Record that the experiment is to stop, before anything acts on it: a host that dies meanwhile leaves
        the decision to the next one."""
        with self._tx():
            self.conn.execute("UPDATE experiments SET stop_reason=? WHERE id=?", (reason, exp_id))

    def claim_experiment(
        self, experiment: ExperimentRecord, host: str, environment: dict[str, str] | None = None
    ) -> bool:
        """Make this process the host of an experiment whose host is gone, unless another process claimed it
        since `experiment` was read; whether it did."""
        pid, started = host_identity()
        with self._tx():
            claimed = self.conn.execute(
                "UPDATE experiments SET host=?, host_pid=?, host_started=?, environment=? WHERE id=? "
                "AND host IS ? AND host_pid IS ? AND host_started IS ?",
                (
                    host,
                    pid,
                    started,
                    None if environment is None else json.dumps(environment),
                    experiment.id,
                    experiment.host,
                    experiment.host_pid,
                    experiment.host_started,
                ),
            ).rowcount
        return claimed == 1

    def update_config(self, exp_id: str, config: dict[str, Any]) -> None:
        """Replace an experiment's stored config (after a live change of its limits)."""
        with self._tx():
            self.conn.execute("UPDATE experiments SET config=? WHERE id=?", (json.dumps(config), exp_id))

    def delete_experiment(self, exp_id: str) -> None:
        """Delete an experiment's rows (its metrics, its trials, itself) in one transaction (`automl rm`)."""
        with self._tx():
            self.conn.execute("DELETE FROM metrics WHERE experiment_id=?", (exp_id,))
            self.conn.execute("DELETE FROM trials WHERE experiment_id=?", (exp_id,))
            self.conn.execute("DELETE FROM experiments WHERE id=?", (exp_id,))

    def experiments(self) -> list[ExperimentRecord]:
        """All experiments, oldest first."""
        rows = self.conn.execute("SELECT * FROM experiments ORDER BY created").fetchall()
        return [_experiment(r) for r in rows]

    def find_experiment(self, ref: str) -> ExperimentRecord:
        """An experiment by id, unique id prefix, or name (the newest of that name); UserError if none."""
        if not ref:
            raise UserError("an experiment reference must not be empty; give its id, an id prefix or its name")
        row = self.conn.execute("SELECT * FROM experiments WHERE id=?", (ref,)).fetchone()
        if row is None:
            rows = self.conn.execute(
                "SELECT * FROM experiments WHERE id LIKE ? ORDER BY created",
                (ref.replace("%", "").replace("_", "") + "%",),
            ).fetchall()
            if len(rows) > 1:
                raise UserError(f"experiment id prefix {ref!r} is ambiguous: {', '.join(r['id'] for r in rows)}")
            row = rows[0] if rows else None
        if row is None:
            row = self.conn.execute(
                "SELECT * FROM experiments WHERE name=? ORDER BY created DESC LIMIT 1", (ref,)
            ).fetchone()
        if row is None:
            raise UserError(f"no experiment {ref!r}; `automl ls` lists them")
        return _experiment(row)

    # trials

    def add_trial(
        self,
        exp_id: str,
        params: dict[str, Any],
        tuner_key: int,
        gpus: list[int],
        retry_of: int | None = None,
        attempt: int = 0,
    ) -> TrialRecord:
        """Insert a waiting trial with the next id of its experiment; `tuner_key` is what its tuner knows it by."""
        now = self.clock()
        with self._tx():
            (last,) = self.conn.execute(
                "SELECT COALESCE(MAX(id), 0) FROM trials WHERE experiment_id=?", (exp_id,)
            ).fetchone()
            trial = TrialRecord(
                exp_id, last + 1, params, TrialStatus.WAITING, retry_of, attempt, tuner_key, now, gpus=gpus
            )
            self.conn.execute(
                "INSERT INTO trials (experiment_id, id, params, status, retry_of, attempt, tuner_key, created, gpus) "
                "VALUES (?,?,?,?,?,?,?,?,?)",
                (
                    exp_id,
                    trial.id,
                    json.dumps(params),
                    trial.status,
                    retry_of,
                    attempt,
                    tuner_key,
                    now,
                    json.dumps(gpus),
                ),
            )
        return trial

    def trial_started(
        self,
        trial: TrialRecord,
        pid: int,
        pid_created: float | None,
        started: float | None = None,
        node: str | None = None,
        gpus: list[int] | None = None,
    ) -> None:
        """Mark a trial running under process `pid`, created at `pid_created` by the kernel's clock, on `node` (None:
        this machine) and its `gpus` there (None: the ones it was placed on), started now unless told when."""
        trial.status, trial.pid, trial.pid_created, trial.node = TrialStatus.RUNNING, pid, pid_created, node
        trial.started = self.clock() if started is None else started
        trial.gpus = trial.gpus if gpus is None else list(gpus)
        with self._tx():
            self.conn.execute(
                "UPDATE trials SET status=?, pid=?, pid_created=?, started=?, node=?, gpus=? "
                "WHERE experiment_id=? AND id=?",
                (
                    trial.status,
                    pid,
                    pid_created,
                    trial.started,
                    node,
                    json.dumps(trial.gpus),
                    trial.experiment_id,
                    trial.id,
                ),
            )

    def forget_metrics(self, trial: TrialRecord) -> None:
        """Drop a trial's stored metrics and read offset: it starts again from scratch in a fresh folder."""
        with self._tx():
            self.conn.execute(
                "DELETE FROM metrics WHERE experiment_id=? AND trial_id=?", (trial.experiment_id, trial.id)
            )
            self.conn.execute(
                "UPDATE trials SET metrics_offset=0 WHERE experiment_id=? AND id=?", (trial.experiment_id, trial.id)
            )
        trial.metrics_offset = 0

    def add_metrics(self, trial: TrialRecord, metrics: Iterable[Metric], offset: int) -> None:
        """Persist newly read metric lines and how far the metrics file has been read, in one transaction."""
        with self._tx():
            self.conn.executemany(
                "INSERT OR IGNORE INTO metrics VALUES (?,?,?,?,?,?,?,?)",
                [
                    (
                        trial.experiment_id,
                        trial.id,
                        m.seq,
                        m.kind,
                        m.step,
                        _finite_or_none(m.value),
                        json.dumps(m.raw),
                        m.time,
                    )
                    for m in metrics
                ],
            )
            self.conn.execute(
                "UPDATE trials SET metrics_offset=? WHERE experiment_id=? AND id=?",
                (offset, trial.experiment_id, trial.id),
            )
        trial.metrics_offset = offset

    def decide_ending(self, trial: TrialRecord, status: TrialStatus, reason: str) -> None:
        """Record how a running trial is to end (killed, stopped early, timed out), before it is acted on."""
        status = TrialStatus(status)
        trial.decision = (status, reason)
        with self._tx():
            self.conn.execute(
                "UPDATE trials SET decision=? WHERE experiment_id=? AND id=?",
                (json.dumps([status, reason]), trial.experiment_id, trial.id),
            )

    def trial_ended(
        self,
        trial: TrialRecord,
        status: TrialStatus,
        exit_code: int | None = None,
        error: str | None = None,
        value: float | None = None,
        usage: dict[str, float] | None = None,
        ended: float | None = None,
    ) -> None:
        """Record how a trial ended, and what it used; it ended now, unless told when."""
        status = TrialStatus(status)
        trial.status, trial.exit_code, trial.error, trial.value = status, exit_code, error, value
        trial.ended = self.clock() if ended is None else ended
        with self._tx():
            self.conn.execute(
                "UPDATE trials SET status=?, exit_code=?, error=?, value=?, ended=? WHERE experiment_id=? AND id=?",
                (status, exit_code, error, value, trial.ended, trial.experiment_id, trial.id),
            )
            if usage is not None:
                self._set_usage(trial, usage)

    def trial_usage(self, trial: TrialRecord, usage: dict[str, float]) -> None:
        """Record what a running trial has used so far (GPU-seconds, energy, CPU-seconds, peaks, cost)."""
        with self._tx():
            self._set_usage(trial, usage)

    def _set_usage(self, trial: TrialRecord, usage: dict[str, float]) -> None:
        names = [name for name in USAGE_FIELDS if name in usage]
        for name in names:
            setattr(trial, name, usage[name])
        self.conn.execute(
            f"UPDATE trials SET {', '.join(f'{n}=?' for n in names)} WHERE experiment_id=? AND id=?",
            (*(usage[n] for n in names), trial.experiment_id, trial.id),
        )

    def trials(self, exp_id: str) -> list[TrialRecord]:
        """An experiment's trials in id order, each with its number of intermediate reports."""
        return _trials(self.conn.execute(_TRIALS.format(where=""), (exp_id,)).fetchall())

    def trials_since(self, exp_id: str, after: int, among: Iterable[int]) -> list[TrialRecord]:
        """An experiment's trials with an id above `after` or in `among`, in id order: all a reader that already
        has the others needs, since a finished trial's row no longer changes (`TrialStatus.is_finished`)."""
        rows = self.conn.execute(
            _TRIALS.format(where="AND (id>? OR id IN (SELECT value FROM json_each(?)))"),
            (exp_id, after, json.dumps(list(among))),
        ).fetchall()
        return _trials(rows)

    def final_value(self, exp_id: str, trial_id: int) -> float | None:
        """The objective of a trial's first valid final report, if it made one."""
        row = self.conn.execute(
            "SELECT value FROM metrics WHERE experiment_id=? AND trial_id=? AND kind='final' "
            "AND value IS NOT NULL ORDER BY seq LIMIT 1",
            (exp_id, trial_id),
        ).fetchone()
        return None if row is None else row[0]

    def metrics(self, exp_id: str, trial_id: int) -> list[Metric]:
        """One trial's metrics in the order they were reported."""
        rows = self.conn.execute(
            "SELECT * FROM metrics WHERE experiment_id=? AND trial_id=? ORDER BY seq", (exp_id, trial_id)
        ).fetchall()
        return [Metric(r["seq"], r["kind"], r["step"], r["value"], json.loads(r["raw"]), r["time"]) for r in rows]

    def curves(self, exp_id: str) -> dict[int, list[float | None]]:
        """Every trial's intermediate objective values in the order reported, in one query."""
        curves: dict[int, list[float | None]] = {}
        for trial_id, value in self.conn.execute(
            "SELECT trial_id, value FROM metrics WHERE experiment_id=? AND kind='intermediate' ORDER BY trial_id, seq",
            (exp_id,),
        ):
            curves.setdefault(trial_id, []).append(value)
        return curves

    def _migrate(self, version: int) -> None:
        """Bring a store written at `version` by an older automl up to this schema: every step above it, in order
        (a column already there is left alone, so a step may be run again)."""
        for step in MIGRATIONS:
            if step.version <= version:
                continue
            columns = {row[1] for row in self.conn.execute(f"PRAGMA table_info({step.table})")}
            for name, kind in step.columns:
                if name not in columns:
                    self.conn.execute(f"ALTER TABLE {step.table} ADD COLUMN {name} {kind}")

    # writes that fail

    def due(self) -> bool:
        """Whether a write may be tried now: the store works, or the back-off after its last failure has passed."""
        return self.fault is None or time.monotonic() >= self.fault.retry_at

    def retry_in(self) -> float | None:
        """Seconds until a failing store may be tried again (None: it works)."""
        return None if self.fault is None else max(0.0, self.fault.retry_at - time.monotonic())

    def _failed(self, error: sqlite3.DatabaseError) -> None:
        """Note a failed write: the first one of a fault is logged, later ones push the next try further out."""
        failures = 1 if self.fault is None else self.fault.failures + 1
        delay = min(RETRY_MAX, RETRY_FIRST * 2 ** (failures - 1))
        if self.fault is None:
            log.warning(
                "store %s takes no writes (%s); trials go on, their metrics stay in their files, "
                "retrying every %g s at most",
                self.path,
                error,
                RETRY_MAX,
            )
            self.fault = StoreFault(str(error), time.time(), failures, time.monotonic() + delay)
            self._tell_fault()
        else:
            self.fault.error, self.fault.failures = str(error), failures
            self.fault.retry_at = time.monotonic() + delay

    def _succeeded(self) -> None:
        if self.fault is not None:
            log.warning(
                "store %s takes writes again after %.1f s (%d failed attempts)",
                self.path,
                time.time() - self.fault.since,
                self.fault.failures,
            )
            self.fault = None
            self._tell_fault()

    def _tell_fault(self) -> None:
        if self.on_fault is not None:
            self.on_fault(self.fault)

    @contextmanager
    def _tx(self) -> Iterator[None]:
        """One write transaction; a lock, full disk, read-only or damaged file raises StoreUnavailable (rolled back)."""
        try:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self._rollback()
                raise
            self.conn.execute("COMMIT")
        except sqlite3.DatabaseError as e:
            if not _is_fault(e):
                raise
            self._rollback()
            self._failed(e)
            raise StoreUnavailable(f"{self.path}: {e}") from e
        self._succeeded()

    def _rollback(self) -> None:
        """End a failed transaction, if SQLite has not already (a full disk can roll it back itself)."""
        if self.conn.in_transaction:
            try:
                self.conn.execute("ROLLBACK")
            except sqlite3.DatabaseError:
                pass


def damaged_message(path: Path, error: sqlite3.DatabaseError) -> str:
    """What a user reads when the store cannot be read: the file, the reason, and how to recover."""
    return (
        f"the store {path} cannot be read ({error}); to start afresh, move it and its -wal and -shm files "
        f"aside (e.g. `mv {path} {path}.damaged`), or restore it from a backup"
    )


def _is_fault(error: sqlite3.DatabaseError) -> bool:
    """A condition of the file or its disk (locked, full, read-only, I/O error, damaged), not a bug in a statement."""
    return isinstance(error, sqlite3.OperationalError) or type(error) is sqlite3.DatabaseError


def _create_database_file(home: Path) -> None:
    """Make sure the database and SQLite's side files in a safe data directory are regular files of ours (a
    link there would have SQLite write elsewhere), creating a new database 0600; UserError if not."""
    secure_home(home)
    for suffix in ("-wal", "-shm", "-journal"):
        check_own_file(home / f"{DB_NAME}{suffix}")
    try:
        create_file(home / DB_NAME)
    except FileExistsError:
        check_own_file(home / DB_NAME)


def host_identity() -> tuple[int, float | None]:
    """This process's pid and start time: what tells a live host from a dead one whose pid was reused."""
    return os.getpid(), process_start_time(os.getpid())


def _experiment(row: sqlite3.Row) -> ExperimentRecord:
    def column(name: str) -> Any:  # None in a read-only handle on a database an older automl wrote
        return row[name] if name in row.keys() else None

    environment = column("environment")
    return ExperimentRecord(
        row["id"],
        row["name"],
        ExperimentStatus(row["status"]),
        json.loads(row["config"]),
        row["config_path"],
        row["host"],
        row["created"],
        row["ended"],
        row["error"],
        column("note"),
        None if environment is None else json.loads(environment),
        column("stop_reason"),
        column("host_pid"),
        column("host_started"),
    )


def _trials(rows: list[sqlite3.Row]) -> list[TrialRecord]:
    """Trial rows as records; the columns an older store lacks read as None (looked up once, not per row)."""
    if not rows:
        return []
    columns = set(rows[0].keys())
    usage = [name for name in USAGE_FIELDS if name in columns]
    has_decision, has_node = "decision" in columns, "node" in columns
    return [
        TrialRecord(
            row["experiment_id"],
            row["id"],
            json.loads(row["params"]),
            _STATUS.get(row["status"]) or TrialStatus(row["status"]),
            row["retry_of"],
            row["attempt"],
            row["tuner_key"],
            row["created"],
            row["started"],
            row["ended"],
            row["pid"],
            row["pid_created"],
            [] if row["gpus"] == "[]" else json.loads(row["gpus"]),
            row["exit_code"],
            row["error"],
            row["value"],
            row["metrics_offset"],
            row["steps"],
            row["lines"],
            **{name: row[name] for name in usage},
            decision=_decision(row["decision"]) if has_decision else None,
            node=row["node"] if has_node else None,
        )
        for row in rows
    ]


_STATUS = {status.value: status for status in TrialStatus}


def _decision(stored: str | None) -> tuple[TrialStatus, str] | None:
    """A trial's stored decision, `[status, reason]` in JSON, as the status and the reason."""
    if not stored:
        return None
    status, reason = json.loads(stored)
    return TrialStatus(status), reason


def _finite_or_none(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None
