"""The daemon: many experiments in one process on one shared GPU pool, controlled over the owner-only socket.

It is the store's writer for the experiments it hosts. After its own crash or
a restart it takes every experiment it hosted up where it was: the loop
re-attaches trials that kept running, concludes the ones that ended
meanwhile and re-runs the ones a reboot took.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from . import __version__
from .config.model import GpuPolicy, config_from_store, load_config, parse_duration, resolve_launcher
from .control import protocol
from .control.client import Client, DaemonNotRunning
from .control.server import ControlServer
from .engine.experiment import DETACHED, ExperimentLoop
from .engine.loop_lag import LoopLag
from .errors import UserError
from .gpu.pool import GpuPool, report
from .gpu.probe import gpu_source, open_probe
from .launchers.choose import launcher_for
from .logs import log_to
from .notify import notify_end
from .paths import last_line, open_append, replace_file, secure_home, socket_path
from .states import EventKind, ExperimentStatus
from .store import LOOP_WRITE_WAIT, ExperimentRecord, Store, StoreUnavailable

log = logging.getLogger("automl")

PID_FILE = "daemon.pid"
LOCK_FILE = "daemon.lock"
LOG_FILE = "daemon.log"
HOST = "daemon"
FILE_LIMIT = 8192  # open files: the control server's client cap and every trial's files, with room to spare


class Daemon:
    """Hosts experiments and answers control requests until told to shut down."""

    def __init__(self, home: Path, ray_address: str | None = None):
        self.home = home
        self.ray_address = ray_address  # where experiments without a launcher of their own run their trials
        self.loops: dict[str, ExperimentLoop] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._started = time.time()
        self.lag = LoopLag()

    async def run(self) -> None:
        """Serve until SIGTERM, SIGINT or a `shutdown` request; running trials are left running."""
        secure_home(self.home)
        raise_file_limit()
        lock = _lock(self.home / LOCK_FILE)
        self._shutdown = asyncio.Event()
        self.store = Store(self.home, write_wait=LOOP_WRITE_WAIT)
        self.pool = GpuPool(open_probe())
        self.server = ControlServer(socket_path(self.home), self.handle, OPS)
        self.store.on_fault = lambda fault: self.server.publish(
            EventKind.STORE_FAULT, None, {"fault": None if fault is None else fault.describe()}
        )
        try:
            await self.server.start()
            replace_file(self.home / PID_FILE, f"{os.getpid()}\n".encode())
            aio = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                aio.add_signal_handler(sig, self._shutdown.set)
            log.info("daemon %d started (automl %s), %d GPU(s)", os.getpid(), __version__, self.pool.count)
            for experiment in self.store.experiments():
                if experiment.host == HOST and experiment.status.is_active():
                    await self._resume(experiment)
            gauges = [aio.create_task(self.lag.run())]
            if self.pool.count:
                gauges.append(aio.create_task(self.pool.run(after=self._publish_gpus)))
            await self._shutdown.wait()
            for gauge in gauges:
                gauge.cancel()
            log.info("daemon shutting down; running trials keep running")
            for loop in self.loops.values():
                loop.detach()
            await asyncio.gather(*self._tasks, return_exceptions=True)
        finally:
            await self.server.close()
            (self.home / PID_FILE).unlink(missing_ok=True)
            self.store.close()
            lock.close()

    async def handle(self, op: str, args: dict[str, Any]) -> Any:
        """Answer one control request: its arguments checked against the op's model, then its handler."""
        operation = OPERATIONS[op]
        return await operation.handler(self, protocol.parse_op_args(op, operation.args, args))

    async def _ping(self, _: protocol.NoArgs) -> dict[str, Any]:
        return {"version": __version__}

    async def _status(self, _: protocol.NoArgs) -> dict[str, Any]:
        return {
            "running": True,
            "pid": os.getpid(),
            "socket": str(socket_path(self.home)),
            "started": self._started,
            "version": __version__,
            "experiments": sorted(self.loops),
            "gpus": self.pool.count,
            "store_fault": None if self.store.fault is None else self.store.fault.describe(),
            "loop_lag_ms": self.lag.summary(),
            "rss_mib": round(psutil.Process().memory_info().rss / 2**20, 1),
        }

    async def _gpus(self, _: protocol.NoArgs) -> dict[str, Any]:
        local, cluster = self._gpu_report(), await self._cluster_gpus()
        if local:  # this machine's GPUs once: as the daemon sees them, when it is also a node of the cluster
            source = gpu_source()
            cluster = [gpu for gpu in cluster if gpu.get("source") != source]
        return {"gpus": local + cluster}

    async def _shutdown_request(self, _: protocol.NoArgs) -> dict[str, Any]:
        self._shutdown.set()
        return {"stopping": True}

    async def _submit_request(self, args: protocol.SubmitArgs) -> dict[str, Any]:
        try:
            return await self._submit(args.config, args.environment)
        except StoreUnavailable as e:
            raise UserError(
                f"the store takes no writes now ({e}); submit again once it does "
                "(`automl daemon status` shows the fault)"
            ) from None

    async def _pause(self, args: protocol.ExperimentArgs) -> dict[str, Any]:
        return _done(self._loop(args.experiment), ExperimentLoop.pause)

    async def _stop(self, args: protocol.ExperimentArgs) -> dict[str, Any]:
        return _done(self._loop(args.experiment), ExperimentLoop.stop)

    async def _resume_request(self, args: protocol.ResumeArgs) -> dict[str, Any]:
        """Go on with a paused experiment of ours, or adopt an orphan of a gone `automl run`."""
        orphan = self._orphan(args.experiment)
        if orphan is not None:
            return await self._adopt(orphan, args.environment)
        return _done(self._loop(args.experiment), ExperimentLoop.resume)

    async def _kill(self, args: protocol.KillArgs) -> dict[str, Any]:
        loop = self._loop(args.experiment)
        loop.kill_trial(args.trial)
        return _done(loop)

    async def _update(self, args: protocol.UpdateArgs) -> dict[str, Any]:
        loop = self._loop(args.experiment)
        try:
            max_duration = parse_duration(args.max_duration)
        except ValueError as e:
            raise UserError(f"max_duration: {e}") from None
        loop.update(args.concurrency, args.max_trials, max_duration)
        return _done(loop)

    async def _cluster_gpus(self) -> list[dict[str, Any]]:
        """The GPUs of every node of the Ray cluster this daemon uses, if it uses one."""
        used = [loop.config.launcher.address for loop in self.loops.values() if loop.config.launcher.name == "ray"]
        address = self.ray_address or next(iter(used), None)
        if address is None:
            return []
        from .launchers.ray_client import cluster_gpus

        return await cluster_gpus(address)

    def _publish_gpus(self) -> None:
        """A `gpu_sample` event after every look at the GPUs, for dashboards."""
        self.server.publish(EventKind.GPU_SAMPLE, None, {"gpus": self.pool.describe()})

    def _gpu_report(self) -> list[dict[str, Any]]:
        """The GPUs, and whether each would take a trial under the default policy and each hosted experiment's."""
        if not self.pool.count:
            return []
        policies = {"default": self.pool.slots("default", GpuPolicy(), 1)}
        policies.update({exp_id: loop.gpus for exp_id, loop in self.loops.items()})
        return report(self.pool, policies)

    async def _submit(self, path: str, environment: dict[str, str] | None) -> dict[str, Any]:
        """Host a new experiment whose trials run with `environment` (the submitting shell's; None: ours)."""
        from .tuners import tuner_for

        if self._shutdown.is_set():
            raise UserError("the daemon is shutting down; submit again once it has restarted")
        config, warnings = await asyncio.to_thread(load_config, path, environment)
        await asyncio.to_thread(resolve_launcher, config, path, self.ray_address)
        tuner = await asyncio.to_thread(tuner_for, config)
        if self._shutdown.is_set():
            raise UserError("the daemon is shutting down; submit again once it has restarted")
        exp_id = self.store.create_experiment(
            config.name, config.model_dump(mode="json"), str(Path(path).resolve()), host=HOST, environment=environment
        )
        tuner.use_folder(self.store.home / "experiments" / exp_id)
        self._host(self.store.find_experiment(exp_id), config, tuner)
        log.info("experiment %s (%s) submitted from %s", exp_id, config.name, path)
        return {"id": exp_id, "name": config.name, "warnings": warnings}

    async def _resume(self, experiment: ExperimentRecord) -> None:
        from .tuners import tuner_for

        try:
            config = config_from_store(experiment.config)
            tuner = await asyncio.to_thread(tuner_for, config)
            tuner.use_folder(self.store.home / "experiments" / experiment.id)
            self._host(experiment, config, tuner)
        except Exception as e:
            log.exception("experiment %s cannot be resumed", experiment.id)
            self.store.set_experiment_status(experiment.id, ExperimentStatus.FAILED, f"cannot be resumed: {e}")
            return
        log.info("experiment %s resumed", experiment.id)

    def _orphan(self, ref: str) -> ExperimentRecord | None:
        """The experiment `ref` if it is an orphan: run by an `automl run` that is gone, hosted by no one."""
        from .views import is_orphaned

        experiment = self.store.find_experiment(ref)
        return experiment if experiment.id not in self.loops and is_orphaned(experiment) else None

    async def _adopt(self, experiment: ExperimentRecord, environment: dict[str, str] | None) -> dict[str, Any]:
        """Host an orphaned experiment from now on: re-attach its live trials and go on (un-paused); its trials
        run with `environment` (the resuming shell's; None: ours)."""
        if self._shutdown.is_set():
            raise UserError("the daemon is shutting down; resume again once it has restarted")
        if not self.store.claim_experiment(experiment, HOST, environment):
            raise UserError(f"experiment {experiment.id} was taken up by another process meanwhile")
        if experiment.status == ExperimentStatus.PAUSED:
            self.store.set_experiment_status(experiment.id, ExperimentStatus.RUNNING)
        log.info(
            "experiment %s (%s) adopted: its automl run (pid %s) is gone",
            experiment.id,
            experiment.name,
            experiment.host_pid,
        )
        await self._resume(self.store.find_experiment(experiment.id))
        return {"experiment": experiment.id, "adopted": True}

    def _host(self, experiment: ExperimentRecord, config: Any, tuner: Any) -> None:
        local_gpus = 0 if config.launcher.name == "ray" else config.resources.gpus  # Ray assigns a cluster's GPUs
        slots = self.pool.slots(experiment.id, config.gpu, local_gpus)
        loop = ExperimentLoop(
            self.store, experiment, config, tuner, slots, launcher=launcher_for(config, experiment.environment)
        )
        loop.listeners.append(lambda event, data: self.server.publish(event, experiment.id, data))
        self.loops[experiment.id] = loop
        task = asyncio.get_running_loop().create_task(self._drive(loop))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _drive(self, loop: ExperimentLoop) -> None:
        status = await loop.run()
        if status != DETACHED:
            self.loops.pop(loop.experiment.id, None)
            log.info("experiment %s %s", loop.experiment.id, status)
            await notify_end(loop.config, loop.experiment, status, loop.best)

    def _loop(self, ref: str) -> ExperimentLoop:
        experiment = self.store.find_experiment(ref)
        loop = self.loops.get(experiment.id)
        if loop is None:
            raise UserError(
                f"experiment {experiment.id} ({experiment.name}) is not running in the daemon "
                f"(status: {experiment.status})"
            )
        return loop


def serve_foreground(home: Path, ray_address: str | None = None) -> None:
    """`automl daemon start --foreground`: run the daemon in this process (for service managers); experiments
    without a launcher of their own run on the Ray cluster at `ray_address` when given."""
    secure_home(home)
    if not sys.stderr.isatty():  # detached, or under a service manager: the log file is the one place
        for handler in [h for h in log.handlers if type(h) is logging.StreamHandler]:
            log.removeHandler(handler)
    log_to(home / LOG_FILE)
    asyncio.run(Daemon(home, ray_address).run())


def start_detached(home: Path, timeout: float = 30.0, ray_address: str | None = None) -> int:
    """Start the daemon in the background (own session, no terminal) and wait until it answers; its pid."""
    running = daemon_pid(home)
    if running is not None:
        raise UserError(f"the daemon already runs (pid {running})")
    secure_home(home)
    _check_store(home)
    with open(open_append(home / LOG_FILE), "ab") as log_file:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "automl",
                "daemon",
                "start",
                "--foreground",
                *(["--ray", ray_address] if ray_address else []),
            ],
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=log_file,
            cwd="/",
            start_new_session=True,
            env={**os.environ, "AUTOML_HOME": str(home)},
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            why = last_line(home / LOG_FILE).removeprefix("automl: error: ")
            raise UserError(f"the daemon exited at start (code {proc.returncode}): {why} (see {home / LOG_FILE})")
        if daemon_pid(home) is not None:
            return proc.pid
        time.sleep(0.05)
    raise UserError(f"the daemon did not answer within {timeout:g} s; see {home / LOG_FILE}")


def daemon_pid(home: Path, patience: float = 1.0) -> int | None:
    """The running daemon's pid, or None when none answers on the socket.

    A daemon that is being killed can still accept a connection and then drop it; that is asked again
    for `patience` seconds, by which time its socket refuses connections."""
    deadline = time.monotonic() + patience
    while True:
        try:
            with Client(socket_path(home), timeout=5) as client:
                return int(client.request("status")["pid"])
        except DaemonNotRunning:
            return None
        except ConnectionError:
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.05)


def stop(home: Path, timeout: float = 30.0) -> int | None:
    """Ask the daemon to shut down and wait for it to exit; the pid it had, or None if none ran."""
    pid = daemon_pid(home)
    if pid is None:
        return None
    with Client(socket_path(home)) as client:
        client.request("shutdown")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _pid_running(pid):
        time.sleep(0.05)
    return pid


def systemd_unit(home: Path) -> str:
    """A systemd user unit that runs this daemon, for `automl daemon install`."""
    return (
        "[Unit]\nDescription=automl hyperparameter-search daemon\n\n"
        "[Service]\nType=simple\n"
        f"Environment={_unit_quoted(f'AUTOML_HOME={home}')}\n"
        f"ExecStart={_unit_quoted(sys.executable, command=True)} -m automl daemon start --foreground\n"
        "KillMode=process\nRestart=on-failure\n\n"
        "[Install]\nWantedBy=default.target\n"
    )


def _unit_quoted(text: str, command: bool = False) -> str:
    """A value quoted for a systemd unit file: specifiers and quotes escaped, and `$` too on command lines."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%")
    return f'"{escaped.replace("$", "$$") if command else escaped}"'


def _check_store(home: Path) -> None:
    """Refuse to start on a store that cannot be read (its message says how to recover), before anything starts."""
    store = Store.open_for_reading(home)
    if store is not None:
        store.close()


def _lock(path: Path) -> Any:
    """Hold the data directory's daemon lock for the life of the process; one daemon per data directory."""
    handle = open(open_append(path), "ab")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise UserError(f"another daemon already runs for {path.parent}") from None
    return handle


def raise_file_limit(wanted: int = FILE_LIMIT) -> None:
    """Raise the soft limit on open files towards `wanted` (within the hard limit), so clients and trials
    together do not run the daemon out of descriptors under a low default such as 1024."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def _pid_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


def _done(loop: ExperimentLoop, action: Callable[[ExperimentLoop], None] | None = None) -> dict[str, Any]:
    """The reply to a request about one hosted experiment, after `action` on its loop."""
    if action is not None:
        action(loop)
    return {"experiment": loop.experiment.id}


@dataclass(frozen=True)
class Operation:
    """One op the daemon serves: the model its arguments must fit and the method that answers it."""

    args: type[protocol.OpArgs]
    handler: Callable[[Daemon, Any], Awaitable[Any]]


OPERATIONS: dict[str, Operation] = {
    "ping": Operation(protocol.NoArgs, Daemon._ping),
    "status": Operation(protocol.NoArgs, Daemon._status),
    "gpus": Operation(protocol.NoArgs, Daemon._gpus),
    "shutdown": Operation(protocol.NoArgs, Daemon._shutdown_request),
    "submit": Operation(protocol.SubmitArgs, Daemon._submit_request),
    "pause": Operation(protocol.ExperimentArgs, Daemon._pause),
    "stop": Operation(protocol.ExperimentArgs, Daemon._stop),
    "resume": Operation(protocol.ResumeArgs, Daemon._resume_request),
    "kill": Operation(protocol.KillArgs, Daemon._kill),
    "update": Operation(protocol.UpdateArgs, Daemon._update),
}
OPS = tuple(OPERATIONS)
