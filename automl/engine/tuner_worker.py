"""A single daemon thread that runs every call into one tuner, so slow suggestions never block the event loop."""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable
from typing import Any


class TunerWorker:
    """Serializes calls into a tuner (they are not thread-safe) on a thread that never delays process exit."""

    def __init__(self, tuner: Any):
        self.tuner = tuner
        self._calls: queue.SimpleQueue[tuple[Callable[..., Any], tuple[Any, ...], asyncio.Future[Any]] | None]
        self._calls = queue.SimpleQueue()
        self._pending = 0  # calls whose answer the event loop has not yet taken (a virtual clock waits for them)
        self._thread = threading.Thread(target=self._serve, name="automl-tuner", daemon=True)
        self._thread.start()

    @property
    def pending(self) -> int:
        """Calls made whose answer the event loop has not yet taken; counted on the event loop's thread only."""
        return self._pending

    async def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run `fn(*args)` on the worker thread and wait for its result."""
        future = asyncio.get_running_loop().create_future()
        self._pending += 1
        self._calls.put((fn, args, future))
        return await future

    def close(self) -> None:
        """Let the thread end after the calls already queued."""
        self._calls.put(None)

    def _serve(self) -> None:
        while (item := self._calls.get()) is not None:
            fn, args, future = item
            try:
                outcome: tuple[Any, BaseException | None] = (fn(*args), None)
            except BaseException as e:  # noqa: BLE001 - the worker thread's boundary: handed to the awaiting coroutine
                outcome = (None, e)
            try:
                future.get_loop().call_soon_threadsafe(self._answer, future, *outcome)
            except RuntimeError:  # the event loop is gone: nobody waits for this answer
                pass

    def _answer(self, future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
        """On the event loop: the call is answered (even if its caller is gone), and its result handed over."""
        self._pending -= 1
        if future.cancelled():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)
