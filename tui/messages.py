"""Messages the dashboard's worker threads post to the UI thread."""

from __future__ import annotations

from typing import Any

from textual.message import Message

from .state import StoreRead


class Connected(Message):
    """The daemon answered; `status` is its `status` result."""

    def __init__(self, status: dict[str, Any]) -> None:
        super().__init__()
        self.status = status


class Disconnected(Message):
    """The daemon does not answer (or stopped answering); the next try is in `retry_in` seconds."""

    def __init__(self, reason: str, retry_in: float) -> None:
        super().__init__()
        self.reason, self.retry_in = reason, retry_in


class EventsArrived(Message):
    """Daemon events wait in the app's inbox."""


class StoreUpdated(Message):
    """The store reader finished a pass."""

    def __init__(self, read: StoreRead) -> None:
        super().__init__()
        self.read = read


class StoreFailed(Message):
    """The store could not be read this time (it is tried again)."""

    def __init__(self, error: str) -> None:
        super().__init__()
        self.error = error


class GpuListing(Message):
    """The daemon's `gpus` answer: which GPUs take trials now, and why not."""

    def __init__(self, gpus: list[dict[str, Any]]) -> None:
        super().__init__()
        self.gpus = gpus


class ActionDone(Message):
    """A user action finished: what to tell the user, and how loudly."""

    def __init__(self, text: str, severity: str = "information") -> None:
        super().__init__()
        self.text, self.severity = text, severity


class LogRead(Message):
    """New text from a trial's log file, read up to byte `end`; `reset` when it replaces what was shown."""

    def __init__(self, path: str, text: str, reset: bool, end: int) -> None:
        super().__init__()
        self.path, self.text, self.reset, self.end = path, text, reset, end
