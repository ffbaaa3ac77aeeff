"""The daemon's Ray driver, in a child process: `python -m automl.launchers.ray_bridge ADDRESS FD [UPLOAD]`.

Ray ends a driver process that loses its cluster for about a minute. Were the daemon the driver, a cluster that goes
away would end the daemon and every experiment in it, local ones included; so the daemon joins a cluster only
through this process (`ray_client.Bridge` starts it), which hosts the experiments' `RayLauncher`s and their trials'
handles and answers the daemon's calls over a socket pair. When the cluster stops answering for `UNREACHABLE_AFTER`
seconds this process exits; the daemon then waits for the cluster and starts a new one, which finds the running
trials again by their identity.

Each message is a 4-byte big-endian length and a pickle: a call `(id, op, args)`, answered `(id, ok, result)`
where a failed call's result is its exception. The socket pair is private to the two processes, so nothing else
can send one.
"""

from __future__ import annotations

import asyncio
import os
import pickle
import socket
import struct
import sys
from pathlib import Path
from typing import Any

HEADER = struct.Struct(">I")
HELLO = -1  # the id of the first message this process sends: None once it joined the cluster, else why it could not
WATCH_EVERY = 2.0  # seconds between looks at whether the cluster answers
UNREACHABLE_AFTER = 10.0  # seconds without an answer from the cluster after which this process gives up on it
GAVE_UP = 3  # this process's exit status when the cluster stopped answering


async def send(writer: asyncio.StreamWriter, message: Any) -> None:
    """Write one framed message."""
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    writer.write(HEADER.pack(len(data)) + data)
    await writer.drain()


async def receive(reader: asyncio.StreamReader) -> Any:
    """Read one framed message; `asyncio.IncompleteReadError` once the other side has closed."""
    size = HEADER.unpack(await reader.readexactly(HEADER.size))[0]
    return pickle.loads(await reader.readexactly(size))


class BridgeServer:
    """Answers the daemon's calls: the experiments' launchers by id, the trials' handles by id."""

    def __init__(self, address: str, writer: asyncio.StreamWriter):
        self.address = address
        self.writer = writer
        self.launchers: dict[int, Any] = {}
        self.handles: dict[int, Any] = {}
        self._next_handle = 0
        self._tasks: set[asyncio.Task[None]] = set()

    async def serve(self, reader: asyncio.StreamReader) -> None:
        """Answer each call as its own task until the daemon closes its end."""
        while True:
            try:
                call_id, op, args = await receive(reader)
            except asyncio.IncompleteReadError:
                return
            task = asyncio.get_running_loop().create_task(self._answer(call_id, op, args))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _answer(self, call_id: int, op: str, args: tuple[Any, ...]) -> None:
        try:
            result, ok = await getattr(self, f"op_{op}")(*args), True
        except Exception as e:  # noqa: BLE001 - any failure of a call is the caller's to handle, never this process's end
            result, ok = _portable(e), False
        try:
            await send(self.writer, (call_id, ok, result))
        except (ConnectionError, RuntimeError):
            pass  # the daemon is gone: nothing waits for the answer

    def _keep(self, handle: Any) -> tuple[int, Any, bool]:
        """Hold a trial's handle for the daemon's next calls: its id, its locator, whether a node knows the trial."""
        self._next_handle += 1
        self.handles[self._next_handle] = handle
        return self._next_handle, handle.locator, handle.agent is not None

    async def op_launcher(self, launcher_id: int, options: Any, gpus: float, environment: Any, policy: Any) -> None:
        from .ray import RayLauncher

        self.launchers[launcher_id] = RayLauncher(options, gpus, environment, policy)

    async def op_start(self, launcher_id: int, spec: Any) -> tuple[int, Any, bool]:
        return self._keep(await self.launchers[launcher_id].start(spec))

    async def op_attach(self, launcher_id: int, identity: Any, locator: Any, trial_dir: Path) -> tuple[int, Any, bool]:
        return self._keep(await self.launchers[launcher_id].attach(identity, locator, trial_dir))

    async def op_kill_leftovers(self, identity: Any) -> list[int]:
        from .ray import kill_leftovers

        return await asyncio.to_thread(kill_leftovers, self.address, identity)

    async def op_read_metrics(self, handle_id: int, offset: int, seq: int, objective: str, final: bool) -> Any:
        handle = self.handles[handle_id]
        return await handle.read_metrics(offset, seq, objective, final=final), handle.usage()

    async def op_wait(self, handle_id: int) -> tuple[int | None, Any]:
        handle = self.handles[handle_id]
        try:
            return await handle.wait(), handle.usage()
        except Exception:
            del self.handles[handle_id]  # its node is gone: nothing more to ask of it
            raise

    async def op_sample(self, handle_id: int) -> Any:
        handle = self.handles[handle_id]
        await handle.sample_now()
        return handle.usage()

    async def op_terminate(self, handle_id: int, grace: float) -> None:
        await self.handles[handle_id].terminate(grace)

    async def op_kill(self, handle_id: int) -> None:
        self.handles[handle_id].kill()

    async def op_end_leftovers(self, handle_id: int, grace: float) -> tuple[list[int], Any]:
        handle = self.handles.pop(handle_id)
        return await handle.end_leftovers(grace), handle.usage()

    async def op_gpus(self) -> list[dict[str, Any]]:
        from .ray import cluster_gpus

        return await cluster_gpus(self.address)

    async def watch_cluster(self) -> None:
        """Exit once the cluster has not answered for `UNREACHABLE_AFTER` seconds (Ray would end this process a
        little later, with nothing said to the daemon)."""
        import ray

        silent = 0.0
        while True:
            await asyncio.sleep(WATCH_EVERY)
            try:
                await asyncio.wait_for(asyncio.to_thread(ray.nodes), UNREACHABLE_AFTER)
                silent = 0.0
            except Exception as e:  # noqa: BLE001 - whatever the cluster's failure looks like, count it
                silent += WATCH_EVERY if not isinstance(e, asyncio.TimeoutError) else UNREACHABLE_AFTER
                if silent >= UNREACHABLE_AFTER:
                    why = f"no answer for {UNREACHABLE_AFTER:g} s" if isinstance(e, asyncio.TimeoutError) else repr(e)
                    print(f"automl: the Ray cluster at {self.address} stopped answering: {why}", file=sys.stderr)
                    sys.stderr.flush()
                    os._exit(GAVE_UP)  # a thread may still be stuck in a call to the cluster


def _portable(error: Exception) -> Exception:
    """An exception the daemon can unpickle without Ray: the launcher's own kinds as they are, others as text."""
    from .base import NoRoom, TrialLost

    if isinstance(error, (NoRoom, TrialLost, KeyError)) or type(error) is OSError:
        return error
    if isinstance(error, OSError):
        return OSError(error.errno, error.strerror) if error.strerror else OSError(str(error))
    return RuntimeError(f"{type(error).__name__}: {error}")


async def _main(address: str, fd: int, upload: str | None) -> None:
    """Join the cluster (shipping `upload` to its nodes), say so, and answer calls until the daemon closes its
    end."""
    reader, writer = await asyncio.open_unix_connection(sock=socket.socket(fileno=fd))
    from .ray import connect

    try:
        await connect(address, upload)
    except Exception as e:  # noqa: BLE001 - any failure to join is told to the daemon, which waits and tries again
        await send(writer, (HELLO, False, f"{type(e).__name__}: {e}"))
        return
    server = BridgeServer(address, writer)
    await send(writer, (HELLO, True, None))
    watching = asyncio.get_running_loop().create_task(server.watch_cluster())
    try:
        await server.serve(reader)
    finally:
        watching.cancel()


if __name__ == "__main__":
    asyncio.run(_main(sys.argv[1], int(sys.argv[2]), sys.argv[3] if len(sys.argv) > 3 else None))
