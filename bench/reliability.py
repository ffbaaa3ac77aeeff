"""Reliability: every fault the daemon must survive, tried against a real daemon with real trials.

For each fault: whether the experiment or command behaved as specified, metrics lost (lines in trials' metrics
files missing from the store), processes left, and the daemon's peak RSS and event-loop lag p99 during it.
The table replaces the "Reliability" section of docs/benchmarks.md.

Run from the repository root: .venv/bin/python bench/reliability.py [WORD...]
(with words, only the faults whose names hold one are tried, and the docs are left as they are)
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import pwd
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import psutil  # noqa: E402

from automl.control.client import Client  # noqa: E402
from automl.errors import UserError  # noqa: E402
from automl.launchers.local import marked_processes  # noqa: E402
from automl.launchers.metrics_file import MAX_LINE  # noqa: E402
from automl.paths import trial_dir  # noqa: E402
from automl.store import DB_NAME, Store  # noqa: E402
from tests.conftest import automl, show, write_config, write_trial  # noqa: E402
from tests.faults import test_storage  # noqa: E402
from tests.faults.test_configs import SUBMITTED, bad_config_cases, try_config  # noqa: E402
from tests.faults.test_connections import IDLE_CLIENTS, open_idle_connections  # noqa: E402
from tests.faults.test_decisions import STUBBORN_TRIAL, _space, orphan, stop_then_crash  # noqa: E402
from tests.faults.test_hostile_trials import HOSTILE, REASONS, STEPS, run_escaping, run_hostile  # noqa: E402
from tests.faults.test_security import refused, untouched  # noqa: E402
from tests.faults.test_storage import _alive, full_disk, locked_store, read_only_store, survives  # noqa: E402
from tests.test_daemon import STEPPING_TRIAL, _submit, _wait_status  # noqa: E402

LOCK_SECONDS = 30
RSS_GOAL_MB = 300
DAEMON_FILE_LIMIT = 1024  # the common default soft limit, which 2,000 connections would exhaust
SECTION = "## Reliability"
COMMAND = ".venv/bin/python bench/reliability.py"


@dataclass
class Row:
    """One fault's outcome."""

    fault: str
    held: str
    metrics_lost: int | None = None
    leftovers: int | None = None
    peak_rss_mib: float | None = None
    lag_p99_ms: float | None = None
    lag_max_ms: float | None = None
    seconds: float = 0.0
    note: str = ""


class Gauge:
    """Samples the data directory's daemon (whichever runs now) in the background: RSS every 0.1 s, and the
    event-loop lag p99 and max its `status` reports every 0.5 s; keeps the highest of each."""

    def __init__(self, home: Path):
        self.home = home
        self.peak_rss_mib: float | None = None
        self.lag_p99_ms: float | None = None
        self.lag_max_ms: float | None = None
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> Gauge:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._done.set()
        self._thread.join()

    def _sample(self) -> None:
        next_status = 0.0
        while not self._done.wait(0.1):
            pid = _daemon_pid(self.home)
            if pid is None:
                continue
            with contextlib.suppress(psutil.Error):
                rss = psutil.Process(pid).memory_info().rss / 2**20
                self.peak_rss_mib = max(self.peak_rss_mib or 0.0, rss)
            if time.monotonic() >= next_status:
                next_status = time.monotonic() + 0.5
                self._ask_lag()

    def _ask_lag(self) -> None:
        try:
            with Client(self.home / "daemon.sock", timeout=10) as client:
                lag = client.request("status").get("loop_lag_ms")
        except Exception:  # noqa: BLE001 - the daemon is down or busy this moment; the next look tries again
            return
        if lag:
            self.lag_p99_ms = max(self.lag_p99_ms or 0.0, lag["p99"])
            self.lag_max_ms = max(self.lag_max_ms or 0.0, lag["max"])


# the faults: each takes the data directory and a work folder, and returns None when it held, else why not


def storage_fault(fault: Callable[[Path], contextlib.AbstractContextManager[None]]) -> Callable[[Path, Path], None]:
    """An experiment keeps running while `fault` holds on its store, and loses nothing (tests/faults/test_storage)."""

    def scenario(home: Path, work: Path) -> None:
        survives(home, work, fault)  # raises when the fault did not hold

    return scenario


@contextlib.contextmanager
def locked_for(home: Path, seconds: float = LOCK_SECONDS) -> Iterator[None]:
    """The store held locked by another process for `seconds` in all."""
    start = time.monotonic()
    with locked_store(home):
        yield
        time.sleep(max(0.0, seconds - (time.monotonic() - start)))


@contextlib.contextmanager
def on_tmpfs(home: Path) -> Iterator[None]:
    """The data directory is a small tmpfs of its own, to be filled."""
    with test_storage.tmpfs(home):
        yield


@contextlib.contextmanager
def made(home: Path) -> Iterator[None]:
    """The data directory exists before the daemon starts (for chattr on its store)."""
    home.mkdir(parents=True)
    yield


def damaged_store(home: Path, work: Path) -> str | None:
    home.mkdir(parents=True, mode=0o700)
    (home / DB_NAME).write_bytes(b"not a database, just garbage " * 200)
    write_trial(work, "trial.report_final(params['x'])\n")
    config = write_config(work)
    for command in (["daemon", "start"], ["run", str(config)], ["ls"], ["show", "test"]):
        result = automl(*command)
        if result.returncode != 2 or "cannot be read" not in result.stderr or "Traceback" in result.stderr:
            return f"automl {command[0]} exited {result.returncode}: {result.stderr.strip()[:200]}"
    if (home / "experiments").exists() or (home / "daemon.pid").exists():
        return "something was started or written"
    return None


def hostile(harm: str) -> Callable[[Path, Path], str | None]:
    """A trial does `harm` to its metrics file beside two well-behaved ones (tests/faults/test_hostile_trials)."""

    def scenario(home: Path, work: Path) -> str | None:
        with test_storage.running_daemon(home):
            observed = run_hostile(work, home, HOSTILE[harm])
        trials = {t["params"]["role"]: t for t in observed.view["trials"]}
        bad = trials.pop("hostile")
        if observed.view["status"] != "done" or bad["status"] != "failed" or REASONS[harm] not in bad["error"]:
            return f"experiment {observed.view['status']}, hostile trial {bad['status']}: {bad['error']}"
        if bad["steps"] != 2 or any((t["status"], t["steps"]) != ("succeeded", STEPS) for t in trials.values()):
            return "a trial lost metrics or did not succeed"
        return None

    return scenario


def escaping(ending: str) -> Callable[[Path, Path], str | None]:
    """A trial's setsid grandchild must die with the trial, ended as `ending` says."""

    def scenario(home: Path, work: Path) -> str | None:
        with test_storage.running_daemon(home):
            observed, escaped = run_escaping(work, home, ending)
        alive = [pid for pid in escaped if _alive(pid)]
        return f"escaped grandchild(ren) {alive} still run" if alive or not escaped else None

    return scenario


def crash_after_stop(home: Path, work: Path) -> str | None:
    with test_storage.running_daemon(home):
        view = stop_then_crash(home, work)
    if view["status"] != "stopped" or [t["id"] for t in view["trials"]] != view["trials_before_restart"]:
        return f"experiment {view['status']} with {len(view['trials'])} trials"
    if {(t["status"], t["error"]) for t in view["trials"]} != {("killed", "stopped by user")}:
        return "a trial was not ended as stopped"
    return None


def orphan_resumed(home: Path, work: Path) -> str | None:
    try:
        exp_id = orphan(home, work, STUBBORN_TRIAL, _space(0.3, 6), max_trials=4, running=2)
        if show(exp_id)["status"] != "orphaned":
            return "the killed run's experiment is not shown orphaned"
        if "adopted" not in automl("resume", exp_id, check=True).stdout:
            return "resume did not adopt it"
        view = _wait_status(exp_id, "done", "failed", "stopped", timeout=90)
    finally:
        automl("daemon", "stop")
    if [(t["status"], t["retry_of"], t["steps"]) for t in view["trials"]] != [("succeeded", None, 6)] * 4:
        return f"experiment {view['status']}: {[(t['status'], t['steps']) for t in view['trials']]}"
    return None


def idle_connections(home: Path, work: Path) -> str | None:
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (DAEMON_FILE_LIMIT, DAEMON_FILE_LIMIT))

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    automl("daemon", "start", check=True, preexec_fn=limit)
    try:
        write_trial(work, STEPPING_TRIAL)
        space = {"x": {"_type": "uniform", "_value": [0, 1]}, "pace": {"_type": "choice", "_value": [0.3]}}
        exp = _submit(write_config(work, search_space=space, max_trials=4, concurrency=2))
        connections, _ = open_idle_connections(home / "daemon.sock", IDLE_CLIENTS)
        try:
            answered = automl("daemon", "status", "--json", timeout=60).returncode == 0
            view = _wait_status(exp, "done", "failed", "stopped")
        finally:
            for sock in connections:
                sock.close()
    finally:
        automl("daemon", "stop")
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    if not answered or [(t["status"], t["steps"]) for t in view["trials"]] != [("succeeded", 5)] * 4:
        return f"status answered: {answered}; experiment {view['status']}"
    return None


def world_writable_home(home: Path, work: Path) -> str | None:
    home.mkdir(mode=0o777)
    os.chmod(home, 0o777)
    config = _config(work)
    for args in (["run", str(config)], ["submit", str(config)], ["daemon", "start"]):
        result = automl(*args)
        if not refused(result, "writable by other users"):
            return f"automl {args[0]}: {result.returncode} {result.stderr.strip()[:200]}"
    return "something was written" if list(home.iterdir()) else None


def foreign_home(home: Path, work: Path) -> str | None:
    with other_user() as (uid, gid):
        home.mkdir(mode=0o700)
        os.chown(home, uid, gid)
        for args in (["run", str(_config(work))], ["daemon", "start"]):
            result = automl(*args)
            if not refused(result, f"uid {uid}", "not to you"):
                return f"automl {args[0]}: {result.returncode} {result.stderr.strip()[:200]}"
        return "something was written" if list(home.iterdir()) else None


def planted_links(home: Path, work: Path) -> str | None:
    bait = work / "precious.txt"
    bait.write_text("precious\n")
    os.utime(bait, (1_000_000_000, 1_000_000_000))
    for name, args in (
        ("daemon.log", ["daemon", "start"]),
        ("automl.db", ["run", str(_config(work))]),
        ("automl.db-wal", ["run", str(_config(work))]),
    ):
        home.mkdir(mode=0o700, exist_ok=True)
        (home / name).symlink_to(bait)
        result = automl(*args)
        if not refused(result, name, "symbolic link") or not untouched(bait):
            return f"{name}: automl {args[0]} exited {result.returncode}, bait untouched: {untouched(bait)}"
        (home / name).unlink()
    return None


def malformed_configs(home: Path, work: Path) -> str | None:
    """Every malformed config given to `automl run`, and those of SUBMITTED to the daemon, is one user error."""
    with test_storage.running_daemon(home):
        for case_id, file_name, text, expected in bad_config_cases():
            for command in ("run", "submit") if case_id in SUBMITTED else ("run",):
                code, stderr = try_config(work, file_name, text, command)
                if code != 2 or expected not in stderr or "Traceback" in stderr:
                    return f"{command} {case_id}: exit {code}: {stderr.strip()[:200]}"
        status = json.loads(automl("daemon", "status", "--json", check=True).stdout)
    return "the daemon hosts an experiment" if status["experiments"] else None


# what every fault is measured by


def metrics_lost(home: Path) -> int | None:
    """Lines of the trials' regular metrics files (a line at most MAX_LINE long) that the store does not hold."""
    store = _readable_store(home)
    if store is None:
        return None
    lost = 0
    try:
        for experiment in store.experiments():
            for t in store.trials(experiment.id):
                path = trial_dir(home, experiment.id, t.id) / "metrics.jsonl"
                if not path.is_file() or path.is_symlink():
                    continue
                written = collections.Counter(
                    _key(line) for line in path.read_bytes().split(b"\n") if line.strip() and len(line) <= MAX_LINE
                )
                stored = collections.Counter(
                    json.dumps(m.raw, sort_keys=True) for m in store.metrics(experiment.id, t.id)
                )
                lost += sum((written - stored).values())
    finally:
        store.close()
    return lost


def leftovers(home: Path) -> list[psutil.Process]:
    """Live processes that carry the marks of a trial of this data directory."""
    store = _readable_store(home)
    if store is None:
        return []
    try:
        procs = [p for e in store.experiments() for t in store.trials(e.id) for p in marked_processes(e.id, t.id)]
    finally:
        store.close()
    return [p for p in procs if _alive(p.pid)]


class LeftoverCount:
    """Counts the trial processes left at the moment the storage scenario cleans up after its daemon, which it does
    by killing every trial's process group; that clean-up then goes on as before."""

    def __init__(self) -> None:
        self.count: int | None = None
        self._clean_up = test_storage._kill_trials

    @contextlib.contextmanager
    def watching(self) -> Iterator[None]:
        def counted(home: Path) -> None:
            self.count = max(self.count or 0, len(leftovers(home)))
            self._clean_up(home)

        test_storage._kill_trials = counted
        try:
            yield
        finally:
            test_storage._kill_trials = self._clean_up


def measure(fault: Fault) -> Row:
    """Run one fault in a fresh data directory with the daemon watched, then clean up everything it left."""
    if fault.needs_root and os.geteuid() != 0:
        return Row(fault.name, f"skipped (needs root: {fault.needs_root})")
    with tempfile.TemporaryDirectory(prefix="automl-rel-") as tmp:
        home, work = Path(tmp) / "home", Path(tmp) / "work"
        work.mkdir()
        os.environ["AUTOML_HOME"] = str(home)
        counter = LeftoverCount()
        with fault.home(home):
            start = time.monotonic()
            with Gauge(home) as gauge, counter.watching():
                try:
                    failure = fault.scenario(home, work)
                except Exception as e:  # noqa: BLE001 - a scenario's check failed or timed out: the fault did not hold
                    failure = f"{type(e).__name__}: {_first_line(str(e))}"
                    traceback.print_exc()
            seconds = time.monotonic() - start
            left = max(len(leftovers(home)), counter.count or 0)
            lost = metrics_lost(home)
            _end_everything(home)
        return Row(
            fault.name,
            "no" if failure else "yes",
            lost,
            left,
            gauge.peak_rss_mib,
            gauge.lag_p99_ms,
            gauge.lag_max_ms,
            seconds,
            failure or "",
        )


@dataclass
class Fault:
    """A fault to try: its scenario, what the data directory is (a context manager), and why it needs root."""

    name: str
    scenario: Callable[[Path, Path], str | None]
    needs_root: str = ""
    home: Callable[[Path], contextlib.AbstractContextManager[None]] = contextlib.nullcontext


FAULTS = [
    Fault("disk full (8 MiB tmpfs filled)", storage_fault(full_disk), "mounts a tmpfs", on_tmpfs),
    Fault(f"store locked exclusively by another process for {LOCK_SECONDS} s", storage_fault(locked_for)),
    Fault("store read-only (chattr +i)", storage_fault(read_only_store), "sets the immutable flag", made),
    Fault("damaged store at start", damaged_store),
    Fault("metrics file replaced by a FIFO", hostile("fifo")),
    Fault("metrics file replaced by a link to /dev/zero", hostile("dev_zero")),
    Fault("a 50 MiB metrics line", hostile("huge_line")),
    Fault("metrics file truncated", hostile("truncate")),
    Fault("escaping setsid grandchild, trial ends normally", escaping("normal")),
    Fault("escaping setsid grandchild, experiment stopped", escaping("stop")),
    Fault("daemon killed (-9) while a stop waits out its grace period", crash_after_stop),
    Fault("foreground `automl run` killed (-9), resumed by the daemon", orphan_resumed),
    Fault(f"{IDLE_CLIENTS:,} idle connections (daemon limited to {DAEMON_FILE_LIMIT} files)", idle_connections),
    Fault("world-writable data directory", world_writable_home),
    Fault("data directory owned by another user", foreign_home, "creates a second user with useradd"),
    Fault("links planted for daemon.log, automl.db, automl.db-wal", planted_links),
    Fault(
        f"malformed configs ({len(bad_config_cases())} to `run`, {len(SUBMITTED)} of them also submitted)",
        malformed_configs,
    ),
]


def main() -> None:
    os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    only = sys.argv[1:]  # words from fault names: try just those, and leave the docs as they are
    started = time.monotonic()
    rows = []
    for fault in [f for f in FAULTS if not only or any(word in f.name for word in only)]:
        row = measure(fault)
        print(
            f"{row.fault}: held {row.held}, lost {_n(row.metrics_lost)}, leftovers {row.leftovers}, "
            f"RSS {_mib(row.peak_rss_mib)}, lag p99 {_ms(row.lag_p99_ms)} max {_ms(row.lag_max_ms)}, "
            f"{row.seconds:.1f} s {row.note}",
            flush=True,
        )
        rows.append(row)
    table = markdown(rows, time.monotonic() - started)
    print(table)
    if not only:
        write_section(REPO / "docs" / "benchmarks.md", table)


def markdown(rows: list[Row], seconds: float) -> str:
    """The section: the command, the goal, the table, and a line per fault that did not hold."""
    lines = [
        SECTION,
        "",
        f"    {COMMAND}      # every fault against a real daemon with real trials; as root",
        "",
        f"The goal: every fault held, 0 metrics lost, 0 processes left, the daemon's RSS under {RSS_GOAL_MB} MB. "
        "*Held* means the experiment or command behaved as specified (the fault tests in `tests/faults/` "
        "check the same); *metrics lost* counts lines in the trials' metrics files that are not in the store; "
        "*left* counts trial processes still running once the experiment ended; RSS (sampled every 0.1 s) and "
        "the event-loop lag (`loop_lag_ms` of `automl daemon status`, over its last minute, polled every 0.5 s) "
        "are the highest seen during the fault, whichever daemon ran. A locked store shows about 100 ms: a "
        "write tried while another process holds the lock waits up to 0.1 s on the loop before it is left "
        "for a retry.",
        "",
        "| fault | held | metrics lost | left | daemon peak RSS | loop lag p99 | loop lag max | time |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        lines.append(
            f"| {r.fault} | {r.held} | {_n(r.metrics_lost)} | {_n(r.leftovers)} | {_mib(r.peak_rss_mib)} "
            f"| {_ms(r.lag_p99_ms)} | {_ms(r.lag_max_ms)} | {r.seconds:.0f} s |"
        )
    failed = [r for r in rows if r.held == "no"]
    lines += ["", f"All {len(rows)} faults in {seconds / 60:.1f} minutes."]
    lines += [f"- {r.fault} did not hold: {r.note}" for r in failed]
    return "\n".join(lines) + "\n"


def write_section(path: Path, section: str) -> None:
    """Replace the file's Reliability section (up to the next `## ` heading) with `section`, or append it."""
    text = path.read_text()
    start = text.find(f"\n{SECTION}\n")
    if start < 0:
        path.write_text(text.rstrip("\n") + "\n\n" + section)
        return
    end = text.find("\n## ", start + 1)
    rest = "" if end < 0 else "\n" + text[end + 1 :]
    path.write_text(text[: start + 1] + section + rest)


# helpers


@contextlib.contextmanager
def other_user() -> Iterator[tuple[int, int]]:
    """A second local user (uid, gid), made with useradd for the block and deleted afterwards."""
    name = f"automl-b{os.getpid() % 100000}"
    subprocess.run(
        ["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", name], check=True, capture_output=True
    )
    try:
        entry = pwd.getpwnam(name)
        yield entry.pw_uid, entry.pw_gid
    finally:
        subprocess.run(["userdel", name], capture_output=True)


def _end_everything(home: Path) -> None:
    """Stop the daemon and kill every process a trial of this data directory left (escaped ones included)."""
    if (home / "daemon.sock").exists():
        automl("daemon", "stop")
    with contextlib.suppress(OSError):
        for proc in leftovers(home):
            with contextlib.suppress(psutil.Error):
                proc.send_signal(signal.SIGKILL)


def _daemon_pid(home: Path) -> int | None:
    try:
        return int((home / "daemon.pid").read_text())
    except (OSError, ValueError):
        return None


def _readable_store(home: Path) -> Store | None:
    """The store, or None when there is none or it cannot be read (a damaged one)."""
    try:
        return Store.open_for_reading(home) if home.is_dir() else None
    except UserError:
        return None


def _first_line(text: str) -> str:
    return (text.strip().splitlines() or [""])[0][:200]


def _key(line: bytes) -> str:
    try:
        return json.dumps(json.loads(line), sort_keys=True)
    except ValueError:
        return line.decode(errors="replace")


def _config(work: Path) -> Path:
    write_trial(work, "trial.report_final(params['x'])\n")
    return write_config(work, max_trials=1, concurrency=1)


def _n(value: int | None) -> str:
    return "-" if value is None else str(value)


def _mib(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} MiB"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} ms"


if __name__ == "__main__":
    main()
