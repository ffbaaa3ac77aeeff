"""The tuner worker thread: calls run in order off the event loop, pending until the loop has taken the answer."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from automl.engine.tuner_worker import TunerWorker


def test_a_call_is_pending_until_the_event_loop_takes_its_answer():
    worker = TunerWorker(tuner=None)
    answered = threading.Event()

    def answer():
        answered.set()
        return 42

    async def main():
        call = asyncio.ensure_future(worker.call(answer))
        await asyncio.sleep(0)
        assert worker.pending == 1
        assert answered.wait(5)
        time.sleep(0.05)  # the worker has answered, and the loop, blocked here, has not taken it yet
        assert worker.pending == 1, "a virtual clock must not jump while an answer waits to be taken"
        assert await call == 42
        assert worker.pending == 0

    asyncio.run(main())
    worker.close()


def test_calls_run_in_order_and_errors_reach_the_caller():
    worker = TunerWorker(tuner=None)
    seen = []

    def fail():
        raise ValueError("bad suggestion")

    async def main():
        calls = [worker.call(seen.append, i) for i in range(5)]
        await asyncio.gather(*calls)
        with pytest.raises(ValueError, match="bad suggestion"):
            await worker.call(fail)
        assert worker.pending == 0

    asyncio.run(main())
    worker.close()
    assert seen == [0, 1, 2, 3, 4]
