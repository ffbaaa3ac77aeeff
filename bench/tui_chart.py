"""Braille chart redraw: 20 series x 500 points, thinned to the chart's width, at several chart sizes.

Times the whole redraw the dashboard does when curves change: `tui.braille.draw` plus turning its rows into
Textual strips (BrailleChart._redraw), inside a running (headless) app. Target: under 20 ms.

Run: .venv/bin/python bench/tui_chart.py [--series 20] [--points 500] [--repeat 50]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import random
import statistics
import time

from textual.app import App, ComposeResult

from tui.braille import Series, draw
from tui.format import SERIES_COLORS
from tui.widgets.chart import BrailleChart

SIZES = ((78, 10), (120, 30), (200, 50))
"""Chart sizes in cells: the compact panel at 80x24, a half-screen panel, a full large terminal."""


def curves(count: int, points: int, seed: int = 1) -> list[Series]:
    """Learning-curve-like series: rising, noisy, each with its own plateau."""
    rng = random.Random(seed)
    series = []
    for n in range(count):
        top, rate = rng.uniform(0.5, 0.95), rng.uniform(20, 120)
        ys = [top * (1 - math.exp(-(s + 1) / rate)) + rng.gauss(0, 0.01) for s in range(points)]
        series.append(Series(f"#{n}", list(range(1, points + 1)), ys, SERIES_COLORS[n % len(SERIES_COLORS)]))
    return series


class _ChartApp(App[None]):
    def compose(self) -> ComposeResult:
        """One chart, nothing else."""
        yield BrailleChart(id="chart")


async def _time_widget(series: list[Series], repeat: int) -> dict[tuple[int, int], list[float]]:
    app = _ChartApp()
    timings: dict[tuple[int, int], list[float]] = {}
    async with app.run_test(size=(210, 55)):
        chart = app.query_one(BrailleChart)
        chart.set_series(series)
        for width, height in SIZES:
            runs = []
            for _ in range(repeat):
                start = time.perf_counter()
                chart._redraw(width, height)
                runs.append(time.perf_counter() - start)
            timings[(width, height)] = runs
    return timings


def main() -> None:
    """Time `draw` alone and the widget's whole redraw at each size; print medians, p95 and max."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--series", type=int, default=20)
    parser.add_argument("--points", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=50)
    args = parser.parse_args()
    series = curves(args.series, args.points)
    print(f"{args.series} series x {args.points} points, {args.repeat} redraws per size")
    print(f"{'chart size':>12}  {'draw median':>12}  {'redraw median':>14}  {'redraw p95':>11}  {'redraw max':>11}")
    widget = asyncio.run(_time_widget(series, args.repeat))
    for width, height in SIZES:
        plain = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            draw(series, width, height)
            plain.append(time.perf_counter() - start)
        runs = sorted(widget[(width, height)])
        p95 = runs[min(len(runs) - 1, int(0.95 * len(runs)))]
        print(
            f"{f'{width}x{height}':>12}  {1000 * statistics.median(plain):>9.2f} ms  "
            f"{1000 * statistics.median(runs):>11.2f} ms  {1000 * p95:>8.2f} ms  {1000 * runs[-1]:>8.2f} ms"
        )


if __name__ == "__main__":
    main()
