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


class TrialProcess(Protocol):
    """A started trial: its process id, and its exit status once it ends."""

    @property
    def pid(self) -> int: ...

    async def wait(self) -> int: ...


class Launcher(Protocol):
    """What the experiment loop needs of a launcher: start a trial's process, and end, date or look up one."""

    async def start(self, spec: TrialSpec) -> TrialProcess: ...

    async def terminate(self, pid: int, grace: float) -> None: ...

    def kill(self, pid: int) -> None: ...

    def start_time(self, pid: int) -> float | None: ...

    def alive(self, pid: int, created: float | None) -> bool: ...

    async def end_leftovers(self, experiment_id: str, trial_id: int, grace: float) -> list[int]: ...

    def kill_leftovers(self, experiment_id: str, trial_id: int) -> list[int]: ...
