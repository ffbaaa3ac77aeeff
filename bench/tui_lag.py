"""Dashboard responsiveness: event-loop lag with 1,000 trials, live events and a user pressing keys.

A stand-in for the daemon runs in its own process: it appends metrics to the store of an experiment with
1,000 trials (300 reports each), ends and starts trials, and sends the matching events (`--rate` per second)
plus a `gpu_sample` of 8 GPUs every 2 s. The dashboard runs headless on the same store, with the experiment
open; every 0.4 s a key is pressed (move, mark, sort, filter, switch panels, open a trial and go back). A probe
in the dashboard's event loop sleeps 10 ms at a time and records how late it wakes up. Target: p95 < 50 ms.

Run: .venv/bin/python bench/tui_lag.py [--trials 1000] [--steps 300] [--rate 20] [--seconds 20] [--params 4]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import queue
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests import tui_sample_store as sample_store  # noqa: E402  (the sample data lives with the tests)
from tui.app import DashboardApp  # noqa: E402

GPUS = 8
KEYS = (
    "down",
    "down",
    "space",
    "down",
    "space",
    "2",
    "3",
    "4",
    "1",
    "o",
    "o",
    "f",
    "f",
    "f",
    "enter",
    "escape",
    "pagedown",
    "home",
    "x",
)


class QueueLink:
    """The dashboard's link to the stand-in daemon: events from a queue, requests answered at once."""

    def __init__(self, events: Any) -> None:
        self._events = events
        self._closed = threading.Event()
        self.arrivals: list[float] = []

    def status(self) -> dict[str, Any]:
        """A daemon that runs, with 8 GPUs."""
        return {"running": True, "pid": 1, "gpus": GPUS, "experiments": [sample_store.EXPERIMENT_ID]}

    def events(self) -> Iterator[dict[str, Any]]:
        """What the stand-in sends, until closed."""
        while not self._closed.is_set():
            try:
                event = self._events.get(timeout=0.2)
            except queue.Empty:
                continue
            self.arrivals.append(time.monotonic())
            yield event

    def received(self, start: float, stop: float) -> int:
        """How many events arrived between the monotonic times `start` and `stop`."""
        return sum(1 for when in self.arrivals if start <= when < stop)

    def request(self, op: str, **args: Any) -> Any:
        """Every request succeeds."""
        return {}

    def close(self) -> None:
        """End `events()`."""
        self._closed.set()


def stand_in_daemon(home: str, events: Any, rate: float, seconds: float, trials: int) -> None:
    """Write metrics and trial changes to the store at `rate` events per second, sending each as an event."""
    from automl.store import Metric, Store

    store = Store(Path(home))
    store.conn.execute("PRAGMA synchronous=OFF")
    exp_id = sample_store.EXPERIMENT_ID
    running = {t.id: t for t in store.trials(exp_id) if t.status == "running"}
    steps = {trial_id: t.steps for trial_id, t in running.items()}
    start = time.monotonic()
    sent = 0
    next_gpu_sample = start
    while (now := time.monotonic()) - start < seconds:
        if now >= next_gpu_sample:
            sample = sample_store.gpu_sample(int(now - start), gpus=GPUS, trials=trials, running=8)
            events.put({**sample, "time": time.time()})
            next_gpu_sample += 2.0
        trial_id = list(running)[sent % len(running)]
        trial = running[trial_id]
        if sent % 40 == 39:  # a trial ends, the next one starts
            store.trial_ended(trial, "succeeded", 0, None, 0.5, usage={"gpu_seconds": 60.0, "cost": 0.01})
            events.put(_event("trial_ended", trial=trial_id, status="succeeded", value=0.5, error=None))
            del running[trial_id]
            new = store.add_trial(
                exp_id, {"lr": 0.01, "batch_size": 64, "dropout": 0.1, "optimizer": "sgd"}, trial_id, [trial_id % GPUS]
            )
            store.trial_started(new, 4_200_000 + new.id, None)
            running[new.id], steps[new.id] = new, 0
            events.put(_event("trial_started", trial=new.id, params=new.params, gpus=new.gpus))
        else:
            steps[trial_id] += 1
            value = 0.8 * (1 - 0.99 ** steps[trial_id])
            store.add_metrics(
                trial,
                [Metric(steps[trial_id], "intermediate", steps[trial_id], value, {"default": value}, time.time())],
                0,
            )
            events.put(_event("trial_metric", trial=trial_id, kind="intermediate", step=steps[trial_id], value=value))
        sent += 1
        time.sleep(max(0.0, start + sent / rate - time.monotonic()))
    store.close()


def _event(event: str, **data: Any) -> dict[str, Any]:
    return {"v": 1, "event": event, "experiment": sample_store.EXPERIMENT_ID, "time": time.time(), "data": data}


async def measure(home: Path, link: QueueLink, size: tuple[int, int], seconds: float) -> tuple[list[float], int, int]:
    """Run the dashboard for `seconds` with keys pressed; the probe's lateness samples, the keys pressed and the
    events that arrived meanwhile."""
    app = DashboardApp(home, link=link, experiment=sample_store.EXPERIMENT_ID)
    lags: list[float] = []
    presses = 0
    async with app.run_test(size=size) as pilot:
        while not app.state.trials:
            await pilot.pause(0.1)
        start = time.monotonic()
        stop = start + seconds

        async def probe() -> None:
            while time.monotonic() < stop:
                before = time.perf_counter()
                await asyncio.sleep(0.01)
                lags.append(time.perf_counter() - before - 0.01)

        probing = asyncio.create_task(probe())
        while time.monotonic() < stop:
            await pilot.press(KEYS[presses % len(KEYS)])
            presses += 1
            await asyncio.sleep(0.4)
        await probing
    return lags, presses, link.received(start, stop)


def main() -> None:
    """Fill the store, then measure at 80x24 and at 160x45 with a fresh stand-in daemon each time."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--rate", type=float, default=20.0, help="events per second (trial metrics, starts, ends)")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--params", type=int, default=4, help="parameters per trial (4 and more)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        began = time.perf_counter()
        sample_store.fill(
            home,
            trials=args.trials,
            steps=args.steps,
            running=8,
            gpus=GPUS,
            max_trials=10 * args.trials,
            extra_params=max(0, args.params - 4),
        )
        took = time.perf_counter() - began
        print(
            f"store: {args.trials} trials x up to {args.steps} reports, {args.params} params, written in {took:.1f} s"
        )
        context = multiprocessing.get_context("spawn")
        for size in ((80, 24), (160, 45)):
            events = context.Queue()
            daemon = context.Process(
                target=stand_in_daemon, args=(str(home), events, args.rate, args.seconds + 3, args.trials)
            )
            daemon.start()
            link = QueueLink(events)
            lags, presses, received = asyncio.run(measure(home, link, size, args.seconds))
            daemon.join()
            print(
                f"{size[0]}x{size[1]}: {received} events ({received / args.seconds:.1f}/s), "
                f"{presses} keys, {len(lags)} probes: lag median {1000 * statistics.median(lags):.1f} ms, "
                f"p95 {_percentile(lags, 0.95):.1f} ms, p99 {_percentile(lags, 0.99):.1f} ms, "
                f"max {1000 * max(lags):.1f} ms"
            )


def _percentile(samples: list[float], q: float) -> float:
    """The q-quantile of `samples` in milliseconds."""
    ordered = sorted(samples)
    return 1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))]


if __name__ == "__main__":
    main()
