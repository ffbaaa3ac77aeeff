"""An asyncio event loop on a virtual clock: when only timers are left to wait for, time jumps to the next one.

Simulated trials sleep through their epochs on this clock, so hours of an
experiment pass in moments. The jump happens only when nothing else can
arrive: no I/O is ready and no call to another thread still waits for its
answer to be taken (`busy`), so a tuner's answer lands at the same virtual instant
it was asked for, however long it really took.
"""

from __future__ import annotations

import asyncio
import selectors
import time
from collections.abc import Callable

REAL_WAIT = 0.05  # seconds to really wait, at most, for an outstanding call before looking again


class VirtualClockLoop(asyncio.SelectorEventLoop):
    """A selector event loop whose `time()` is virtual; it starts at the real wall-clock time."""

    def __init__(self, busy: Callable[[], bool] = lambda: False, start: float | None = None) -> None:
        self.now = time.time() if start is None else start
        super().__init__(_JumpingSelector(self, busy))
        self._clock_resolution = 1e-6  # float steps near a wall-clock epoch are ~2e-7 s

    def time(self) -> float:
        return self.now


class _JumpingSelector(selectors.DefaultSelector):
    """Polls for I/O; instead of blocking until the next timer, moves the loop's clock to it."""

    def __init__(self, loop: VirtualClockLoop, busy: Callable[[], bool]) -> None:
        super().__init__()
        self._loop = loop
        self._busy = busy

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        events = super().select(0)
        if events or timeout == 0:
            return events
        if timeout is None or self._busy():
            return super().select(REAL_WAIT if timeout is not None else None)
        self._loop.now += timeout
        return []
