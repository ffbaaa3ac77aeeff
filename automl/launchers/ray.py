"""Trials on a Ray cluster: Ray places each trial and keeps its resources, a per-node agent runs it.

A trial's CPUs, GPUs and custom resources are reserved in a detached placement group of one bundle (a slot), so
Ray's accounting holds them and picks the node; the GPUs are the ones Ray assigns to that bundle. When a trial ends
its slot serves the experiment's next trial if one starts within `IDLE_KEEP` seconds, else goes back to Ray. The
trial starts through its node's agent (`ray_agent.NodeAgent`, one detached, named actor per node, started once),
with the same wrapper and trial contract as a local trial. The daemon's trial folder is a mirror of the one on the
node: each read of the trial's metrics first appends the node file's new bytes, then the local metrics reader reads
the mirror, so metrics arrive exactly once and in order, and its logs are readable while it runs; when the trial
ends, every file of its folder is copied back before `wait` returns. This module runs in the bridge process
(`ray_bridge`), never in the daemon: importing Ray costs about a second, and Ray ends a driver that loses its
cluster. A trial whose resources Ray cannot place within `PLACE_WAIT` seconds waits in the loop's queue (`NoRoom`),
where stop and kill reach it, and asks again.

GPUs by measured load: before a trial starts on the GPUs Ray assigned its slot, the node's agent judges them by the
experiment's `gpu:` policy with the rules of one machine (`ray_agent.NodeAgent.refusals`). A slot on a GPU that
fails them is kept reserved (parked) while the next one is asked for, so Ray's accounting steers that request to
another GPU or node; when Ray has nothing more to give at once, the parked slots go back and `start` raises
`NoRoom`: the trial waits, still queued, and the loop asks again.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import logging
import os
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray
from ray.exceptions import RayActorError, RayError
from ray.util.placement_group import (
    get_placement_group,
    placement_group,
    placement_group_table,
    remove_placement_group,
)
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy, PlacementGroupSchedulingStrategy

from ..config.model import GpuPolicy
from ..paths import create_file, new_trial_folder, open_append
from .base import (
    METRICS_FILE,
    PARAMS_FILE,
    STDERR_FILE,
    STDOUT_FILE,
    Locator,
    NoRoom,
    ProcessUsage,
    TrialIdentity,
    TrialLost,
    TrialSpec,
)
from .local import recorded_exit
from .metrics_file import ReadResult, read_new
from .process_usage import recorded_usage
from .ray_address import NAMESPACE, RayOptions
from .ray_agent import FOLLOWED_FILES, NodeAgent, code_version, keep_code

AGENT_PREFIX = "automl-agent-"  # then the code's version and the node: one agent per node and automl code
AGENT_VERSION = code_version()
GROUP_PREFIX = "automl-"  # then the experiment id: the placement groups of an experiment's trials
EXIT_WAIT = 2.0  # seconds an exiting process waits for Ray to confirm it got its idle slots back
IDLE_KEEP = 2.0  # seconds an ended trial's reserved resources wait for the next trial before Ray gets them back
COPY_CHUNK = 4 << 20  # bytes per call when a trial's folder is copied back at its end
PARK_WAIT = 1.0  # seconds a slot may take to be placed while busy GPUs are parked, before Ray counts as full
PLACE_WAIT = 2.0  # seconds a new slot may take to be placed before the trial waits in the queue (`NoRoom`)

log = logging.getLogger("automl")


@dataclass(eq=False)
class _Slot:
    """Resources Ray reserved for one trial at a time: a placement group, its node, its GPUs, the node's agent."""

    group: str
    node: str
    gpus: list[int]
    agent: Any


class RayLauncher:
    """Runs each trial on a node of the Ray cluster at `options.address` (see the module docstring), with the
    environment of the shell that ran the experiment (`environment`)."""

    def __init__(
        self,
        options: RayOptions,
        gpus: float = 0,
        environment: Mapping[str, str] | None = None,
        policy: GpuPolicy | None = None,
    ):
        self.options = options
        self.gpus = gpus
        self.policy = policy or GpuPolicy()  # the rules a GPU Ray assigned must meet on its node
        self.environment = dict(os.environ if environment is None else environment)
        self._idle: list[_Slot] = []  # reserved slots no trial uses yet
        self._swept = False
        self._sweeping = asyncio.Lock()
        self._keeping: set[asyncio.Future[None]] = set()  # the timers of idle slots
        self._code: dict[str, Path] = {}  # per node: its copy of the uploaded working dir (`code: upload`)

    async def start(self, spec: TrialSpec) -> RayTrialHandle:
        """Reserve the trial's resources (a slot an ended trial of this experiment just freed, else a new one),
        then start it through its node's agent; its handle once it runs. `NoRoom` when every GPU Ray could give it
        now is busy on its node."""
        await self._ready(spec.experiment_id)
        slot = await self._slot(spec)
        try:
            new_trial_folder(spec.trial_dir)
            create_file(spec.trial_dir / PARAMS_FILE, _params_bytes(spec.params))
            for name in (METRICS_FILE, STDOUT_FILE, STDERR_FILE):
                create_file(spec.trial_dir / name)
            cwd = await self._working_dir(spec, slot.node)
            node_spec = TrialSpec(**{**spec.__dict__, "gpus": slot.gpus, "working_dir": cwd})
            starting = slot.agent.start.remote(node_spec, self.environment, slot.group, self.policy, self.gpus)
            pid, created = await starting
        except (RayError, OSError) as e:
            await asyncio.to_thread(_remove_group, slot.group)
            if isinstance(e, RayError):
                raise OSError(f"Ray could not start the trial: {e}") from e
            raise
        identity = TrialIdentity(spec.experiment_id, spec.trial_id)
        where = Locator(pid, created, slot.node, tuple(slot.gpus))
        return RayTrialHandle(identity, where, slot.agent, spec.trial_dir, slot, self)

    async def _working_dir(self, spec: TrialSpec, node: str) -> Path:
        """Where the trial runs on its node: the working dir itself (on a filesystem every node shares), or, when
        it is uploaded (`RayOptions.upload`, this process's job-wide runtime_env), the node's copy of it."""
        if self.options.upload is None:
            return spec.working_dir
        if node not in self._code:
            copy = _keep_code.options(num_cpus=0, scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False))
            self._code[node] = Path(await copy.remote(node, self.options.node_dir))
        return self._code[node]

    async def _slot(self, spec: TrialSpec) -> _Slot:
        """The slot an ended trial just freed when its GPUs still take the trial, else a new one (`_reserve`)."""
        slot = self._idle.pop() if self._idle else None
        if slot is not None:
            _idle_groups.discard(slot.group)
        try:
            if slot is not None and await self._refusals(slot, spec.experiment_id):
                await asyncio.to_thread(_remove_group, slot.group)  # its GPU got busy since its last trial
                slot = None
            return slot or await self._reserve(spec)
        except RayError as e:
            if slot is not None:
                await asyncio.to_thread(_remove_group, slot.group)
            raise OSError(f"Ray could not start the trial: {e}") from e

    async def _reserve(self, spec: TrialSpec) -> _Slot:
        """A new slot whose GPUs take the trial by their node's measured load: a slot on a busy GPU stays parked
        while the next is asked for, so Ray steers it elsewhere; the parked ones go back to Ray once one fits, or
        with `NoRoom` when Ray has nothing more to give now."""
        parked: list[_Slot] = []
        busy: list[str] = []
        try:
            while True:
                slot = await self._reserve_once(spec, PARK_WAIT if parked else PLACE_WAIT)
                if slot is None and busy:
                    raise NoRoom("every GPU Ray can give it now is busy: " + "; ".join(busy))
                if slot is None:
                    raise NoRoom(await asyncio.to_thread(_no_room, self._bundle(spec), self.options.labels))
                refused = await self._refusals(slot, spec.experiment_id)
                if not refused:
                    return slot
                parked.append(slot)
                busy += [f"GPU {index} of node {slot.node[:12]}: {why}" for index, why in refused.items()]
        finally:
            await asyncio.to_thread(_remove_groups, [slot.group for slot in parked])

    async def _refusals(self, slot: _Slot, experiment_id: str) -> dict[int, str]:
        """Why the slot's GPUs must not take the experiment's next trial, measured on their node now."""
        if not slot.gpus:
            return {}
        return await slot.agent.refusals.remote(experiment_id, self.policy, self.gpus, slot.gpus)

    async def _reserve_once(self, spec: TrialSpec, wait: float) -> _Slot | None:
        """A new placement group of one bundle for a trial, once Ray has placed it: its node, GPUs and agent; None
        when Ray could not place it within `wait` seconds."""
        name = f"{GROUP_PREFIX}{spec.experiment_id}-{uuid.uuid4().hex[:12]}"
        labels = {"bundle_label_selector": [dict(self.options.labels)]} if self.options.labels else {}
        group = placement_group([self._bundle(spec)], strategy="STRICT_PACK", name=name, lifetime="detached", **labels)
        try:
            try:
                await asyncio.wait_for(group.ready(), wait)
            except asyncio.TimeoutError:
                remove_placement_group(group)
                return None
            node = (await asyncio.to_thread(placement_group_table, group))["bundles_to_node_id"][0]
            gpus = []
            if self.gpus:
                strategy = PlacementGroupSchedulingStrategy(group, 0)
                assigned = _assigned_gpus.options(num_cpus=0, num_gpus=self.gpus, scheduling_strategy=strategy)
                gpus = await assigned.remote()
            agent = await asyncio.to_thread(node_agent, node, self.options.node_dir)
        except (RayError, OSError):
            remove_placement_group(group)
            raise
        return _Slot(name, node, gpus, agent)

    def _bundle(self, spec: TrialSpec) -> dict[str, float]:
        """What a trial asks Ray for: its CPUs, its GPUs, the config's custom resources."""
        return {"CPU": float(spec.cpus), **({"GPU": self.gpus} if self.gpus else {}), **self.options.resources}

    async def _ready(self, experiment_id: str) -> None:
        """Join the cluster; the first time, give back to Ray what an earlier process of this experiment left
        reserved (it died while starting a trial, or holding idle slots)."""
        await connect(self.options.address)
        async with self._sweeping:  # before any start of this process reserves a group the sweep would not know
            if not self._swept:
                await asyncio.to_thread(_sweep_groups, experiment_id)
                self._swept = True

    def release(self, slot: _Slot) -> None:
        """Keep an ended trial's slot for the next trial for `IDLE_KEEP` seconds, then give it back to Ray."""
        self._idle.append(slot)
        _idle_groups.add(slot.group)
        self._keeping.add(asyncio.ensure_future(self._keep(slot)))

    async def _keep(self, slot: _Slot) -> None:
        """Give the slot back after `IDLE_KEEP` seconds unless a trial took it, or as soon as the loop ends."""
        try:
            await asyncio.sleep(IDLE_KEEP)
        finally:
            self._expire(slot)
            self._keeping.discard(asyncio.current_task())

    def _expire(self, slot: _Slot) -> None:
        if slot in self._idle:
            self._idle.remove(slot)
            _idle_groups.discard(slot.group)
            _remove_group(slot.group)

    async def attach(self, identity: TrialIdentity, locator: Locator | None, trial_dir: Path) -> RayTrialHandle:
        """After a daemon restart: the trial found on its node by its agent (the locator's node, or every node when
        the store has none). Its handle has no locator when it no longer runs: then `wait` copies its folder and
        gives the exit status its node recorded, or None when no node knows it (it never started, or its node
        left the cluster)."""
        await self._ready(identity.experiment_id)
        found = await asyncio.to_thread(_find, identity, locator)
        if found is None:
            return RayTrialHandle(identity, None, None, trial_dir, None)
        agent, status, node = found
        where = Locator(status["pid"], status["created"], node) if status["code"] is None else None
        slot = _Slot(status["group"], node, [], agent)
        return RayTrialHandle(identity, where, agent, trial_dir, slot, None, ended=status["code"])


class RayTrialHandle:
    """One trial on a Ray node: its files mirrored into the daemon's trial folder as they grow."""

    def __init__(
        self,
        identity: TrialIdentity,
        locator: Locator | None,
        agent: Any,
        trial_dir: Path,
        slot: _Slot | None,
        launcher: RayLauncher | None = None,
        ended: int | None = None,
    ):
        self.identity, self.locator, self.agent, self.trial_dir = identity, locator, agent, trial_dir
        self.key = (identity.experiment_id, identity.trial_id)
        self.slot = slot  # the resources Ray holds for it
        self._launcher = launcher  # takes the slot back for its next trial (None: Ray gets it back)
        self._ended = ended  # the exit status its node recorded, for a trial that ended while no daemon watched
        self._file: Any = None  # the mirror metrics file read so far (device, inode)
        self._measured = ProcessUsage()
        self._collected = agent is None
        self._problem: str | None = None
        # how far each followed file on the node was copied: a mirror's size until a log cap shortens it
        self._offsets = _sizes(trial_dir)
        self._pulling = asyncio.Lock()  # one copy from the node at a time: each appends at the offsets it read

    async def read_metrics(self, offset: int, seq: int, objective: str, *, final: bool = False) -> ReadResult:
        """Bring the node files' new bytes to the mirror, then read the mirror's new metric records."""
        if not self._collected:
            await self._pull()
        if self._problem:
            return ReadResult([], offset, self._problem, self._file)
        result = read_new(self.trial_dir / METRICS_FILE, offset, seq, objective, identity=self._file, final=final)
        self._file = result.identity
        return result

    async def wait(self) -> int | None:
        """The trial's exit status, once its folder is copied back; TrialLost when its node left the cluster."""
        if self.agent is None:
            return recorded_exit(self.trial_dir)
        node = "?" if self.locator is None else self.locator.node
        try:
            code = self._ended if self.locator is None else await self.agent.wait.remote(self.key)
            await self.collect()
        except RayActorError as e:
            if self.slot is not None:
                await asyncio.to_thread(_remove_group, self.slot.group)
            raise TrialLost(f"its node {node} left the Ray cluster") from e
        if self.slot is not None and self._launcher is not None and self.locator is not None:
            self._launcher.release(self.slot)
        elif self.slot is not None:
            await asyncio.to_thread(_remove_group, self.slot.group)
        return code

    def usage(self) -> ProcessUsage:
        """What the node measured so far, and what the wrapper recorded at the trial's exit once copied back."""
        recorded = recorded_usage(self.trial_dir)
        measured = self._measured
        if recorded is None:
            return measured
        return ProcessUsage(
            max(recorded.cpu_seconds, measured.cpu_seconds),
            max(recorded.peak_rss_mib, measured.peak_rss_mib),
            recorded.ended,
            measured.gpu_seconds,
            measured.energy_j,
            measured.gpu_memory_mib,
        )

    async def terminate(self, grace: float) -> None:
        """SIGTERM the trial's whole process tree on its node, SIGKILL what is left after `grace` seconds."""
        try:
            if self.locator is not None:
                await self.agent.terminate.remote(self.key, grace)
        except RayActorError:
            pass  # the node is gone, and the trial with it: `wait` says so

    def kill(self) -> None:
        """SIGKILL the trial's whole process tree on its node now."""
        if self.locator is not None:
            self.agent.kill.remote(self.key)

    async def end_leftovers(self, grace: float) -> list[int]:
        """End what the trial left running on its node, copy what they wrote, and free the node's copy."""
        if self.agent is None:
            return []
        try:
            pids = await self.agent.end_leftovers.remote(self.key, grace)
            if pids:  # they may have written to the trial's folder
                await self.collect()
                await self.agent.forget.remote(self.key)
        except RayActorError:
            return []
        return pids

    async def collect(self) -> None:
        """Copy the trial's folder on its node into the daemon's (see `_collect`)."""
        async with self._pulling:
            used = await asyncio.to_thread(_collect, self.agent, self.key, self.trial_dir, self._offsets)
        self._measured = _process_usage(used) or self._measured
        self._collected = True

    async def _pull(self) -> None:
        """Append each followed file's new bytes on the node to the mirror."""
        try:
            async with self._pulling:
                reply = await self.agent.pull.remote(self.key, dict(self._offsets))
                _apply(reply, self.trial_dir, self._offsets)
        except RayActorError:
            return  # the node is gone: `wait` says so
        self._problem = self._problem or reply["problem"]

    async def sample_now(self) -> None:
        """Ask the node for the trial tree's CPU time and peak memory now."""
        if self._collected:
            return
        try:
            self._measured = _process_usage(await self.agent.sample.remote(self.key)) or self._measured
        except (RayError, KeyError):
            pass


def kill_leftovers(address: str, identity: TrialIdentity) -> list[int]:
    """SIGKILL now, on every node, what a trial left running that no daemon follows any more, and give its
    resources back to Ray; their pids."""
    connect_now(address)
    key = (identity.experiment_id, identity.trial_id)
    pids: list[int] = []
    for agent in _all_agents():
        try:
            pids += ray.get(agent.kill_leftovers.remote(key))
            status = ray.get(agent.status.remote(key))
            ray.get(agent.forget.remote(key))
        except RayError:
            continue
        if status is not None:
            _remove_group(status["group"])
    return pids


async def cluster_gpus(address: str) -> list[dict[str, Any]]:
    """Every GPU of every live node of the cluster, as `automl gpus` shows a machine's, each with its node: sampled
    and judged there by the node's agent, under the default placement policy."""
    await connect(address)
    nodes = [node for node in await asyncio.to_thread(ray.nodes) if node["Alive"]]
    described = []
    for node in sorted(nodes, key=lambda node: node["NodeID"]):
        try:
            agent = await asyncio.to_thread(node_agent, node["NodeID"], None)
            gpus = await agent.gpus.remote()
        except (RayError, OSError) as e:  # a node that just left, or runs other automl code: not listed
            log.warning("no GPUs listed for node %s: %s", node["NodeID"][:12], e)
            continue
        described += [{"node": node["NodeID"], "node_address": node["NodeManagerAddress"], **gpu} for gpu in gpus]
    return described


_connected: str | None = None
_idle_groups: set[str] = set()  # reserved slots no trial uses: given back to Ray when this process exits
_connecting = asyncio.Lock()
_agents: dict[str, Any] = {}


async def connect(address: str, upload: str | None = None) -> None:
    """Join the cluster at `address` as its driver, once per process (Ray allows one cluster per process); with
    `upload`, a folder Ray ships to the nodes for this process's tasks (Ray uploads folders only for a whole job)."""
    if _connected == address:
        return
    async with _connecting:
        await asyncio.to_thread(connect_now, address, upload)


def connect_now(address: str, upload: str | None = None) -> None:
    """`connect`, blocking."""
    global _connected
    if _connected == address:
        return
    if _connected is not None:
        raise OSError(f"this automl process already uses the Ray cluster at {_connected}, not {address}")
    shipped = {"runtime_env": {"working_dir": upload}} if upload else {}
    ray.init(address=address, namespace=NAMESPACE, log_to_driver=False, logging_level=logging.WARNING, **shipped)
    atexit.register(_release_idle_groups)  # after Ray's own exit hook, so it runs first
    _connected = address


def _release_idle_groups() -> None:
    """Give the idle slots back to Ray as this process exits (their placement groups outlive it otherwise)."""
    if not ray.is_initialized():  # any other call would start a local Ray instance
        return
    for name in list(_idle_groups):
        _remove_group(name)
    deadline = time.monotonic() + EXIT_WAIT
    while _idle_groups and time.monotonic() < deadline:  # a removal is sent asynchronously: see it done
        _idle_groups.difference_update(name for name in list(_idle_groups) if _group_state(name) in (None, "REMOVED"))
        time.sleep(0.02)


def node_agent(node: str, node_dir: str | None) -> Any:
    """The agent of a node that runs this process's automl code, started there (once, detached, named after the
    code and the node) unless it runs already; agents of older code on the node that keep no trial are ended."""
    if node not in _agents:
        agent = _start_agent(node, node_dir)
        theirs = ray.get(agent.version.remote())
        if theirs != AGENT_VERSION:
            ray.kill(agent)
            raise OSError(
                f"node {node[:12]} of the Ray cluster has automl {theirs} installed, this daemon {AGENT_VERSION}: "
                "install the same automl on every node"
            )
        _retire_agents(node)
        _agents[node] = agent
    return _agents[node]


def _start_agent(node: str, node_dir: str | None) -> Any:
    """A node's agent: the running one, or a new one."""
    return (
        ray.remote(NodeAgent)
        .options(
            name=_agent_name(node),
            namespace=NAMESPACE,
            lifetime="detached",
            get_if_exists=True,
            num_cpus=0,
            max_restarts=0,
            max_concurrency=1000,
            scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False),
        )
        .remote(node, node_dir)
    )


def _agent_name(node: str) -> str:
    return f"{AGENT_PREFIX}{AGENT_VERSION}-{node}"


def _node_of(agent_name: str) -> str:
    return agent_name.rsplit("-", 1)[1]


def _retire_agents(node: str) -> None:
    """End the node's agents of other automl code (from before an upgrade) once they keep no trial; until then
    they keep following the trials they started."""
    for name in _names():
        if _node_of(name) != node or name == _agent_name(node):
            continue
        try:
            agent = ray.get_actor(name, namespace=NAMESPACE)
            if not ray.get(agent.groups.remote()):
                ray.kill(agent)
        except (ValueError, RayError):
            continue


_keep_code = ray.remote(keep_code)


@ray.remote
def _assigned_gpus() -> list[int]:
    """The GPUs Ray gave to the placement-group bundle this runs in."""
    return [int(gpu) for gpu in ray.get_gpu_ids()]


def _find(identity: TrialIdentity, locator: Locator | None) -> tuple[Any, dict[str, Any], str] | None:
    """The agent that started a trial, what it knows of it, and its node (the locator's node first)."""
    key = (identity.experiment_id, identity.trial_id)
    names = _names()  # every node's agents, of any code: a trial is followed by the agent that started it
    if locator is not None and locator.node:
        names = [name for name in names if _node_of(name) == locator.node]
    for name in names:
        try:
            agent = ray.get_actor(name, namespace=NAMESPACE)
            status = ray.get(agent.status.remote(key))
        except (ValueError, RayError):
            continue
        if status is not None and (locator is None or status["pid"] == locator.pid):
            return agent, status, _node_of(name)
    return None


def _process_usage(measured: dict[str, float] | None) -> ProcessUsage | None:
    """What a node's agent measured of a trial (None: nothing)."""
    if not measured:
        return None
    return ProcessUsage(
        measured["cpu_seconds"],
        measured["peak_rss_mib"],
        None,
        measured.get("gpu_seconds", 0.0),
        measured.get("energy_j", 0.0),
        measured.get("gpu_memory_mib", 0.0),
    )


def _collect(
    agent: Any, key: tuple[str, int], trial_dir: Path, offsets: dict[str, int] | None = None
) -> dict[str, float] | None:
    """Copy every file of a trial's folder on its node into the daemon's (blocking): the followed ones to their
    end, the others whole; one call to the node unless the trial left large files. What the node measured of the
    trial's use at its end."""
    offsets = _sizes(trial_dir) if offsets is None else offsets
    reply = ray.get(agent.collect.remote(key, dict(offsets)))
    used = reply.get("usage")
    while _apply(reply, trial_dir, offsets):
        reply = ray.get(agent.pull.remote(key, dict(offsets)))
    for name, data in reply.get("small", {}).items():
        if _inside(name):
            _write(trial_dir / name, data)
    for name, size in reply.get("large", []):
        if _inside(name):
            _copy(agent, key, trial_dir / name, name, size)
    return used


def _apply(reply: dict[str, Any], trial_dir: Path, offsets: dict[str, int]) -> bool:
    """Append the new bytes the node sent to the mirror files, advancing `offsets`; whether more may be waiting."""
    more = False
    for name, data in reply["chunks"].items():
        if data and reply["from"].get(name, 0) == offsets[name]:  # never the same bytes twice
            _append(trial_dir / name, data)
            offsets[name] += len(data)
            more = more or len(data) >= reply["max"]
    return more


def _write(target: Path, data: bytes) -> None:
    """Write one small file of the trial's folder as its node sent it."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def _copy(agent: Any, key: tuple[str, int], target: Path, name: str, size: int) -> None:
    """Copy one file of the trial's folder from its node, a chunk per call."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        for offset in range(0, size, COPY_CHUNK):
            os.pwrite(fd, ray.get(agent.read.remote(key, name, offset, COPY_CHUNK)), offset)
    finally:
        os.close(fd)


def _sizes(trial_dir: Path) -> dict[str, int]:
    """How much of each followed file the mirror holds."""
    sizes = {}
    for name in FOLLOWED_FILES:
        try:
            sizes[name] = os.lstat(trial_dir / name).st_size
        except FileNotFoundError:
            sizes[name] = 0
    return sizes


def _all_agents() -> list[Any]:
    agents = []
    for name in _names():
        try:
            agents.append(ray.get_actor(name, namespace=NAMESPACE))
        except ValueError:
            continue
    return agents


def _names() -> list[str]:
    return [
        entry["name"]
        for entry in ray.util.list_named_actors(all_namespaces=True)
        if entry["namespace"] == NAMESPACE and entry["name"].startswith(AGENT_PREFIX)
    ]


def _sweep_groups(experiment_id: str) -> None:
    """Give back to Ray the placement groups of an experiment that no trial on any node holds."""
    held = set()
    for agent in _all_agents():
        try:
            held.update(ray.get(agent.groups.remote()))
        except RayError:
            continue
    prefix = f"{GROUP_PREFIX}{experiment_id}-"
    for group in placement_group_table().values():
        if group["name"].startswith(prefix) and group["name"] not in held and group["state"] != "REMOVED":
            _remove_group(group["name"])


def _no_room(bundle: dict[str, float], labels: dict[str, str]) -> str:
    """Why Ray could not place a trial's resources at once: no node has that much free now, or none has it at all
    (a node that would may join the cluster later, so the trial waits either way)."""
    need = ", ".join(f"{name} {amount:g}" for name, amount in bundle.items())
    if labels:
        return f"no node of the Ray cluster labelled {labels} has {need} free now"
    nodes = [node["Resources"] for node in ray.nodes() if node["Alive"]]
    if any(all(node.get(name, 0) >= amount for name, amount in bundle.items()) for node in nodes):
        return f"no node of the Ray cluster has {need} free now"
    return f"no node of the Ray cluster has {need} (until one that has joins the cluster)"


def _group_state(name: str) -> str | None:
    """A placement group's state as Ray's control store has it (None: it knows no such group)."""
    try:
        return placement_group_table(get_placement_group(name))["state"]
    except (ValueError, RayError):
        return None


def _remove_groups(names: list[str]) -> None:
    for name in names:
        _remove_group(name)


def _remove_group(name: str) -> None:
    try:
        remove_placement_group(get_placement_group(name))
    except (ValueError, RayError):
        pass  # already gone


def _params_bytes(params: dict[str, Any]) -> bytes:
    return (json.dumps(params, indent=2) + "\n").encode()


def _append(path: Path, data: bytes) -> None:
    fd = open_append(path)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def _inside(name: str) -> bool:
    """Whether a file name the node sent stays inside the trial's folder."""
    return not Path(name).is_absolute() and ".." not in Path(name).parts
