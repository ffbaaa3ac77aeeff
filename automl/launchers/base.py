"""The launcher boundary: what the experiment loop asks of any launcher, and the files of a trial's folder."""

from __future__ import annotations

import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ..paths import last_line
from .metrics_file import ReadResult

# Contract: the files of a trial's folder. Trial scripts find them through the environment (`local.trial_env`),
# `automl logs`, `automl export` and the dashboard read them, and a restarted daemon reads the folders an older
# one wrote (as it reads the wrapper's records: `trial_exit.EXIT_FILE`, `USAGE_FILE`, `CPU_TIMES_FILE`). Adding a
# file is free; renaming one, or changing what it holds, breaks those readers.
PARAMS_FILE = "params.json"
METRICS_FILE = "metrics.jsonl"
STDOUT_FILE = "stdout.log"
STDERR_FILE = "stderr.log"
NNI_LOG_FILE = "trial.log"  # where `import nni` sends a trial's print() and logging under NNI_PLATFORM=local


@dataclass
class TrialSpec:
    """Everything needed to start one trial process."""

    experiment_id: str
    trial_id: int
    argv: list[str]
    working_dir: Path
    trial_dir: Path
    params: dict[str, Any]
    cpus: int
    gpus: list[int]
    env: dict[str, str]


@dataclass(frozen=True)
class TrialIdentity:
    """Which trial a process is: what a launcher marks it with, and finds it again by after a daemon restart."""

    experiment_id: str
    trial_id: int


@dataclass(frozen=True)
class Locator:
    """Where a started trial runs, as the store keeps it: its root process and that process's start time (so a
    recycled pid is never taken for it), the node it runs on (None: this machine), and the GPUs of that node it was
    given (None: the ones the loop placed it on)."""

    pid: int
    created: float | None
    node: str | None = None
    gpus: tuple[int, ...] | None = None


@dataclass(frozen=True)
class ProcessUsage:
    """What a trial's processes used, as measured while it ran and as recorded at its exit: CPU-seconds of its
    whole tree, the peak of its resident memory, and when it ended when that was recorded (None: still running,
    or it ended watched and the loop's clock says when). A launcher whose trials run on other machines also gives
    what their GPUs there measured: GPU-seconds, energy and peak GPU memory (0 where the loop's GPU pool does)."""

    cpu_seconds: float = 0.0
    peak_rss_mib: float = 0.0
    ended: float | None = None
    gpu_seconds: float = 0.0
    energy_j: float = 0.0
    gpu_memory_mib: float = 0.0


class NoRoom(Exception):
    """A launcher has no place for a trial now (every GPU it could get is busy) and wrote or started nothing of
    it: the loop keeps the trial waiting and asks again."""


class TrialLost(OSError):
    """The machine a trial ran on is gone (a cluster node died): the trial ends `interrupted`, saying why."""


class TrialHandle(Protocol):
    """One trial, as its launcher delivers it to the experiment loop (the loop never looks at a process itself).

    `locator` is where the trial runs; None for a handle `Launcher.attach` returned for a trial of which nothing
    runs any more (it ended while no daemon watched, or never started): its `wait` returns at once, and its
    metrics and usage are what it left. No method blocks the event loop for long: a launcher whose trials run
    elsewhere answers from what it has received so far.
    """

    identity: TrialIdentity
    locator: Locator | None

    async def read_metrics(self, offset: int, seq: int, objective: str, *, final: bool = False) -> ReadResult:
        """The metric records the trial appended to its `METRICS_FILE` after byte `offset` (`seq` records read
        so far), one chunk at most (`ReadResult.more` when more waits); `final` once the trial has ended (a last
        line without a newline counts). The loop stores them, then passes the new offset next time; a file that
        was replaced or truncated since the handle's last read is a `ReadResult.problem`."""
        ...

    async def wait(self) -> int | None:
        """The trial's exit status once it has ended (a signal as -N), as recorded at its exit when it was;
        None when nothing recorded it (it ended unwatched, or a machine restart took it); `TrialLost` when the
        machine it ran on is gone. Returns only when every file of the trial's folder is complete on the daemon's
        machine."""
        ...

    def sample(self) -> set[int]:
        """Look at the trial's processes now (CPU time, peak memory); the pids of its tree on this machine (so
        its GPU processes are told apart from others), empty when none are known."""
        ...

    def usage(self) -> ProcessUsage:
        """What the trial used as measured so far, and as recorded at its exit once it has ended."""
        ...

    async def terminate(self, grace: float) -> None:
        """SIGTERM the trial's whole process tree, then SIGKILL whatever is left after `grace` seconds."""
        ...

    def kill(self) -> None:
        """SIGKILL the trial's whole process tree now."""
        ...

    async def end_leftovers(self, grace: float) -> list[int]:
        """End the processes the trial left running after its root exited (found by its identity): SIGTERM,
        then SIGKILL after `grace` seconds; their pids."""
        ...


class Launcher(Protocol):
    """The boundary between the experiment loop and where trials run (this machine, a simulation, a cluster).

    A launcher starts a trial from a `TrialSpec` and returns a `TrialHandle`: the loop reads the trial's metric
    lines, its exit status and its usage through the handle, and ends it through the handle. Every trial is
    marked with its `TrialIdentity`, so that after a daemon restart `attach` finds it again from what the store
    kept (its `Locator`), whether it still runs or ended meanwhile. A launcher must:

    - write the trial's folder (`PARAMS_FILE`, an empty `METRICS_FILE`) before the trial starts, and never
      reuse an existing folder (`TrialFolderExists`);
    - run the command with the trial contract: the environment of `local.trial_env`, its cwd,
      CUDA_VISIBLE_DEVICES from the spec's GPUs;
    - record the trial's exit status and usage where `attach` finds them, even when no daemon is watching;
    - have every file of the trial folder on the daemon's machine when `TrialHandle.wait` returns;
    - raise OSError from `start` when the command cannot be started (the trial fails with its message), and
      `NoRoom`, before writing anything, when it cannot place the trial now (the loop asks again).
    """

    async def start(self, spec: TrialSpec) -> TrialHandle:
        """Start the trial; its handle (with its `Locator`), once its process runs."""
        ...

    async def attach(self, identity: TrialIdentity, locator: Locator | None, trial_dir: Path) -> TrialHandle:
        """After a daemon restart, the handle of a trial the store kept as waiting or running: found by
        `locator` when it still runs there, or, when the store has none (the daemon died while starting it), by
        its identity. Its `locator` is None when nothing of it runs: then `wait` gives the exit status recorded
        for it, and `read_metrics` and `usage` what it left."""
        ...

    async def kill_leftovers(self, identity: TrialIdentity) -> list[int]:
        """SIGKILL now what a trial that ended while no daemon watched left running; their pids."""
        ...

    def watch(self, report: Callable[[str, bool], None]) -> None:
        """Have `report(why, fatal)` told of trouble that is the launcher's, not a trial's: why trials wait (a
        cluster that went away), that they go on, or (`fatal`) why the experiment cannot go on."""
        ...

    def close(self) -> None:
        """The experiment ended: let go of what the launcher holds for it."""
        ...


def describe_exit(code: int) -> str:
    """'exited with code 3' or 'killed by signal SIGSEGV' for an exit status (a signal as -N)."""
    if code < 0:
        try:
            return f"killed by signal {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with code {code}"


def stderr_tail(trial_dir: Path, max_chars: int = 300) -> str:
    """The last non-empty line of a trial's stderr (usually the exception), shortened."""
    return last_line(trial_dir / STDERR_FILE, max_chars)
