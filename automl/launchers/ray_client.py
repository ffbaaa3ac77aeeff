"""Trials on a Ray cluster, as the daemon sees them: every call goes to the cluster's bridge process.

The daemon never imports Ray. `Bridge` starts `ray_bridge` as a child process per cluster address, which is Ray's
driver and hosts the `RayLauncher` of each experiment (`ray.py`); `RayClusterLauncher` and `BridgedTrial` forward
the launcher contract's calls to it. When the bridge ends (the cluster stopped answering, or Ray ended it), the
daemon goes on: each experiment on that cluster says why it waits (`watch`), queued trials stay queued, running
trials are followed from what their folders hold, and the bridge is started again, at growing intervals, until
it joins the cluster. Once it is back, each running trial is found again on its node by its
identity, and followed as before. An experiment whose cluster stays away longer than its `reconnect_timeout` ends
failed, its trials `interrupted`; what they left running on the nodes is killed if the cluster comes back while
the daemon runs.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import socket
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ..config.model import GpuPolicy
from ..paths import set_aside
from .base import METRICS_FILE, Locator, NoRoom, ProcessUsage, TrialIdentity, TrialLost, TrialSpec
from .metrics_file import ReadResult, read_new
from .ray_address import RayOptions, address_problem
from .ray_bridge import GAVE_UP, HELLO, receive, send

CONNECT_TIMEOUT = 60.0  # seconds a new bridge may take to join the cluster before it is ended and tried again
RETRY_EVERY = 2.0  # seconds before the first try to reach a cluster that went away; doubled after each failed one
RETRY_MOST = 30.0  # seconds between tries at most
CLOSE_WAIT = 10.0  # seconds a bridge no longer needed may take to give back what it holds and exit

log = logging.getLogger("automl")

Report = Callable[[str, bool], None]  # (why, fatal): what a launcher tells the experiment loop of its cluster


class BridgeDown(ConnectionError):
    """The bridge to the cluster is not running now: the call was not made, or its answer is lost."""


class Bridge:
    """The daemon's link to one Ray cluster: its bridge process, started on first use and again after it ends."""

    def __init__(self, address: str, upload: str | None = None):
        self.address = address
        self.upload = upload  # the folder this bridge's Ray job ships to the nodes (None: none)
        self.up = asyncio.Event()
        self.generation = 0  # counts the bridge processes started: a handle id is valid only on its own
        self.away_since: float | None = None  # wall-clock time the bridge ended, while it is down
        self.cause = ""  # why it is down
        self.launchers: dict[int, RayClusterLauncher] = {}
        self.abandoned: set[TrialIdentity] = set()  # trials to kill on the nodes once the cluster answers again
        self._process: asyncio.subprocess.Process | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._calls: dict[int, asyncio.Future[Any]] = {}
        self._ids = itertools.count()
        self._connecting = asyncio.Lock()
        self._recovering: asyncio.Task[None] | None = None
        self._reading: asyncio.Task[None] | None = None

    async def ready(self) -> None:
        """Start the bridge unless it runs; BridgeDown while the cluster is away."""
        if self.up.is_set():
            return
        if self._recovering is not None and not self._recovering.done():
            raise BridgeDown(self.cause)
        async with self._connecting:
            if not self.up.is_set() and not await self._connect():
                self._went_away(self.cause)
                raise BridgeDown(self.cause)

    async def call(self, op: str, *args: Any) -> Any:
        """One call to the bridge, answered; its exception when it failed there; BridgeDown when the bridge is not
        running or ends before it answers."""
        if not self.up.is_set() or self._writer is None:
            raise BridgeDown(self.cause)
        call_id = next(self._ids)
        answer: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._calls[call_id] = answer
        try:
            try:
                await send(self._writer, (call_id, op, args))
            except (ConnectionError, RuntimeError) as e:  # the link closed under the call
                raise BridgeDown(self.cause or str(e)) from e
            return await answer
        finally:
            self._calls.pop(call_id, None)

    def register(self, launcher: RayClusterLauncher) -> None:
        """Serve an experiment's launcher, on this bridge and each later one."""
        self.launchers[launcher.id] = launcher
        if self.up.is_set():
            asyncio.ensure_future(self._introduce(launcher))
        elif self.away_since is not None:  # a new experiment on a cluster that is away waits for it too
            launcher.away(self.away_since, self.cause)

    async def _introduce(self, launcher: RayClusterLauncher) -> None:
        try:
            await self.call("launcher", launcher.id, *launcher.settings())
        except BridgeDown:
            pass  # the next bridge is told of it when it starts

    async def _connect(self) -> bool:
        """Start a bridge process and wait until it joined the cluster; whether it did (else `cause` says why)."""
        problem = await asyncio.to_thread(address_problem, self.address)
        if problem is not None:
            self.cause = problem
            return False
        ours, theirs = socket.socketpair()
        try:
            self._process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "automl.launchers.ray_bridge", self.address, str(theirs.fileno()),
                *([self.upload] if self.upload else []),
                pass_fds=(theirs.fileno(),), stdin=asyncio.subprocess.DEVNULL,
            )  # fmt: skip
        finally:
            theirs.close()
        reader, self._writer = await asyncio.open_unix_connection(sock=ours)
        try:
            _, joined, why = await asyncio.wait_for(receive(reader), CONNECT_TIMEOUT)
        except (asyncio.TimeoutError, asyncio.IncompleteReadError, ConnectionError):
            joined, why = False, f"Ray did not connect within {CONNECT_TIMEOUT:g} s"
        if not joined:
            await self._end_process()
            self.cause = f"cannot join it: {why}"
            return False
        self.generation += 1
        self.up.set()
        self._reading = asyncio.ensure_future(self._read(reader))
        try:
            for launcher in list(self.launchers.values()):
                await self.call("launcher", launcher.id, *launcher.settings())
        except BridgeDown:
            return False  # it ended at once: tried again
        return True

    async def _read(self, reader: asyncio.StreamReader) -> None:
        """Hand each answer to its call; when the bridge ends, fail the calls still waiting and wait for the
        cluster."""
        try:
            while True:
                call_id, ok, result = await receive(reader)
                answer = self._calls.get(call_id)
                if answer is None or answer.done() or call_id == HELLO:
                    continue
                if ok:
                    answer.set_result(result)
                else:
                    answer.set_exception(result)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        code = await self._end_process()
        self._went_away("it stopped answering" if code == GAVE_UP else f"Ray ended its driver (exit status {code})")

    async def close(self) -> None:
        """End the bridge process once nothing needs it: it gives Ray back what it holds idle, then exits."""
        self.up.clear()
        if self._reading is not None:
            self._reading.cancel()
        await self._end_process(CLOSE_WAIT)

    async def _end_process(self, wait: float = 0.0) -> int | None:
        """Close the link and reap the bridge process, killing it if it still runs after `wait` seconds; its exit
        status."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        process, self._process = self._process, None
        if process is None:
            return None
        try:
            return await asyncio.wait_for(process.wait(), wait)
        except asyncio.TimeoutError:
            pass
        try:
            process.kill()
        except ProcessLookupError:
            pass
        return await process.wait()

    def _went_away(self, cause: str) -> None:
        """The bridge is down: fail the calls waiting on it, tell each launcher, and try again while any needs it."""
        self.up.clear()
        self.cause = cause
        for answer in self._calls.values():
            if not answer.done():
                answer.set_exception(BridgeDown(cause))
        if self.away_since is None:
            self.away_since = time.time()
            log.warning("lost the Ray cluster at %s: %s; trying again from %g s on", self.address, cause, RETRY_EVERY)
            for launcher in list(self.launchers.values()):
                launcher.away(self.away_since, cause)
        if self._recovering is None or self._recovering.done():
            self._recovering = asyncio.ensure_future(self._recover())

    async def _recover(self) -> None:
        """Start a bridge again, after `RETRY_EVERY` seconds and then at doubling intervals up to `RETRY_MOST`, until
        one joins; then tell the launchers, and kill what abandoned trials left running. Stops trying once nothing
        needs the cluster."""
        delay = RETRY_EVERY
        while self.launchers or self.abandoned:
            await asyncio.sleep(delay)
            delay = min(RETRY_MOST, 2 * delay)
            async with self._connecting:
                if not await self._connect():
                    continue
            away, self.away_since = self.away_since, None
            log.warning("the Ray cluster at %s answers again after %.0f s", self.address, time.time() - (away or 0))
            for launcher in list(self.launchers.values()):
                launcher.back()
            await self._kill_abandoned()
            return

    async def _kill_abandoned(self) -> None:
        """Kill, on every node, what the trials of experiments that gave up on the cluster left running."""
        for identity in list(self.abandoned):
            try:
                pids = await self.call("kill_leftovers", identity)
            except BridgeDown:
                return
            self.abandoned.discard(identity)
            if pids:
                log.warning("killed what trial %d of %s left on the cluster: %s", identity.trial_id,
                            identity.experiment_id, pids)  # fmt: skip


_bridges: dict[tuple[str, str | None], Bridge] = {}
_launcher_ids = itertools.count(1)


def bridge_for(address: str, upload: str | None = None) -> Bridge:
    """This process's bridge to the cluster at `address` (one per cluster, and per folder uploaded to it: Ray
    ships a folder for a whole driver)."""
    key = (address, upload)
    if key not in _bridges:
        _bridges[key] = Bridge(address, upload)
    return _bridges[key]


async def cluster_gpus(address: str) -> list[dict[str, Any]]:
    """Every GPU of every live node of the cluster, as its nodes' agents see them (none while it is away)."""
    bridge = bridge_for(address)
    try:
        await bridge.ready()
        return await bridge.call("gpus")
    except BridgeDown:
        return []
    except RuntimeError as e:  # Ray failed in a way not foreseen: this machine's GPUs are listed still
        log.warning("cannot list the GPUs of the Ray cluster at %s: %s", address, e)
        return []


class RayClusterLauncher:
    """An experiment's launcher on a Ray cluster: the launcher contract, carried out by the cluster's bridge (see
    the module docstring)."""

    def __init__(
        self,
        options: RayOptions,
        gpus: float = 0,
        environment: Mapping[str, str] | None = None,
        policy: GpuPolicy | None = None,
    ):
        self.id = next(_launcher_ids)
        self.options = options
        self.gpus = gpus
        self.policy = policy or GpuPolicy()
        self.environment = dict(os.environ if environment is None else environment)
        self.bridge = bridge_for(options.address, options.upload)
        self.gone: str | None = None  # why this experiment gave up on its cluster
        self._back = asyncio.Event()
        self._reports: list[Report] = []
        self._unsure: set[TrialIdentity] = set()  # trials whose start was cut short by the bridge's end
        self._deadline: asyncio.TimerHandle | None = None
        self.trials: set[BridgedTrial] = set()  # the trials followed now
        self._closing: asyncio.Future[None] | None = None  # the bridge's end, once nothing else needs it
        self.bridge.register(self)

    def settings(self) -> tuple[Any, ...]:
        """What the bridge needs to make this experiment's `RayLauncher`."""
        return self.options, self.gpus, self.environment, self.policy

    def watch(self, report: Report) -> None:
        """Have `report(why, fatal)` told when the cluster goes away, comes back, or is given up on (fatal)."""
        self._reports.append(report)

    async def start(self, spec: TrialSpec) -> BridgedTrial:
        """Start the trial on the cluster; `NoRoom` while the cluster is away (the trial waits in the queue)."""
        identity = TrialIdentity(spec.experiment_id, spec.trial_id)
        try:
            await self.bridge.ready()
            if identity in self._unsure:
                found = await self._started_before(identity, spec.trial_dir)
                if found is not None:
                    return found
            hid, locator, _ = await self.bridge.call("start", self.id, spec)
        except RuntimeError as e:  # Ray failed in a way the launcher did not foresee: the trial fails, saying how
            raise OSError(f"Ray could not start the trial: {e}") from None
        except BridgeDown as e:
            if self.gone:
                raise OSError(self.gone) from None
            if spec.trial_dir.exists():
                self._unsure.add(identity)  # it may run on a node: found by its identity once the cluster is back
            raise NoRoom(f"waiting for the Ray cluster: {e}") from None
        return BridgedTrial(identity, locator, spec.trial_dir, self, hid)

    async def _started_before(self, identity: TrialIdentity, trial_dir: Path) -> BridgedTrial | None:
        """A trial whose earlier start the bridge's end cut short: its handle if it runs on a node, else None with
        its folder set aside for a fresh start."""
        hid, locator, known = await self.bridge.call("attach", self.id, identity, None, trial_dir)
        self._unsure.discard(identity)
        if known and locator is not None:
            return BridgedTrial(identity, locator, trial_dir, self, hid)
        set_aside(trial_dir)
        return None

    async def attach(self, identity: TrialIdentity, locator: Locator | None, trial_dir: Path) -> BridgedTrial:
        """After a daemon restart: the trial found on its node by its identity. While the cluster is away, a handle
        that finds it once the cluster is back."""
        try:
            await self.bridge.ready()
            hid, found, _ = await self.bridge.call("attach", self.id, identity, locator, trial_dir)
        except BridgeDown:
            return BridgedTrial(identity, locator, trial_dir, self, None)
        return BridgedTrial(identity, found, trial_dir, self, hid)

    async def kill_leftovers(self, identity: TrialIdentity) -> list[int]:
        """SIGKILL now, on every node, what a trial that ended while no daemon watched left running; their pids
        (later, once the cluster answers, when it is away now)."""
        try:
            await self.bridge.ready()
            return await self.bridge.call("kill_leftovers", identity)
        except BridgeDown:
            self.abandon(identity)
            return []

    async def back_or_lost(self) -> None:
        """Return once the cluster answers again; `TrialLost` once this experiment gave up on it."""
        while not self.bridge.up.is_set():
            if self.gone:
                raise TrialLost(self.gone)
            self._back.clear()
            await self._back.wait()
        if self.gone:
            raise TrialLost(self.gone)

    def away(self, since: float, cause: str) -> None:
        """The bridge ended: say why the experiment waits, and give up on the cluster after the timeout."""
        timeout = self.options.reconnect_timeout
        until = time.strftime("%H:%M:%S", time.localtime(since + timeout))
        address = self.options.address
        self._tell(f"waiting for the Ray cluster at {address} ({cause}); its trials end interrupted unless it is back "
                   f"by {until}")  # fmt: skip
        self._deadline = asyncio.get_running_loop().call_later(max(0.0, since + timeout - time.time()), self._give_up)

    def back(self) -> None:
        """The cluster answers again: the experiment goes on."""
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        if not self.gone:
            self._tell(f"the Ray cluster at {self.options.address} is back; the experiment goes on")
        self._back.set()

    def abandon(self, identity: TrialIdentity) -> None:
        """A trial of this experiment that may still run on a node when its experiment ends: kill it there once
        the cluster answers."""
        self.bridge.abandoned.add(identity)

    def close(self) -> None:
        """The experiment ended: its bridge no longer serves it, and ends when it serves nothing else."""
        self.bridge.launchers.pop(self.id, None)
        if self._deadline is not None:
            self._deadline.cancel()
        if not self.bridge.launchers and not self.bridge.abandoned and self.bridge.up.is_set():
            self._closing = asyncio.ensure_future(self.bridge.close())

    def _give_up(self) -> None:
        timeout = self.options.reconnect_timeout
        self.gone = f"the Ray cluster at {self.options.address} was unreachable for more than {timeout:g} s"
        log.warning("%s: its experiment ends", self.gone)
        for trial in self.trials:
            self.abandon(trial.identity)  # it may run on: killed if the cluster comes back while the daemon runs
        for report in self._reports:
            report(self.gone, True)
        self._back.set()

    def _tell(self, why: str) -> None:
        for report in self._reports:
            report(why, False)


class BridgedTrial:
    """One trial on a Ray node, through the bridge: its folder is a mirror of the node's, kept up by the bridge;
    while the cluster is away the mirror is read as far as it got, and once it is back the trial is found again."""

    def __init__(
        self,
        identity: TrialIdentity,
        locator: Locator | None,
        trial_dir: Path,
        launcher: RayClusterLauncher,
        handle_id: int | None,
    ):
        self.identity, self.locator, self.trial_dir = identity, locator, trial_dir
        self._launcher = launcher
        self._bridge = launcher.bridge
        self._handle = (self._bridge.generation, handle_id)  # the bridge's handle of it, on the bridge of then
        self._usage = ProcessUsage()
        self._file: Any = None  # the mirror metrics file read so far
        self._sampling: asyncio.Future[None] | None = None
        self._ending: float | None = None  # a termination asked for while the cluster was away: its grace
        self._killing = False
        self._ended = False  # `wait` returned: the folder here is complete, and the bridge is done with it
        launcher.trials.add(self)

    @property
    def _id(self) -> int | None:
        """The bridge's handle of the trial, when the bridge running now holds one."""
        generation, handle_id = self._handle
        return handle_id if generation == self._bridge.generation and self._bridge.up.is_set() else None

    async def read_metrics(self, offset: int, seq: int, objective: str, *, final: bool = False) -> ReadResult:
        """The new metric records: pulled from the node first while it runs and the bridge does, else read from
        the mirror."""
        handle_id = None if self._ended else self._id
        if handle_id is not None:
            try:
                result, self._usage = await self._bridge.call("read_metrics", handle_id, offset, seq, objective, final)
                self._file = result.identity
                return result
            except BridgeDown:
                pass
        result = read_new(self.trial_dir / METRICS_FILE, offset, seq, objective, identity=self._file, final=final)
        self._file = result.identity
        return result

    async def wait(self) -> int | None:
        """The trial's exit status once its folder is complete here; across the cluster's absences it is found
        again on its node; `TrialLost` when its node left, or the experiment gave up on the cluster."""
        try:
            while True:
                handle_id = self._id
                if handle_id is None:
                    handle_id = await self._find_again()
                try:
                    code, self._usage = await self._bridge.call("wait", handle_id)
                    return code
                except BridgeDown:
                    continue
        finally:
            self._ended = True
            self._launcher.trials.discard(self)

    async def _find_again(self) -> int:
        """Once the cluster is back: the trial on its node by its identity, and what was asked of it meanwhile."""
        while True:
            await self._launcher.back_or_lost()
            try:
                handle_id, _, known = await self._bridge.call(
                    "attach", self._launcher.id, self.identity, self.locator, self.trial_dir
                )
                break
            except BridgeDown:
                continue
        if not known:
            address = self._launcher.options.address
            raise TrialLost(f"the Ray cluster at {address} came back without it (its node left or restarted)")
        self._handle = (self._bridge.generation, handle_id)
        if self._killing:
            await self._bridge.call("kill", handle_id)
        elif self._ending is not None:
            await self._bridge.call("terminate", handle_id, self._ending)
        return handle_id

    def sample(self) -> set[int]:
        """Ask the node for the trial tree's CPU time and peak memory (taken when the answer comes); no pids of
        this machine's processes."""
        handle_id = self._id
        if handle_id is not None and self._sampling is None:
            self._sampling = asyncio.ensure_future(self._sample(handle_id))
        return set()

    async def _sample(self, handle_id: int) -> None:
        try:
            self._usage = await self._bridge.call("sample", handle_id)
        except (BridgeDown, KeyError, OSError, RuntimeError):
            pass
        finally:
            self._sampling = None

    def usage(self) -> ProcessUsage:
        """What the node measured so far, and what the wrapper recorded at the trial's exit once copied back."""
        return self._usage

    async def terminate(self, grace: float) -> None:
        """SIGTERM the trial's whole process tree on its node, SIGKILL what is left after `grace` seconds (once the
        cluster is back, when it is away)."""
        self._ending = grace
        handle_id = self._id
        if handle_id is not None:
            try:
                await self._bridge.call("terminate", handle_id, grace)
            except BridgeDown:
                pass

    def kill(self) -> None:
        """SIGKILL the trial's whole process tree on its node now (once the cluster is back, when it is away)."""
        self._killing = True
        handle_id = self._id
        if handle_id is not None:
            asyncio.ensure_future(self._kill(handle_id))

    async def _kill(self, handle_id: int) -> None:
        try:
            await self._bridge.call("kill", handle_id)
        except (BridgeDown, KeyError):
            pass

    async def end_leftovers(self, grace: float) -> list[int]:
        """End what the trial left running on its node, copy what they wrote, and free the node's copy."""
        handle_id = self._id
        if handle_id is None:
            if self._launcher.gone:
                self._launcher.abandon(self.identity)
            return []
        try:
            pids, self._usage = await self._bridge.call("end_leftovers", handle_id, grace)
        except BridgeDown:
            self._launcher.abandon(self.identity)
            return []
        return pids
