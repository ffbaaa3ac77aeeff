"""A small synchronous client of the daemon's control socket, for the CLI and users' scripts."""

from __future__ import annotations

import os
import socket
import stat
import struct
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from ..errors import UserError
from . import protocol

CONNECT_PATIENCE = 10.0  # seconds a client without a timeout waits for room in a full listen backlog
_CREDS = struct.Struct("3i")


class DaemonNotRunning(Exception):
    """Nothing answers on the control socket: the socket file is missing or refuses connections."""


class UntrustedDaemon(UserError):
    """The control socket, or the process behind it, is not this user's own: nothing is sent to it."""


class RemoteError(Exception):
    """The daemon answered with an error; `code` is one of protocol.ERROR_CODES, `message` says what went wrong."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Client:
    """One connection to the daemon, opened on first use; requests are answered in order.

    Not thread-safe, except that `close()` may be called from another thread to end a `subscribe()` loop.
    """

    def __init__(self, socket_path: str | os.PathLike[str], timeout: float | None = 10.0) -> None:
        self.socket_path = Path(socket_path)
        self.timeout = timeout
        self._sock: socket.socket | None = None
        self._buffer = bytearray()
        self._next_id = 1
        self._subscribed = False

    def request(self, op: str, /, **args: Any) -> Any:
        """Send one request and return its result; raises RemoteError on an error reply, TimeoutError after timeout."""
        if self._subscribed:
            raise RuntimeError("this connection carries events now; use another Client for requests")
        request_id = self._next_id
        self._next_id += 1
        line = protocol.encode(protocol.request_message(request_id, op, args))
        if len(line) - 1 > protocol.MAX_MESSAGE_BYTES:
            raise ValueError(
                f"request '{op}' is {len(line) - 1} bytes; the daemon accepts at most {protocol.MAX_MESSAGE_BYTES}"
            )
        sock = self._connect()
        try:
            sock.sendall(line)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the daemon closed the connection; the reply read below may say why
        try:
            reply = self._read_message()
        except TimeoutError:
            self.close()
            raise TimeoutError(f"the daemon did not answer '{op}' within {self.timeout} s") from None
        if reply is None:
            self.close()
            raise ConnectionError("the daemon closed the connection without answering")
        if reply.get("ok") is False:
            raise _remote_error(reply)
        if reply.get("ok") is not True or reply.get("id") != request_id:
            self.close()
            raise ConnectionError(f"unexpected reply from the daemon to request {request_id}: {reply!r:.200}")
        return reply.get("result")

    def subscribe(self, experiment: str | None = None, events: Iterable[str] | None = None) -> Iterator[dict[str, Any]]:
        """Subscribe this connection to events (all experiments / all kinds when None) and iterate over them.

        The subscription is in place when this returns; events are awaited without a timeout. Iteration ends when
        the connection closes; being dropped for falling behind raises RemoteError with code 'overflow'.
        """
        self.request(protocol.SUBSCRIBE, experiment=experiment, events=None if events is None else list(events))
        self._subscribed = True
        if self._sock is not None:
            self._sock.settimeout(None)
        return self._events()

    def close(self) -> None:
        """Close the connection; a thread blocked in a `subscribe()` loop sees its end."""
        sock, self._sock = self._sock, None
        if sock is None:
            return
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        sock.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _connect(self) -> socket.socket:
        if self._sock is not None:
            return self._sock
        check_socket(self.socket_path)
        deadline = time.monotonic() + (CONNECT_PATIENCE if self.timeout is None else self.timeout)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            _connect_patiently(sock, str(self.socket_path), deadline)
            check_peer(sock, self.socket_path)
        except (FileNotFoundError, ConnectionRefusedError):
            sock.close()
            raise DaemonNotRunning(f"the automl daemon is not running: nothing answers on {self.socket_path}") from None
        except PermissionError:
            sock.close()
            raise PermissionError(f"permission denied on {self.socket_path}: it belongs to another user") from None
        except BaseException:
            sock.close()
            raise
        self._sock = sock
        self._buffer.clear()
        return sock

    def _events(self) -> Iterator[dict[str, Any]]:
        while (message := self._read_message()) is not None:
            if message.get("ok") is False:
                raise _remote_error(message)
            if "event" in message:
                yield message

    def _read_message(self) -> dict[str, Any] | None:
        """The next line from the daemon, parsed; None at the end of the connection."""
        while (end := self._buffer.find(b"\n")) < 0:
            sock = self._sock
            if sock is None:
                return None
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                chunk = b""
            except OSError:
                if self._sock is None:
                    return None
                raise
            if not chunk:
                return None
            self._buffer += chunk
        line = bytes(self._buffer[:end])
        del self._buffer[: end + 1]
        try:
            return protocol.decode(line)
        except ValueError as e:
            self.close()
            raise ConnectionError(f"unreadable line from the daemon: {e}") from None


def check_socket(path: Path) -> None:
    """Refuse, before connecting, a socket that is not this user's own: a link, another kind of file, one of
    another user, or one in a folder another user owns or can write (where it could be swapped). A missing
    socket is left to the connection (DaemonNotRunning)."""
    uid = os.geteuid()
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    folder = os.stat(path.parent)
    if folder.st_uid != uid or stat.S_IMODE(folder.st_mode) & (stat.S_IWGRP | stat.S_IWOTH):
        raise UntrustedDaemon(
            f"{path.parent} belongs to uid {folder.st_uid} or is writable by other users "
            f"(mode {stat.S_IMODE(folder.st_mode):04o}); automl talks only to a daemon in a folder "
            f"of yours alone: chmod 700 {path.parent}, or set AUTOML_HOME to a folder of your own"
        )
    if stat.S_ISLNK(info.st_mode):
        raise UntrustedDaemon(f"{path} is a symbolic link, not the daemon's socket; remove it")
    if not stat.S_ISSOCK(info.st_mode):
        raise UntrustedDaemon(f"{path} is not a socket; move it away")
    if info.st_uid != uid:
        raise UntrustedDaemon(f"{path} belongs to uid {info.st_uid}, not to you (uid {uid}); it is not your daemon's")


def check_peer(sock: socket.socket, path: Path) -> None:
    """Refuse a daemon that runs as another user (SO_PEERCRED), before sending it anything."""
    pid, uid, _ = _CREDS.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _CREDS.size))
    if uid != os.geteuid():
        raise UntrustedDaemon(
            f"the process answering on {path} (pid {pid}) runs as uid {uid}, not as you "
            f"(uid {os.geteuid()}); it is not your daemon, and nothing was sent to it"
        )


def _connect_patiently(sock: socket.socket, path: str, deadline: float) -> None:
    """Connect, waiting out a full listen backlog (EAGAIN: the daemon is busy accepting) until `deadline`."""
    pause = 0.01
    while True:
        try:
            sock.connect(path)
            return
        except BlockingIOError:
            if time.monotonic() + pause >= deadline:
                raise TimeoutError(f"the daemon on {path} accepts no connections: its queue stayed full") from None
            time.sleep(pause)
            pause = min(pause * 2, 0.2)


def _remote_error(reply: dict[str, Any]) -> RemoteError:
    error = reply.get("error")
    if not isinstance(error, dict):
        error = {}
    return RemoteError(str(error.get("code", "")), str(error.get("message", "")))
