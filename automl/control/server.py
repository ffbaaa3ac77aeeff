"""The daemon's control socket: answers protocol requests from this user's clients and pushes events to subscribers.

Owner-only (0600 in a 0700 folder, peer uid checked per connection); bad input gets an error and never stops it.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import socket
import stat
import struct
from collections import deque
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import DaemonError, UserError
from ..states import EventKind
from . import protocol

log = logging.getLogger(__name__)

Handler = Callable[[str, dict[str, Any]], Awaitable[Any]]

MAX_QUEUED_EVENTS = 10_000
MAX_CLIENTS = 256  # connections served at once: bounds the descriptors clients can take from running experiments
ACCEPT_BACKLOG = 32  # connections queued and accepted per round: a small one keeps a flood's transient descriptors few
IDLE_TIMEOUT_S = 60.0  # a connection that sends no complete request for this long is closed (subscribers never are)


class DaemonAlreadyRunning(UserError):
    """Another daemon answers on the control socket."""


class ControlServer:
    """Serves the control protocol on a Unix socket only this user can reach; `handler` answers `ops`, not subscribe.

    Requests on one connection are answered in order; connections are served concurrently.
    """

    def __init__(
        self,
        socket_path: Path,
        handler: Handler,
        ops: Collection[str],
        *,
        max_queued_events: int = MAX_QUEUED_EVENTS,
        max_clients: int = MAX_CLIENTS,
        idle_timeout: float = IDLE_TIMEOUT_S,
    ) -> None:
        if protocol.SUBSCRIBE in ops:
            raise ValueError(f"'{protocol.SUBSCRIBE}' is served by the control server itself; leave it out of ops")
        self.socket_path = Path(socket_path)
        self._handler = handler
        self._ops = frozenset(ops)
        self._max_queued_events = max_queued_events
        self._max_clients = max_clients
        self._idle_timeout = idle_timeout
        self._uid = os.getuid()
        self._server: asyncio.AbstractServer | None = None
        self._socket_identity: tuple[int, int] | None = None
        self._connections: dict[asyncio.Task[None], _Connection] = {}
        self._subscribers: set[_Subscriber] = set()
        self._lingering: set[asyncio.WriteTransport] = set()

    async def start(self) -> None:
        """Create the folder and socket and start serving; raises UserError if that is unsafe or another daemon runs."""
        if self._server is not None:
            raise RuntimeError("the control server is already started")
        _check_platform()
        _check_path_length(self.socket_path)
        _prepare_folder(self.socket_path.parent)
        await _remove_stale_socket(self.socket_path)
        sock = _bind(self.socket_path)
        try:
            info = os.stat(self.socket_path)
            self._socket_identity = (info.st_dev, info.st_ino)
            self._server = await asyncio.start_unix_server(
                self._serve, sock=sock, limit=protocol.MAX_MESSAGE_BYTES, backlog=ACCEPT_BACKLOG
            )
        except BaseException:
            sock.close()
            self._remove_socket_file()
            raise

    async def close(self) -> None:
        """Stop listening, drop every connection (cancelling requests in progress) and remove the socket file."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        self._subscribers.clear()
        tasks = list(self._connections)
        for task, connection in self._connections.items():
            _abort(connection.writer.transport)
            task.cancel()
        for transport in self._lingering:
            _abort(transport)
        self._lingering.clear()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()
        self._remove_socket_file()

    async def __aenter__(self) -> ControlServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def publish(self, kind: EventKind, experiment: str | None, data: dict[str, Any]) -> None:
        """Queue an event for every matching subscriber, without waiting; a subscriber too far behind is dropped.

        Call from the server's event loop. A `kind` that is no EventKind (a typo) raises ValueError at once; nothing
        else raises: an event whose data is not JSON is logged and dropped.
        """
        kind = EventKind(kind)
        try:
            line = protocol.encode(protocol.event_message(kind, experiment, data))
        except (TypeError, ValueError, RecursionError):
            log.exception("event %r of experiment %s is not JSON; dropped", kind.value, experiment)
            return
        for subscriber in list(self._subscribers):
            if subscriber.wants(kind, experiment) and not subscriber.offer(line):
                self._drop(subscriber)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        try:
            if self._peer_allowed(writer) and (connection := self._admit(task, writer)) is not None:
                await self._converse(reader, connection)
        except ConnectionError:
            pass
        except asyncio.CancelledError:
            if self._server is not None:
                raise
            # cancelled by close(): end quietly (Python 3.11's stream callback logs a cancelled connection task)
        except Exception:
            log.exception("control connection failed")
        finally:
            self._connections.pop(task, None)
            self._close_soon(writer)

    def _peer_allowed(self, writer: asyncio.StreamWriter) -> bool:
        """Whether the connecting process runs as our uid (SO_PEERCRED); if not, tell it so."""
        uid = pid = None
        try:
            creds = writer.get_extra_info("socket").getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _CREDS.size)
            pid, uid, _ = _CREDS.unpack(creds)
        except (AttributeError, OSError, struct.error):
            pass
        if uid == self._uid:
            return True
        log.warning("refused a control connection from uid %s (pid %s)", uid, pid)
        writer.write(
            protocol.encode(
                protocol.error_reply(
                    None,
                    protocol.FORBIDDEN,
                    f"this daemon accepts connections only from its own user (uid {self._uid})",
                )
            )
        )
        return False

    def _admit(self, task: asyncio.Task[None], writer: asyncio.StreamWriter) -> _Connection | None:
        """Serve a new connection if there is room, made by closing the longest-idle one when all places are
        taken; when every connection is subscribed or waiting for an answer, refuse it with a `busy` error."""
        if len(self._connections) >= self._max_clients and not self._evict_idlest():
            log.warning("refused a control connection: all %d places are in use", self._max_clients)
            writer.write(
                protocol.encode(
                    protocol.error_reply(
                        None,
                        protocol.BUSY,
                        f"the daemon serves at most {self._max_clients} connections at once and all "
                        "are in use; try again later",
                    )
                )
            )
            return None
        connection = _Connection(writer, asyncio.get_running_loop().time())
        self._connections[task] = connection
        return connection

    def _evict_idlest(self) -> bool:
        """Close the connection that has waited longest without a request; False if none is idle."""
        idle = [(c.last_active, task) for task, c in self._connections.items() if not (c.busy or c.subscribed)]
        if not idle:
            return False
        _, task = min(idle, key=lambda pair: pair[0])
        self._say_goodbye(
            self._connections.pop(task).writer,
            "closed to make room for a new connection "
            f"(at most {self._max_clients} at once): it sent no request for the longest",
        )
        return True

    def _say_goodbye(self, writer: asyncio.StreamWriter, why: str) -> None:
        """Close an idle connection after one line saying why; its task then sees the end of its input."""
        if not writer.transport.is_closing():
            writer.write(protocol.encode(protocol.error_reply(None, protocol.IDLE, why)))
        self._close_soon(writer)

    async def _converse(self, reader: asyncio.StreamReader, connection: _Connection) -> None:
        """Answer requests in order until the client closes or idles too long, the line limit is broken, or it
        subscribes."""
        writer = connection.writer
        while True:
            try:
                line = await asyncio.wait_for(reader.readline(), self._idle_timeout)
            except asyncio.TimeoutError:
                self._say_goodbye(writer, f"closed after {self._idle_timeout:g} s without a request")
                return
            except (asyncio.LimitOverrunError, ValueError):
                writer.write(
                    protocol.encode(
                        protocol.error_reply(
                            None,
                            protocol.TOO_LARGE,
                            f"a message may be at most {protocol.MAX_MESSAGE_BYTES} bytes; closing this connection",
                        )
                    )
                )
                return
            if not line:
                return
            if not line.strip():
                continue
            connection.busy = True
            reply, subscription = await self._answer(line)
            writer.write(reply)
            if subscription is not None:
                connection.subscribed = True
                await self._stream_events(subscription, reader, writer)
                return
            await writer.drain()
            connection.busy = False
            connection.last_active = asyncio.get_running_loop().time()

    async def _answer(self, line: bytes) -> tuple[bytes, protocol.SubscribeArgs | None]:
        """The encoded reply to one request line, and the subscription it asks for, if any."""
        request_id: protocol.RequestId | None = None
        try:
            request = protocol.parse_request(line)
            request_id = request.id
            if request.op == protocol.SUBSCRIBE:
                subscription = protocol.parse_subscribe_args(request.args)
                return protocol.encode(protocol.ok_reply(request_id, subscription.model_dump())), subscription
            if request.op not in self._ops:
                known = ", ".join(sorted(self._ops | {protocol.SUBSCRIBE}))
                raise protocol.ProtocolError(protocol.BAD_REQUEST, f"unknown op '{request.op}'; known ops: {known}")
            result = await self._handler(request.op, dict(request.args))
            return protocol.encode(protocol.ok_reply(request_id, result)), None
        except protocol.ProtocolError as e:
            reply_id = request_id if e.request_id is None else e.request_id
            return protocol.encode(protocol.error_reply(reply_id, e.code, e.message)), None
        except UserError as e:
            return protocol.encode(protocol.error_reply(request_id, protocol.USER_ERROR, str(e))), None
        except DaemonError as e:  # e.g. a store that takes no writes now: nothing was done, the request may be retried
            return protocol.encode(protocol.error_reply(request_id, protocol.INTERNAL, str(e))), None
        except Exception as e:
            log.exception("control op failed: %s", line[:200].decode("utf-8", "replace").strip())
            message = f"internal error: {type(e).__name__}: {e}"
            return protocol.encode(protocol.error_reply(request_id, protocol.INTERNAL, message)), None

    async def _stream_events(
        self, subscription: protocol.SubscribeArgs, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """Push matching events until the client closes its end; anything it sends meanwhile is ignored."""
        kinds = None if subscription.events is None else frozenset(subscription.events)
        subscriber = _Subscriber(subscription.experiment, kinds, writer, self._max_queued_events)
        self._subscribers.add(subscriber)
        pump = asyncio.ensure_future(subscriber.pump())
        try:
            while await reader.read(65536):
                pass
        finally:
            self._subscribers.discard(subscriber)
            pump.cancel()

    def _drop(self, subscriber: _Subscriber) -> None:
        """Disconnect a subscriber whose queue is full, after one last line saying why."""
        self._subscribers.discard(subscriber)
        subscriber.queue.clear()
        log.warning("dropped an event subscriber that fell %d events behind", self._max_queued_events)
        writer = subscriber.writer
        if not writer.transport.is_closing():
            writer.write(
                protocol.encode(
                    protocol.error_reply(
                        None,
                        protocol.OVERFLOW,
                        f"this subscriber fell more than {self._max_queued_events} events behind "
                        "and was disconnected; subscribe again and re-read the state",
                    )
                )
            )
        self._close_soon(writer)

    def _close_soon(self, writer: asyncio.StreamWriter) -> None:
        """Close once pending output is flushed, or abort after a grace period if the client does not read it."""
        transport = writer.transport
        writer.close()
        if transport.get_write_buffer_size():
            self._lingering.add(transport)
            asyncio.get_running_loop().call_later(_CLOSE_GRACE_S, self._give_up, transport)

    def _give_up(self, transport: asyncio.WriteTransport) -> None:
        self._lingering.discard(transport)
        _abort(transport)

    def _remove_socket_file(self) -> None:
        """Remove the socket file if it is still the one we bound (a newer daemon may have replaced it)."""
        try:
            info = os.stat(self.socket_path)
            if (info.st_dev, info.st_ino) == self._socket_identity:
                self.socket_path.unlink()
        except FileNotFoundError:
            pass


@dataclass
class _Connection:
    """One served connection: when it last finished a request, and whether it is answering one or subscribed
    (neither of which is idle)."""

    writer: asyncio.StreamWriter
    last_active: float
    busy: bool = False
    subscribed: bool = False


class _Subscriber:
    """One subscribed connection: its filter and a bounded queue of encoded events waiting to be written."""

    def __init__(
        self, experiment: str | None, kinds: frozenset[str] | None, writer: asyncio.StreamWriter, max_queued: int
    ) -> None:
        self.experiment = experiment
        self.kinds = kinds
        self.writer = writer
        self.max_queued = max_queued
        self.queue: deque[bytes] = deque()
        self.ready = asyncio.Event()

    def wants(self, kind: str, experiment: str | None) -> bool:
        return (self.experiment is None or experiment == self.experiment) and (self.kinds is None or kind in self.kinds)

    def offer(self, line: bytes) -> bool:
        """Queue one event; False if the queue is full."""
        if len(self.queue) >= self.max_queued:
            return False
        self.queue.append(line)
        self.ready.set()
        return True

    async def pump(self) -> None:
        """Write queued events as the client reads them; only this connection waits on a slow reader."""
        try:
            while True:
                await self.ready.wait()
                self.ready.clear()
                batch = b"".join(self.queue)
                self.queue.clear()
                self.writer.write(batch)
                await self.writer.drain()
        except ConnectionError:
            pass


_CREDS = struct.Struct("3i")
_CLOSE_GRACE_S = 5.0
_UNIX_PATH_MAX = 107


def _abort(transport: asyncio.WriteTransport) -> None:
    """Abort a transport unless it has already closed (aborting a closed one fails inside asyncio)."""
    if not transport.is_closing() or transport.get_write_buffer_size():
        transport.abort()


def _check_platform() -> None:
    if not hasattr(socket, "SO_PEERCRED"):
        raise UserError("the daemon's control socket needs Linux (SO_PEERCRED, to check who connects)")


def _check_path_length(path: Path) -> None:
    size = len(os.fsencode(path))
    if size > _UNIX_PATH_MAX:
        raise UserError(
            f"control socket path {path} is {size} bytes long; a Unix socket path may have at most "
            f"{_UNIX_PATH_MAX}: use a data directory with a shorter path"
        )


def _prepare_folder(folder: Path) -> None:
    """Make the socket's folder exist, belong to us and be 0700; refuse one owned by another user."""
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    except FileExistsError:
        raise UserError(f"control socket folder {folder} exists and is not a folder") from None
    info = os.stat(folder)
    uid = os.getuid()
    if info.st_uid != uid:
        raise UserError(
            f"control socket folder {folder} belongs to uid {info.st_uid}, not to this user (uid {uid}); "
            "use a data directory of your own"
        )
    if stat.S_IMODE(info.st_mode) != 0o700:
        os.chmod(folder, 0o700)


async def _remove_stale_socket(path: Path) -> None:
    """Remove a socket file that nothing answers on; raise if a daemon answers, or if the path is not a socket."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(info.st_mode):
        raise UserError(f"{path} exists and is not a socket; move it away to start the daemon")
    try:
        _, writer = await asyncio.wait_for(asyncio.open_unix_connection(str(path)), timeout=5.0)
    except (ConnectionRefusedError, FileNotFoundError):
        path.unlink(missing_ok=True)
        return
    except asyncio.TimeoutError:
        raise DaemonAlreadyRunning(f"a daemon is already running on {path} (it accepts no connections)") from None
    writer.close()
    raise DaemonAlreadyRunning(f"a daemon is already running on {path}")


def _bind(path: Path) -> socket.socket:
    """A listening socket at `path`, created 0600 (under a umask, so it is never wider) and non-blocking."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o177)
    try:
        sock.bind(str(path))
    except OSError as e:
        sock.close()
        if e.errno == errno.EADDRINUSE:
            raise DaemonAlreadyRunning(f"a daemon is already running on {path}") from None
        raise
    finally:
        os.umask(old_umask)
    try:
        os.chmod(path, 0o600)
        sock.listen(ACCEPT_BACKLOG)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        path.unlink(missing_ok=True)
        raise
    return sock
