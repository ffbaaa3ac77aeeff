"""Starting trial processes on this machine, and ending them with their whole process tree."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

import psutil

from .. import trial_exit
from ..paths import check_own_file, create_file, new_trial_folder, open_new, private_folders, replace_file
from ..processes import is_alive, process_start_time
from ..trial import METRICS_ENV, PARAMS_ENV
from ..trial_exit import EXIT_FILE
from .base import (
    METRICS_FILE,
    NNI_LOG_FILE,
    PARAMS_FILE,
    STDERR_FILE,
    STDOUT_FILE,
    Locator,
    ProcessUsage,
    TrialIdentity,
    TrialSpec,
)
from .metrics_file import MetricsReader, ReadResult
from .process_usage import CPU_TIMES_FILE, ProcessTreeUsage, recorded_usage

NNI_CHANNEL = "import://automl.nni_channel.TrialChannel"
TRIAL_LIB = "trial_lib"
TRIAL_LIB_MODULES = ("trial.py", "nni_channel.py")
ENDED_POLL = 0.05  # seconds between looks at a terminated tree
FOREIGN_POLL = 0.1  # seconds between looks at a trial found again after a restart (not our child)
EXPERIMENT_MARK, TRIAL_MARK = "AUTOML_EXPERIMENT_ID", "AUTOML_TRIAL_ID"  # in the environment of all a trial started

log = logging.getLogger("automl")

# Runs the trial and records, in the trial's folder (the 1st argument), its exit status and usage, so they are known
# even to a daemon that restarted and is no longer the trial's parent. While that parent is alive (it watches the
# trial's tree itself: the shell's parent is still the one it started with, read from /proc, since a parent that died
# is a zombie for `kill -0` until it is reaped), the shell records its `times` (CPU time of every process it waited
# for) and the exit status, at no cost. When the parent has gone, it `exec`s automl's exit recorder (trial_exit.py,
# run by the interpreter and path given as the 2nd and 3rd arguments), which also records the end time and the peak
# memory: a Python start at the end of the trial, paid only then. What it records is private (umask 077), the
# trial's own files keep the user's umask. The wrapper outlives a SIGTERM or SIGINT sent to the
# whole group (the trap defers it until the trial has exited), and re-raises the signal that ended the trial, so a
# parent that is still there sees it too. A constant: user values are only ever passed as arguments.
_RECORD_EXIT = (
    'trap : TERM INT; py=$1; recorder=$2; shift 2; "$@"; code=$?; trap "" TERM INT; umask 077; '
    'read -r _ _ _ parent _ < /proc/$$/stat; [ "$parent" = "$PPID" ] || exec "$py" -I -S "$recorder" "$0" "$code"; '
    f'times > "$0/{CPU_TIMES_FILE}"; '
    f'echo "$code" > "$0/{EXIT_FILE}.tmp" && mv "$0/{EXIT_FILE}.tmp" "$0/{EXIT_FILE}"; '
    'if [ "$code" -gt 128 ]; then trap - TERM INT; kill -$((code - 128)) $$; fi; exit "$code"'
)


# Contract: the environment of a trial. Trial scripts read these variables (through `automl.trial`, NNI's trial
# API and `nni_channel`, or directly: AUTOML_TRIAL_DIR, CUDA_VISIBLE_DEVICES), the experiment and trial marks find a
# trial's processes again after a daemon restart (also ones an older daemon started), and every launcher must set
# them the same way. Adding a variable is free; renaming one, or changing what its value means, breaks scripts
# already written and trials already running.
def trial_env(spec: TrialSpec, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a trial: the shell's that ran the experiment (`base`, else ours), then automl's and
    NNI's variables for unmodified NNI scripts, then the config's own; the trial library is appended to
    PYTHONPATH, so the user's entries keep priority."""
    trial_dir = str(spec.trial_dir)
    env = dict(os.environ if base is None else base)
    env.update(
        {
            "PYTHONUNBUFFERED": "1",
            EXPERIMENT_MARK: spec.experiment_id,
            TRIAL_MARK: str(spec.trial_id),
            "AUTOML_TRIAL_DIR": trial_dir,
            PARAMS_ENV: str(spec.trial_dir / PARAMS_FILE),
            METRICS_ENV: str(spec.trial_dir / METRICS_FILE),
            "CUDA_VISIBLE_DEVICES": ",".join(map(str, spec.gpus)),
            "OMP_NUM_THREADS": str(spec.cpus),
            "NNI_PLATFORM": "local",
            "NNI_TRIAL_COMMAND_CHANNEL": NNI_CHANNEL,
            "NNI_EXP_ID": spec.experiment_id,
            "NNI_TRIAL_JOB_ID": str(spec.trial_id),
            "NNI_TRIAL_SEQ_ID": str(spec.trial_id),
            "NNI_SYS_DIR": trial_dir,
            "NNI_OUTPUT_DIR": trial_dir,
        }
    )
    env.update(spec.env)
    library = str(trial_library(spec.trial_dir.parent.parent))
    env["PYTHONPATH"] = os.pathsep.join([part for part in (env.get("PYTHONPATH"), library) if part])
    return env


_current_libraries: set[Path] = set()


def trial_library(experiment_dir: Path) -> Path:
    """The experiment's trial library: `automl.trial` and the NNI channel copied from this automl, as a
    namespace package, so a Python without automl can run `from automl import trial` and NNI scripts, while a
    Python with automl installed keeps using its own (a regular package wins over a namespace portion)."""
    library = experiment_dir / TRIAL_LIB
    if library in _current_libraries:
        return library
    package = private_folders(library / "automl")
    for name in TRIAL_LIB_MODULES:
        source = (Path(__file__).parents[1] / name).read_bytes()
        target = package / name
        if not check_own_file(target) or target.read_bytes() != source:
            replace_file(target, source)
    _current_libraries.add(library)
    return library


def printed_output(trial_dir: Path) -> list[Path]:
    """The files that hold what a trial printed: its stdout, and NNI's trial.log once `import nni` made one."""
    nni_log = trial_dir / NNI_LOG_FILE
    return [trial_dir / STDOUT_FILE, *([nni_log] if nni_log.exists() else [])]


class LocalLauncher:
    """Runs each trial as a subprocess in its own process session, so a signal to us does not reach it, with
    the environment of the shell that ran the experiment (`environment`; None: this process's)."""

    def __init__(self, environment: Mapping[str, str] | None = None):
        self.environment = environment

    async def start(self, spec: TrialSpec) -> LocalTrial:
        """Write the trial's fresh folder (params, empty metrics file) and start its process. A folder that is
        already there is never reused: TrialFolderExists, before anything is written."""
        new_trial_folder(spec.trial_dir)
        create_file(spec.trial_dir / PARAMS_FILE, (json.dumps(spec.params, indent=2) + "\n").encode())
        create_file(spec.trial_dir / METRICS_FILE)
        argv = ["/bin/sh", "-c", _RECORD_EXIT, str(spec.trial_dir), sys.executable, trial_exit.__file__, *spec.argv]
        with (
            open(open_new(spec.trial_dir / STDOUT_FILE), "ab") as out,
            open(open_new(spec.trial_dir / STDERR_FILE), "ab") as err,
        ):
            process = await asyncio.create_subprocess_exec(
                *argv,
                cwd=spec.working_dir,
                env=trial_env(spec, self.environment),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
            )
        identity = TrialIdentity(spec.experiment_id, spec.trial_id)
        return LocalTrial(identity, Locator(process.pid, process_start_time(process.pid)), spec.trial_dir, process)

    async def attach(self, identity: TrialIdentity, locator: Locator | None, trial_dir: Path) -> LocalTrial:
        """The trial's handle after a restart: its process if it still runs (by `locator`; without one, the
        oldest process carrying its marks), else a handle of what it left in its folder."""
        if locator is None:
            locator = _oldest_marked(identity)
        elif not is_alive(locator.pid, locator.created):
            locator = None
        return LocalTrial(identity, locator, trial_dir)

    async def kill_leftovers(self, identity: TrialIdentity) -> list[int]:
        """SIGKILL, now, the processes a trial that ended while automl was down left running; their pids."""
        procs = marked_processes(identity.experiment_id, identity.trial_id)
        if procs:
            _report_leftovers(identity, procs)
            _signal_all(None, procs, signal.SIGKILL)
        return [proc.pid for proc in procs]

    def watch(self, report: Callable[[str, bool], None]) -> None:
        """This machine has no trouble of its own to report: a trial's trouble is the trial's."""

    def close(self) -> None:
        """Nothing is held for an experiment beyond its trials."""


class LocalTrial:
    """A trial on this machine: the process this daemon started (`process`), one found again after a restart
    (not our child: watched until it is gone), or, with no `locator`, what an ended trial left in its folder."""

    def __init__(
        self,
        identity: TrialIdentity,
        locator: Locator | None,
        trial_dir: Path,
        process: asyncio.subprocess.Process | None = None,
    ):
        self.identity, self.locator, self.trial_dir = identity, locator, trial_dir
        self._process = process
        self._tree = None if locator is None else ProcessTreeUsage(locator.pid)
        self._metrics = MetricsReader(trial_dir / METRICS_FILE)

    async def read_metrics(self, offset: int, seq: int, objective: str, *, final: bool = False) -> ReadResult:
        """The records appended to the trial's metrics file after `offset`, one chunk at most."""
        return self._metrics.read(offset, seq, objective, final=final)

    async def wait(self) -> int | None:
        """The exit status its wrapper recorded (exact even when the wait lost it), else the one waited for."""
        code = None
        if self._process is not None:
            code = await self._process.wait()
        elif self.locator is not None:
            while is_alive(self.locator.pid, self.locator.created):
                await asyncio.sleep(FOREIGN_POLL)
        recorded = recorded_exit(self.trial_dir)
        return code if recorded is None else recorded

    def sample(self) -> set[int]:
        """Look at the process tree now; the pids in it."""
        return set() if self._tree is None else self._tree.sample()

    def usage(self) -> ProcessUsage:
        """The larger of what the samples saw and what the wrapper recorded at the trial's exit."""
        tree, recorded = self._tree, recorded_usage(self.trial_dir)
        return ProcessUsage(
            max(tree.cpu_seconds if tree else 0.0, recorded.cpu_seconds if recorded else 0.0),
            max(tree.peak_rss_mib if tree else 0.0, recorded.peak_rss_mib if recorded else 0.0),
            None if recorded is None else recorded.ended,
        )

    async def terminate(self, grace: float) -> None:
        """SIGTERM the trial's whole process tree, then SIGKILL whatever is left after `grace` seconds."""
        if self.locator is not None:
            await terminate_tree(self.locator.pid, grace)

    def kill(self) -> None:
        """SIGKILL the trial's whole process tree now."""
        if self.locator is not None:
            kill_tree(self.locator.pid)

    async def end_leftovers(self, grace: float) -> list[int]:
        """SIGTERM, then SIGKILL after `grace` seconds, the processes the ended trial left running; their pids."""
        procs = await asyncio.to_thread(marked_processes, self.identity.experiment_id, self.identity.trial_id)
        if procs:
            _report_leftovers(self.identity, procs)
            await _end_all(procs, grace)
        return [proc.pid for proc in procs]


def recorded_exit(trial_dir: Path) -> int | None:
    """The exit status the trial's wrapper recorded (signals as -N), or None if it recorded none."""
    try:
        code = int((trial_dir / EXIT_FILE).read_text().strip())
    except (OSError, ValueError):
        return None
    return -(code - 128) if code > 128 else code


def find_trial_process(experiment_id: str, trial_id: int) -> psutil.Process | None:
    """The oldest process of a trial whose pid was never recorded (automl died while starting it)."""
    return min(marked_processes(experiment_id, trial_id), key=psutil.Process.create_time, default=None)


def _oldest_marked(identity: TrialIdentity) -> Locator | None:
    """Where the trial runs, found by its marks: its oldest process (None when none is left)."""
    orphan = find_trial_process(identity.experiment_id, identity.trial_id)
    created = None if orphan is None else process_start_time(orphan.pid)
    return None if orphan is None or created is None else Locator(orphan.pid, created)


def marked_processes(experiment_id: str, trial_id: int) -> list[psutil.Process]:
    """This user's processes that carry a trial's marks in their environment: all it started, at any depth, even
    ones that left its process group and session. One stat of each /proc entry, then the environment of this
    user's processes only: about 15 microseconds per process of the user (docs/trial-api.md)."""
    marks = (f"\0{EXPERIMENT_MARK}={experiment_id}\0".encode(), f"\0{TRIAL_MARK}={trial_id}\0".encode())
    uid, me = os.geteuid(), os.getpid()
    found = []
    with os.scandir("/proc") as entries:
        for entry in entries:
            if not entry.name.isdigit() or int(entry.name) == me:
                continue
            try:
                if entry.stat().st_uid != uid:
                    continue
                with open(f"/proc/{entry.name}/environ", "rb") as f:
                    environ = b"\0" + f.read() + b"\0"
                if all(mark in environ for mark in marks):
                    found.append(psutil.Process(int(entry.name)))
            except (OSError, psutil.Error):
                continue
    return found


def _report_leftovers(identity: TrialIdentity, procs: list[psutil.Process]) -> None:
    """Log the processes a trial left running when it ended, which are about to be ended."""
    names = ", ".join(f"{proc.pid} ({_name(proc)})" for proc in procs)
    log.warning(
        "experiment %s trial %d left %d process(es) running after it ended; ending them: %s",
        identity.experiment_id,
        identity.trial_id,
        len(procs),
        names,
    )


def _name(proc: psutil.Process) -> str:
    try:
        return proc.name()
    except psutil.Error:
        return "gone"


async def terminate_tree(pid: int, grace: float) -> None:
    """SIGTERM a trial's whole process tree, then SIGKILL whatever is left after `grace` seconds."""
    await _end_all(_tree(pid), grace, group=pid)


async def _end_all(procs: list[psutil.Process], grace: float, group: int | None = None) -> None:
    """SIGTERM the processes (and the process group `group`), then SIGKILL whatever is left after `grace` seconds."""
    _signal_all(group, procs, signal.SIGTERM)
    if not await _all_ended(procs, grace):
        _signal_all(group, [proc for proc in procs if _running(proc)], signal.SIGKILL)
        await _all_ended(procs, grace)


async def _all_ended(procs: list[psutil.Process], timeout: float) -> bool:
    """Whether every process ended within `timeout` seconds. Watched, never waited for: reaping the trial's
    wrapper here would take its exit status from the event loop, which waits for it."""
    deadline = asyncio.get_running_loop().time() + timeout
    while any(_running(proc) for proc in procs):
        if asyncio.get_running_loop().time() >= deadline:
            return False
        await asyncio.sleep(ENDED_POLL)
    return True


def _running(proc: psutil.Process) -> bool:
    """Neither gone nor a zombie (which has ended, and waits for its parent to collect its status)."""
    try:
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def kill_tree(pid: int) -> None:
    """SIGKILL a trial's whole process tree now."""
    _signal_all(pid, _tree(pid), signal.SIGKILL)


def _tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def _signal_all(group: int | None, procs: list[psutil.Process], sig: signal.Signals) -> None:
    """Send `sig` to the process group `group` (if any) and to each process (a reused pid is left alone)."""
    if group is not None:
        try:
            os.killpg(group, sig)
        except (ProcessLookupError, PermissionError):
            pass
    for proc in procs:
        try:
            proc.send_signal(sig)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
