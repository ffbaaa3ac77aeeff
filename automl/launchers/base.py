"""The launcher boundary: what the experiment loop asks of any launcher, and the files of a trial's folder."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

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
    recycled pid is never taken for it), and the node it runs on (None: this machine)."""

    pid: int
    created: float | None
    node: str | None = None


class TrialHandle(Protocol):
    """One started trial, as its launcher delivers it to the experiment loop (the loop never sees a pid)."""

    identity: TrialIdentity
    locator: Locator

    async def read_metrics(self, offset: int, seq: int, objective: str, *, final: bool = False) -> Any:
        """The metric records the trial appended after byte `offset` (`seq` records read so far), at most one
        chunk, as `metrics_file.ReadResult`; `final` once the trial has ended (a last line without a newline
        counts). Exactly once and in order: the loop stores them, then passes the new offset next time."""
        ...

    async def wait(self) -> int | None:
        """The trial's exit status once it has ended (a signal as -N); None when it ended unwatched and nothing
        recorded its status. Returns only when the trial's files on this machine are complete."""
        ...

    def sample(self) -> set[int]:
        """Look at the trial's process tree now (CPU time, peak memory); the pids in it (to tell its GPU
        processes apart)."""
        ...

    def usage(self) -> Any:
        """What the trial used as measured so far and as recorded at its exit (`RecordedUsage`, or None)."""
        ...

    async def terminate(self, grace: float) -> None:
        """SIGTERM the trial's whole process tree, then SIGKILL whatever is left after `grace` seconds."""
        ...

    def kill(self) -> None:
        """SIGKILL the trial's whole process tree now."""
        ...

    async def end_leftovers(self, grace: float) -> list[int]:
        """End the processes the trial left running after its root exited (found by its identity); their pids."""
        ...


class Launcher(Protocol):
    """The boundary between the experiment loop and where trials run (this machine, a simulation, a cluster).

    A launcher starts a trial from a `TrialSpec` and returns a `TrialHandle`: the loop reads the trial's metric
    lines, its exit status and its usage through the handle, and ends it through the handle. Every trial is
    marked with its `TrialIdentity`, so that after a daemon restart `attach` finds it again from what the store
    kept (its `Locator`), whether it still runs or ended meanwhile. A launcher must:

    - write the trial's folder (`PARAMS_FILE`, an empty `METRICS_FILE`) before the trial starts, and never
      reuse an existing folder (`TrialFolderExists`);
    - run the command with the trial contract: the environment of `trial_env`, its cwd, CUDA_VISIBLE_DEVICES
      from the spec's GPUs;
    - record the trial's exit status and usage where `attach` finds them, even when no daemon is watching;
    - have every file of the trial folder on the daemon's machine when `TrialHandle.wait` returns;
    - raise OSError from `start` when the command cannot be started (the trial fails with its message).
    """

    async def start(self, spec: TrialSpec) -> TrialHandle:
        """Start the trial; its handle, once its process runs."""
        ...

    async def attach(self, identity: TrialIdentity, locator: Locator | None, trial_dir: Path) -> TrialHandle | None:
        """After a daemon restart: the handle of a trial that still runs (by `locator`, or, when the store has
        none, because the daemon died while starting it, by its identity); None when nothing of it runs."""
        ...

    def ended(self, identity: TrialIdentity, trial_dir: Path) -> int | None:
        """The exit status recorded for a trial that ended while no daemon watched it; None when none was."""
        ...

    def kill_leftovers(self, identity: TrialIdentity) -> list[int]:
        """SIGKILL now what a trial that ended while no daemon watched left running; their pids."""
        ...
