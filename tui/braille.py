"""Line charts drawn with the Unicode braille block: 2x4 dots per cell, one colour per series, labelled axes.

Independent of Textual: `draw` turns series into rows of (text, colour) runs.
Each series is thinned to the plot's dot columns first (the lowest and highest
point per column, joined to the next column) with NumPy, so the cost follows
the chart's width, not the number of points.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from .format import number

Run = tuple[str, "str | None"]
Spans = tuple[np.ndarray, np.ndarray, np.ndarray]

_WEIGHTS = np.array([[0x01, 0x08], [0x02, 0x10], [0x04, 0x20], [0x40, 0x80]], dtype=np.int32)  # [dot row][dot col]
_CHARS = np.array([" "] + [chr(0x2800 + bits) for bits in range(1, 256)], dtype=object)


@dataclass
class Series:
    """One curve: x and y values (None breaks the line), its colour, and whether it is drawn as dots only."""

    label: str
    xs: Sequence[float]
    ys: Sequence[float | None]
    color: str
    points: bool = False


def draw(
    series: Sequence[Series],
    width: int,
    height: int,
    y_range: tuple[float, float] | None = None,
    x_range: tuple[float, float] | None = None,
    y_format: Callable[[float], str] = lambda v: number(v, 6),
    x_ticks: Callable[[float, float], list[tuple[float, str]]] | None = None,
) -> list[list[Run]]:
    """The chart as `height` rows of (text, colour) runs, each row `width` cells wide; y labels on the left,
    the x axis with its labels on the last row (`x_ticks(x_lo, x_hi)` says which, at which x: e.g. a log axis's
    values, or categories). Later series are drawn over earlier ones."""
    if width <= 0 or height <= 0:
        return []
    x_lo, x_hi = x_range if x_range is not None else _extent(s.xs for s in series)
    y_lo, y_hi = y_range if y_range is not None else _extent(s.ys for s in series)
    if x_lo is None or y_lo is None or x_hi is None or y_hi is None:
        return _empty(width, height)
    if y_hi - y_lo < 1e-12:
        pad = abs(y_hi) * 0.05 or 0.5
        y_lo, y_hi = y_lo - pad, y_hi + pad
    if x_hi - x_lo < 1e-12:
        x_lo, x_hi = x_lo - 0.5, x_hi + 0.5
    plot_rows = max(1, height - 1)
    labels = _y_labels(y_lo, y_hi, plot_rows, y_format)
    label_width = max(len(text) for text in labels.values())
    plot_cols = width - label_width - 1
    if plot_cols < 2:
        return _empty(width, height)
    canvas = _Canvas(plot_cols, plot_rows)
    for index, one in enumerate(series):
        canvas.plot(one, index, x_lo, x_hi, y_lo, y_hi)
    rows: list[list[Run]] = []
    for row, runs in enumerate(canvas.runs([s.color for s in series])):
        tick = labels.get(row)
        axis = f"{tick:>{label_width}}┤" if tick is not None else " " * label_width + "│"
        rows.append([(axis, "bright_black"), *runs])
    axis = (
        _x_axis(x_lo, x_hi, plot_cols) if x_ticks is None else _ticked_axis(x_ticks(x_lo, x_hi), x_lo, x_hi, plot_cols)
    )
    rows.append([(" " * label_width + "└" + axis, "bright_black")])
    return rows[:height]


class _Canvas:
    """A grid of braille dots, and per cell the index of the series drawn last in it."""

    def __init__(self, cols: int, rows: int):
        self.cols, self.rows = cols, rows
        self.dot_w, self.dot_h = cols * 2, rows * 4
        self.dots = np.zeros((self.dot_h, self.dot_w), dtype=bool)
        self.owner = np.full(rows * cols, -1, dtype=np.int32)

    def plot(self, series: Series, index: int, x_lo: float, x_hi: float, y_lo: float, y_hi: float) -> None:
        """Draw one series: its points thinned to one vertical span per dot column, joined column to column."""
        spans = self._spans(series, x_lo, x_hi, y_lo, y_hi)
        if spans is None:
            return
        columns, lows, highs = spans
        lengths = highs - lows + 1
        firsts = np.cumsum(lengths) - lengths
        dot_x = np.repeat(columns, lengths)
        dot_y = np.repeat(lows, lengths) + (np.arange(int(lengths.sum())) - np.repeat(firsts, lengths))
        self.dots[dot_y, dot_x] = True
        self.owner[(dot_y >> 2) * self.cols + (dot_x >> 1)] = index

    def _spans(self, series: Series, x_lo: float, x_hi: float, y_lo: float, y_hi: float) -> Spans | None:
        """(dot column, top dot, bottom dot) arrays of the vertical spans that draw the series."""
        xs = np.asarray(series.xs, dtype=float)
        ys = np.asarray(series.ys, dtype=float)  # None becomes NaN: a gap in the line
        count = min(len(xs), len(ys))
        xs, ys = xs[:count], ys[:count]
        top = self.dot_h - 1
        valid = np.isfinite(xs) & np.isfinite(ys)
        px = np.zeros(count, dtype=np.int64)
        py = np.zeros(count, dtype=np.int64)
        px[valid] = np.floor((xs[valid] - x_lo) * ((self.dot_w - 1) / (x_hi - x_lo)) + 0.5)
        py[valid] = top - np.floor((ys[valid] - y_lo) * (top / (y_hi - y_lo)) + 0.5)
        valid &= (px >= 0) & (px < self.dot_w)
        np.clip(py, 0, top, out=py)
        edges = np.flatnonzero(np.diff(np.r_[0, valid.astype(np.int8), 0]))
        parts: list[Spans] = []
        for start, end in zip(edges[::2], edges[1::2], strict=True):  # each run of drawable points
            p, q = px[start:end], py[start:end]
            firsts = np.flatnonzero(np.r_[True, p[1:] != p[:-1]])  # the first point in each dot column
            columns = p[firsts]
            lows, highs = np.minimum.reduceat(q, firsts), np.maximum.reduceat(q, firsts)
            if series.points:
                parts.append((p, q, q))  # every point its dot
                continue
            parts.append((columns, lows, highs))
            if len(columns) > 1:
                parts.append(_joins(columns, q[firsts[1:] - 1], q[firsts[1:]]))
        if not parts:
            return None
        columns, lows, highs = (np.concatenate(arrays) for arrays in zip(*parts, strict=True))
        return columns, lows, highs

    def runs(self, colors: Sequence[str]) -> list[list[Run]]:
        """Every row of cells as (text, colour) runs."""
        bits = (self.dots.reshape(self.rows, 4, self.cols, 2) * _WEIGHTS[None, :, None, :]).sum(axis=(1, 3))
        owners = np.where(bits > 0, self.owner.reshape(self.rows, self.cols), -1)
        rows = []
        for row in range(self.rows):
            chars, who = _CHARS[bits[row]], owners[row]
            cuts = [0, *(np.flatnonzero(np.diff(who)) + 1).tolist(), self.cols]
            rows.append(
                [
                    ("".join(chars[a:b]), None if who[a] < 0 else colors[who[a]])
                    for a, b in zip(cuts[:-1], cuts[1:], strict=True)
                ]
            )
        return rows


def _joins(columns: np.ndarray, ends: np.ndarray, starts: np.ndarray) -> Spans:
    """Spans joining each dot column's last point (`ends`) to the next column's first (`starts`), through the
    columns in between."""
    gaps = np.diff(columns)
    step = np.arange(int(gaps.sum())) - np.repeat(np.cumsum(gaps) - gaps, gaps) + 1
    gap, begin, rise = np.repeat(gaps, gaps), np.repeat(ends, gaps), np.repeat(starts - ends, gaps)
    before, after = begin + rise * (step - 1) // gap, begin + rise * step // gap
    return np.repeat(columns[:-1], gaps) + step, np.minimum(before, after), np.maximum(before, after)


def _extent(arrays: Iterable[Sequence[float | None]]) -> tuple[float | None, float | None]:
    values = [np.asarray(a, dtype=float) for a in arrays if len(a)]
    if not values:
        return None, None
    joined = np.concatenate(values)
    finite = joined[np.isfinite(joined)]
    return (float(finite.min()), float(finite.max())) if len(finite) else (None, None)


def _y_labels(y_lo: float, y_hi: float, rows: int, fmt: Callable[[float], str]) -> dict[int, str]:
    """Tick labels by row: the top and bottom values, and the middle one when there is room."""
    labels = {0: fmt(y_hi)}
    if rows > 1:
        labels[rows - 1] = fmt(y_lo)
    if rows >= 5:
        middle = rows // 2
        labels[middle] = fmt(y_hi - (y_hi - y_lo) * (middle * 4 + 1.5) / (rows * 4 - 1))
    return labels


def _x_axis(x_lo: float, x_hi: float, cols: int) -> str:
    """The x rule with the first, middle and last x values written into it."""
    rule = ["─"] * cols
    left, right = number(x_lo, 8), number(x_hi, 8)
    placed = [(0, left), (cols - len(right), right)]
    if cols >= len(left) + len(right) + 12:
        middle = number(round((x_lo + x_hi) / 2) if x_hi - x_lo >= 10 else (x_lo + x_hi) / 2, 8)
        placed.append(((cols - len(middle)) // 2, middle))
    for at, text in placed:
        if at < 0:
            continue
        for i, ch in enumerate(text[: cols - at]):
            rule[at + i] = ch
    return "".join(rule)


def _ticked_axis(ticks: list[tuple[float, str]], x_lo: float, x_hi: float, cols: int) -> str:
    """The x rule with each tick's label centred under its x, left out where it would overlap the previous one."""
    rule = ["─"] * cols
    free = 0
    for x, text in ticks:
        centre = round((x - x_lo) / (x_hi - x_lo) * (cols - 1)) if x_hi > x_lo else 0
        at = min(max(0, centre - len(text) // 2), cols - len(text))
        if at < free or at < 0:
            continue
        rule[at : at + len(text)] = text
        free = at + len(text) + 1
    return "".join(rule)


def _empty(width: int, height: int) -> list[list[Run]]:
    rows: list[list[Run]] = [[(" " * width, None)] for _ in range(height)]
    message = "no data yet"[:width]
    middle = (height - 1) // 2
    rows[middle] = [(f"{message:^{width}}", "bright_black")]
    return rows
