"""How late the daemon's event loop wakes a task that sleeps a fixed interval: a cheap gauge of a blocked loop."""

from __future__ import annotations

import asyncio
import collections
import statistics

INTERVAL = 0.05  # seconds between looks
WINDOW = 1200  # looks kept: the last minute


class LoopLag:
    """Sleeps INTERVAL again and again and keeps, for the last WINDOW wake-ups, how much later than asked it woke."""

    def __init__(self, interval: float = INTERVAL, window: int = WINDOW):
        self.interval = interval
        self.lags_ms: collections.deque[float] = collections.deque(maxlen=window)

    async def run(self) -> None:
        """Measure until cancelled."""
        clock = asyncio.get_running_loop().time
        while True:
            asked = clock()
            await asyncio.sleep(self.interval)
            self.lags_ms.append(max(0.0, (clock() - asked - self.interval) * 1000))

    def summary(self) -> dict[str, float | int] | None:
        """p50, p99 and max of the window in milliseconds, and how many wake-ups it holds; None before the first."""
        if not self.lags_ms:
            return None
        lags = sorted(self.lags_ms)
        p99 = lags[min(len(lags) - 1, int(len(lags) * 0.99))]
        return {
            "p50": round(statistics.median(lags), 3),
            "p99": round(p99, 3),
            "max": round(lags[-1], 3),
            "samples": len(lags),
        }
