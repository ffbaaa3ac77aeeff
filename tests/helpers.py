"""What tests share: the real `automl` CLI in a subprocess, trial scripts and configs, waiting until a condition
holds, a clock moved by hand, and ending the trial processes a test left running. Fixtures live in conftest.py."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import psutil
import yaml

from automl.launchers.local import marked_processes
from automl.processes import is_alive
from automl.store import Store

REPO = Path(__file__).resolve().parent.parent

T = TypeVar("T")

STEPPING_STEPS = 5
STEPPING_TRIAL = f"""
for step in range({STEPPING_STEPS}):
    time.sleep(params.get('pace', 0.15))
    trial.report(step * params['x'])
trial.report_final(params['x'])
"""
"""A trial (for `write_trial`) that reports STEPPING_STEPS steps, `pace` seconds apart (0.15 unless its params say
otherwise), then its x as the final result."""


def automl(*args: str, timeout: float = 300, check: bool = False, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """Run `automl ARGS` as a user would (a real process), capturing its output."""
    result = subprocess.run(
        [sys.executable, "-m", "automl", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=os.environ.copy(),
        **kwargs,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"automl {' '.join(args)} exited {result.returncode}\n{result.stdout}\n{result.stderr}")
    return result


def show(experiment: str) -> dict[str, Any]:
    """`automl show EXP --json`, parsed."""
    return json.loads(automl("show", experiment, "--json", check=True).stdout)


def submit(config: Path) -> str:
    """`automl submit CONFIG` to the running daemon; the new experiment's id."""
    return automl("submit", str(config), check=True).stdout.strip()


def run_experiment_id(stdout: str) -> str:
    """The experiment's id in what `automl run` printed."""
    match = re.search(r"^experiment \S+ \[([0-9a-f]{8})\]", stdout, re.MULTILINE)
    assert match, stdout
    return match.group(1)


def write_trial(folder: Path, body: str, name: str = "trial.py") -> Path:
    """A Python trial script with `from automl import trial` and `params` already set up."""
    script = folder / name
    script.write_text(
        "import sys, time\nfrom automl import trial\nparams = trial.get_params()\n" + textwrap.dedent(body)
    )
    return script


def write_config(folder: Path, name: str = "exp.yml", **fields: Any) -> Path:
    """An experiment config with small defaults, overridden by `fields`."""
    config: dict[str, Any] = {
        "name": "test",
        "command": "python trial.py",
        "search_space": {"x": {"_type": "uniform", "_value": [0, 1]}, "k": {"_type": "choice", "_value": [1, 2, 3]}},
        "tuner": {"name": "Random", "args": {"seed": 1}},
        "max_trials": 4,
        "concurrency": 2,
    }
    config.update(fields)
    path = folder / name
    path.write_text(yaml.safe_dump(config))
    return path


def wait_until(
    condition: Callable[[], T], what: str | Callable[[], str], timeout: float = 120.0, every: float = 0.1
) -> T:
    """Call `condition` every `every` seconds until it returns something true, and return that. After `timeout`
    seconds, fail naming `what` was awaited (a callable `what` is asked then, to describe the state it saw)."""
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(_timed_out(what, timeout))
        time.sleep(every)
    return value


async def wait_until_async(
    condition: Callable[[], T],
    what: str | Callable[[], str],
    timeout: float = 60.0,
    every: float = 0.05,
    pause: Callable[[float], Awaitable[object]] = asyncio.sleep,
) -> T:
    """`wait_until` inside an event loop: `await pause(every)` between looks (a Textual pilot's `pause`, to let
    the app redraw), so the loop goes on meanwhile."""
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(_timed_out(what, timeout))
        await pause(every)
    return value


def _timed_out(what: str | Callable[[], str], timeout: float) -> str:
    return f"timed out after {timeout:g} s waiting for {what if isinstance(what, str) else what()}"


def wait_for_status(exp_id: str, *statuses: str, timeout: float = 120.0) -> dict[str, Any]:
    """`show(exp_id)` once the experiment's status is one of `statuses`."""
    return wait_until(
        lambda: (lambda view: view if view["status"] in statuses else None)(show(exp_id)),
        f"experiment {exp_id} to be {' or '.join(statuses)}",
        timeout,
    )


def recorded_daemon_pid(home: Path) -> int:
    """The pid the daemon of `home` wrote to its pid file."""
    return int((home / "daemon.pid").read_text())


@contextlib.contextmanager
def running_daemon(home: Path, **start: Any) -> Iterator[Path]:
    """A daemon started for `home` (`start`: more arguments for subprocess.run), stopped afterwards with every trial
    process it left."""
    automl("daemon", "start", check=True, **start)
    try:
        yield home
    finally:
        automl("daemon", "stop")
        kill_leftover_trials(home)


def kill_leftover_trials(home: Path) -> None:
    """SIGKILL the trials of `home` that still run: each one's process group, if its leader is still the trial's
    process (the pid and start time the store holds, and the trial's marks in its environment), and every process
    that carries the trial's marks, also the ones that left its group. A recycled pid is never signalled."""
    store = Store.open_for_reading(home)
    if store is None:
        return
    try:
        trials = [trial for experiment in store.experiments() for trial in store.trials(experiment.id)]
    finally:
        store.close()
    for trial in trials:
        marked = marked_processes(trial.experiment_id, trial.id)
        if trial.pid and is_alive(trial.pid, trial.pid_created) and any(p.pid == trial.pid for p in marked):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(trial.pid, signal.SIGKILL)
        for proc in marked:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()


def still_running(pids: Iterable[int | None]) -> list[int]:
    """Those of `pids` that still run (a zombie has ended)."""
    running = []
    for pid in pids:
        with contextlib.suppress(psutil.NoSuchProcess):
            if pid is not None and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                running.append(pid)
    return running


class FakeClock:
    """A clock that stands still until the test moves it: calling it returns `now`."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now
