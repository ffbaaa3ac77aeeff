"""The dashboard's connection to the daemon: one subscription for events, and a short connection per request.

Used from worker threads only. `close()` may be called from any thread and
ends a blocked `events()` loop, so the app can always quit at once.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

from automl.control.client import Client


class Link(Protocol):
    """What the dashboard needs from the daemon (a fake one stands in for tests and benchmarks)."""

    def status(self) -> dict[str, Any]:
        """The daemon's `status` result; raises when it does not answer."""
        ...

    def events(self) -> Iterator[dict[str, Any]]:
        """Every event of every experiment, until the connection ends or `close()` is called."""
        ...

    def request(self, op: str, **args: Any) -> Any:
        """One request's result; raises `automl.control.client.RemoteError` on an error reply."""
        ...

    def close(self) -> None:
        """End a running `events()` loop."""
        ...


class DaemonLink:
    """The real daemon, on its Unix socket."""

    def __init__(self, socket_path: Path, timeout: float = 10.0):
        self.socket_path = socket_path
        self.timeout = timeout
        self._lock = threading.Lock()
        self._subscription: Client | None = None
        self._closed = False

    def status(self) -> dict[str, Any]:
        """The daemon's `status` result."""
        return self.request("status")

    def events(self) -> Iterator[dict[str, Any]]:
        """Subscribe to everything and yield events until the connection ends."""
        client = Client(self.socket_path, timeout=self.timeout)
        with self._lock:
            if self._closed:
                return
            self._subscription = client
        try:
            stream = client.subscribe()
            with self._lock:
                if self._closed:
                    return
            yield from stream
        finally:
            with self._lock:
                self._subscription = None
            client.close()

    def request(self, op: str, **args: Any) -> Any:
        """Send one request on a connection of its own."""
        with Client(self.socket_path, timeout=self.timeout) as client:
            return client.request(op, **args)

    def close(self) -> None:
        """Close the subscription (from any thread) and refuse new ones."""
        with self._lock:
            self._closed = True
            subscription = self._subscription
        if subscription is not None:
            subscription.close()
