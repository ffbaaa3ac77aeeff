"""The agent on each Ray node: one long-lived, detached, named actor per node that runs that node's trials.

Ray starts it once per node (a Python worker with Ray imported costs about a second of CPU, which a trial must not
pay); it starts each trial as a subprocess with the same wrapper and trial contract as a local trial, in a trial
folder on its node, and hands the daemon the new bytes of the trial's files, its exit status and its usage. It
outlives the daemon, so a restarted daemon finds its trials again by their identity. This module does not import
Ray: the launcher makes the class an actor (`automl/launchers/ray.py`).

It is also its node's GPU monitor: a `GpuPool` over the node's probe (NVML, or the simulated fleet of
AUTOML_SIM_GPUS), sampled every second while a trial with GPUs runs here. Before a trial starts on the GPUs Ray
assigned it, `refusals` judges them with the same rules as on one machine (other users' processes, their load,
free memory, the learned memory need); the pool then meters each trial's share of its GPUs' energy and its peak
GPU memory, as the daemon's pool does for local trials.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from .. import trial_exit
from ..config.model import GpuPolicy
from ..gpu.pool import GpuPool, GpuSlots, Placement, report
from ..paths import create_file, open_new, private_folders
from .base import METRICS_FILE, NNI_LOG_FILE, PARAMS_FILE, STDERR_FILE, STDOUT_FILE, TrialSpec
from .local import _RECORD_EXIT, _end_all, kill_tree, marked_processes, process_start_time, terminate_tree, trial_env
from .metrics_file import MAX_LINE, _read_chunk, _Unreadable
from .process_usage import ProcessTreeUsage

FOLLOWED_FILES = (METRICS_FILE, STDOUT_FILE, STDERR_FILE, NNI_LOG_FILE)  # sent to the daemon while the trial runs
NODE_ENV = "AUTOML_NODE"  # the Ray node id, in a trial's environment
SMALL_FILE = 1 << 20  # bytes: a trial's other files up to this size come back with its last metrics, in one call
EXIT_POLL = 0.02  # seconds between looks at a trial's exit where pidfd is missing
SAMPLE_EVERY = 1.0  # seconds between reads of the node's GPUs while trials with GPUs run

Key = tuple[str, int]  # (experiment id, trial id)


@dataclass
class _Trial:
    """A trial this agent started: its process, its folder on this node, and its measured usage."""

    process: subprocess.Popen[bytes]
    folder: Path
    created: float | None
    usage: ProcessTreeUsage
    group: str
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    gpus: _GpuUse | None = None  # its GPUs on this node, when it has any


@dataclass
class _GpuUse:
    """A trial's GPUs on this node: its placement in the node's pool, how many GPUs Ray gave it (a fraction: its
    share of one), when it started and ended (monotonic), and its energy and peak GPU memory once it ended (while
    it runs, the pool has them)."""

    slots: GpuSlots
    placement: Placement
    amount: float
    started: float
    ended: float | None = None
    energy_j: float = 0.0
    peak_mib: float = 0.0

    def usage(self) -> dict[str, float]:
        """GPU-seconds (its share of each GPU for as long as it ran), energy and peak GPU memory so far."""
        energy, peak = (self.energy_j, self.peak_mib) if self.ended else self.slots.measured(self.placement)
        ran = (self.ended or time.monotonic()) - self.started
        return {"gpu_seconds": self.amount * ran, "energy_j": energy, "gpu_memory_mib": peak}


def code_version() -> str:
    """This automl's version and a digest of its code: an agent runs trials only for a daemon of the same code."""
    from .. import __version__

    package = Path(__file__).resolve().parent.parent
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        digest.update(path.relative_to(package).as_posix().encode() + b"\0" + path.read_bytes())
    return f"{__version__}+{digest.hexdigest()[:12]}"


def node_root(node_id: str, node_dir: str | None) -> Path:
    """The folder of automl's files on a node: its trial folders and the experiments' uploaded code."""
    return Path(node_dir or Path(tempfile.gettempdir()) / f"automl-{os.getuid()}") / node_id[:12]


def keep_code(node_id: str, node_dir: str | None) -> str:
    """Copy the working dir Ray unpacked for this task (its cwd, named after its content's hash) to where trials of
    this node run it, once per content; that copy's path. Ray may delete its own once no worker uses it."""
    unpacked = Path.cwd()
    target = node_root(node_id, node_dir) / "code" / unpacked.name
    if not target.is_dir():
        private_folders(target.parent)
        staging = Path(tempfile.mkdtemp(prefix=".copy-", dir=target.parent))
        shutil.copytree(unpacked, staging / "tree", symlinks=True)
        try:
            os.rename(staging / "tree", target)
        except OSError:
            if not target.is_dir():  # another copy of the same content won the race otherwise
                raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return str(target)


class NodeAgent:
    """Runs trials on one node for the daemon (see the module docstring). `node_dir`: where this node's trial
    folders go (None: this node's temp folder); `node_id`: Ray's id of the node, put in each trial's environment."""

    def __init__(self, node_id: str, node_dir: str | None):
        self.node_id = node_id
        self.root = node_root(node_id, node_dir)
        self.trials: dict[Key, _Trial] = {}
        self._pool: GpuPool | None = None
        self._slots: dict[str, GpuSlots] = {}  # per experiment: its placement policy on this node's GPUs
        self._sampling: asyncio.Task[None] | None = None

    def version(self) -> str:
        """The automl code this agent runs (`code_version`)."""
        return code_version()

    def refusals(self, experiment_id: str, policy: GpuPolicy, gpus_per_trial: float, gpus: list[int]) -> dict[int, str]:
        """Why some of the GPUs Ray assigned a trial of the experiment must not take it, measured now (the rules of
        one machine, under the experiment's `gpu:` policy); empty when all may."""
        slots = self._experiment_slots(experiment_id, policy, gpus_per_trial)
        verdicts = slots.verdicts() if slots.enabled else {}
        return {index: reason for index in gpus if (reason := verdicts.get(index))}

    async def start(
        self,
        spec: TrialSpec,
        base_env: dict[str, str],
        group: str,
        policy: GpuPolicy | None = None,
        gpus_per_trial: float = 0,
    ) -> tuple[int, float | None]:
        """Start a trial in a fresh folder on this node (`spec.trial_dir` names it), with the trial contract; its
        pid and start time. `group`: the placement group that holds its resources, kept for whoever ends it; its
        GPUs (`spec.gpus`, Ray's assignment) are metered under the experiment's `policy`."""
        key = (spec.experiment_id, spec.trial_id)
        folder = self.folder(spec.experiment_id, spec.trial_dir.name)
        if folder.exists():  # a start cut short before the daemon stored it: never reused
            shutil.rmtree(folder)
        private_folders(folder)
        create_file(folder / PARAMS_FILE, (json.dumps(spec.params, indent=2) + "\n").encode())
        create_file(folder / METRICS_FILE)
        node_spec = TrialSpec(**{**spec.__dict__, "trial_dir": folder})
        env = trial_env(node_spec, base_env)
        env[NODE_ENV] = self.node_id
        argv = ["/bin/sh", "-c", _RECORD_EXIT, str(folder), sys.executable, trial_exit.__file__, *spec.argv]
        with open(open_new(folder / STDOUT_FILE), "ab") as out, open(open_new(folder / STDERR_FILE), "ab") as err:
            process = subprocess.Popen(
                argv,
                cwd=spec.working_dir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
            )
        usage = ProcessTreeUsage(process.pid)
        trial = _Trial(process, folder, process_start_time(process.pid), usage, group)
        if spec.gpus and policy is not None:
            trial.gpus = self._meter(key, process.pid, spec.gpus, policy, gpus_per_trial)
        self.trials[key] = trial
        asyncio.get_running_loop().create_task(self._watch(trial))
        return process.pid, trial.created

    def folder(self, experiment_id: str, name: str) -> Path:
        """Where a trial's folder is on this node."""
        return self.root / experiment_id / "trials" / name

    def status(self, key: Key) -> dict[str, Any] | None:
        """What this agent knows of a trial: its pid, start time and exit status (None while it runs); None when
        this agent never started it."""
        trial = self.trials.get(key)
        if trial is None:
            return None
        code = trial.process.returncode if trial.ended.is_set() else None
        return {"pid": trial.process.pid, "created": trial.created, "code": code, "group": trial.group}

    def pull(self, key: Key, sizes: dict[str, int]) -> dict[str, Any]:
        """The bytes each followed file of the trial has past the size the daemon holds of it (at most one chunk
        of each), and the first problem with a file (a link, a FIFO, a truncated file)."""
        trial = self.trials[key]
        chunks, problem = {}, None
        for name in FOLLOWED_FILES:
            try:
                chunks[name] = _read_chunk(trial.folder / name, sizes.get(name, 0), None)[0]
            except FileNotFoundError:
                continue
            except _Unreadable as e:
                problem = problem or (f"{name} {e}" if name == METRICS_FILE else None)
        return {"chunks": chunks, "problem": problem, "max": MAX_LINE + 1, "from": sizes}

    def collect(self, key: Key, sizes: dict[str, int]) -> dict[str, Any]:
        """All the daemon needs to complete an ended trial's folder in one call: what `pull` gives, every other
        file up to `SMALL_FILE` bytes whole, and the names and sizes of the larger ones."""
        reply = self.pull(key, sizes)
        reply["small"], reply["large"], reply["usage"] = {}, [], self.usage(key)
        for name, size in self.files(key):
            if name in FOLLOWED_FILES or name == PARAMS_FILE:
                continue
            if size <= SMALL_FILE:
                reply["small"][name] = self.read(key, name, 0, size)
            else:
                reply["large"].append((name, size))
        return reply

    def groups(self) -> list[str]:
        """The placement groups of the trials this agent keeps (running, or ended and not yet copied)."""
        return [trial.group for trial in self.trials.values()]

    async def wait(self, key: Key) -> int:
        """The trial's exit status once its process has ended (a signal as -N)."""
        trial = self.trials[key]
        await trial.ended.wait()
        return trial.process.returncode

    def sample(self, key: Key) -> dict[str, float]:
        """The trial's process tree now: CPU-seconds so far and peak resident memory."""
        trial = self.trials[key]
        self._look(trial)
        return self.usage(key)

    def usage(self, key: Key) -> dict[str, float]:
        """What the trial used as measured so far: CPU-seconds, peak resident memory, and its GPUs' figures."""
        trial = self.trials[key]
        gpus = {} if trial.gpus is None else trial.gpus.usage()
        return {"cpu_seconds": trial.usage.cpu_seconds, "peak_rss_mib": trial.usage.peak_rss_mib, **gpus}

    async def terminate(self, key: Key, grace: float) -> None:
        """SIGTERM the trial's whole process tree, SIGKILL what is left after `grace` seconds."""
        await terminate_tree(self.trials[key].process.pid, grace)

    def kill(self, key: Key) -> None:
        """SIGKILL the trial's whole process tree now."""
        kill_tree(self.trials[key].process.pid)

    async def end_leftovers(self, key: Key, grace: float) -> list[int]:
        """End the processes the trial left on this node after its root exited (found by its marks); their pids.
        Without any, the trial is done with here (`forget`): its folder was copied when it ended."""
        procs = await asyncio.to_thread(marked_processes, *key)
        if procs:
            await _end_all(procs, grace)
        else:
            self.forget(key)
        return [proc.pid for proc in procs]

    def kill_leftovers(self, key: Key) -> list[int]:
        """SIGKILL now the processes of a trial that ended while no daemon watched (found by its marks); pids."""
        procs = marked_processes(*key)
        for proc in procs:
            try:
                proc.kill()
            except psutil.Error:
                continue
        return [proc.pid for proc in procs]

    def files(self, key: Key) -> list[tuple[str, int]]:
        """Every regular file of the trial's folder (path relative to it, size): what the daemon copies back."""
        folder = self.trials[key].folder
        found = []
        for path in sorted(folder.rglob("*")):
            if path.is_file() and not path.is_symlink():
                found.append((str(path.relative_to(folder)), path.stat().st_size))
        return found

    def read(self, key: Key, name: str, offset: int, size: int) -> bytes:
        """`size` bytes of one file of the trial's folder from `offset` (no link is followed)."""
        path = self.trials[key].folder / name
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            return os.pread(fd, size, offset)
        finally:
            os.close(fd)

    def forget(self, key: Key) -> None:
        """Drop an ended trial whose folder the daemon has copied: its record and its folder on this node."""
        trial = self.trials.pop(key, None)
        if trial is not None:
            shutil.rmtree(trial.folder, ignore_errors=True)

    def gpus(self) -> list[dict[str, Any]]:
        """This node's GPUs as `automl gpus` shows a machine's (NVML, or the simulated fleet where AUTOML_SIM_GPUS
        names one): our trials' processes told apart from other users', judged under the default policy."""
        from ..gpu.probe import gpu_source

        pool = self._gpu_pool()
        if not pool.count:
            return []
        source = gpu_source()
        return [{**gpu, "source": source} for gpu in report(pool, {"default": pool.slots("default", GpuPolicy(), 1)})]

    def _gpu_pool(self) -> GpuPool:
        """This node's GPU pool, over a probe opened once."""
        if self._pool is None:
            from ..gpu.probe import open_probe

            self._pool = GpuPool(open_probe())
        return self._pool

    def _experiment_slots(self, experiment_id: str, policy: GpuPolicy, gpus_per_trial: float) -> GpuSlots:
        """An experiment's view of this node's GPUs (kept, so its learned memory need lasts), under its policy."""
        slots = self._slots.get(experiment_id)
        if slots is None or slots.policy != policy or slots.gpus_per_trial != gpus_per_trial:
            estimate = None if slots is None else slots.estimate
            slots = self._gpu_pool().slots(experiment_id, policy, gpus_per_trial)
            slots.estimate = estimate or slots.estimate
            self._slots[experiment_id] = slots
        return slots

    def _meter(self, key: Key, pid: int, gpus: list[int], policy: GpuPolicy, gpus_per_trial: float) -> _GpuUse:
        """Count the trial's GPUs as held by it in this node's pool, and sample the GPUs while trials run."""
        slots = self._experiment_slots(key[0], policy, gpus_per_trial)
        placement = slots.claim(gpus, slots.estimate.value)
        slots.started(placement, key, pid)
        pool = self._gpu_pool()
        if pool.count and (self._sampling is None or self._sampling.done()):
            self._sampling = asyncio.get_running_loop().create_task(pool.run(SAMPLE_EVERY, self._see))
        return _GpuUse(slots, placement, gpus_per_trial, time.monotonic())

    def _see(self) -> None:
        """Look at the process trees of the trials with GPUs (so the next sample tells their processes apart)."""
        for trial in self.trials.values():
            if trial.gpus is not None and not trial.ended.is_set():
                self._look(trial)

    def _look(self, trial: _Trial) -> None:
        pids = trial.usage.sample()
        if trial.gpus is not None:
            trial.gpus.slots.seen(trial.gpus.placement, pids)

    def _unmeter(self, trial: _Trial) -> None:
        """The trial's process ended: give its GPUs back to the node's pool, keeping its energy and peak memory."""
        use = trial.gpus
        if use is not None and use.ended is None:
            use.energy_j, use.peak_mib = use.slots.release(use.placement)
            use.ended = time.monotonic()
        metered = [t for t in self.trials.values() if t.gpus is not None and t.gpus.ended is None]
        if not metered and self._sampling is not None:
            self._sampling.cancel()  # nothing to meter: the next trial with GPUs starts sampling again
            self._sampling = None

    async def _watch(self, trial: _Trial) -> None:
        """Reap the trial's process as soon as it exits (pidfd where the kernel has it), and say so."""
        try:
            fd = os.pidfd_open(trial.process.pid)
        except (OSError, AttributeError):
            fd = None
        if fd is not None:
            readable = asyncio.Event()
            loop = asyncio.get_running_loop()
            loop.add_reader(fd, readable.set)
            try:
                await readable.wait()
            finally:
                loop.remove_reader(fd)
                os.close(fd)
        while trial.process.poll() is None:
            await asyncio.sleep(EXIT_POLL)
        self._unmeter(trial)
        trial.ended.set()
