"""A small synchronous client of the daemon's control socket, for the CLI and users' scripts."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from . import protocol


class DaemonNotRunning(Exception):
    """Nothing answers on the control socket: the socket file is missing or refuses connections."""


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
            raise ValueError(f"request '{op}' is {len(line) - 1} bytes; the daemon accepts at most "
                             f"{protocol.MAX_MESSAGE_BYTES}")
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
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(str(self.socket_path))
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
        del self._buffer[:end + 1]
        try:
            return protocol.decode(line)
        except ValueError as e:
            self.close()
            raise ConnectionError(f"unreadable line from the daemon: {e}") from None


def _remote_error(reply: dict[str, Any]) -> RemoteError:
    error = reply.get("error")
    if not isinstance(error, dict):
        error = {}
    return RemoteError(str(error.get("code", "")), str(error.get("message", "")))
