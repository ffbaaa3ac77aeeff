"""A braille line chart widget: redrawn only when its series or its size change."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from rich.segment import Segment
from rich.style import Style
from textual.strip import Strip
from textual.widget import Widget

from ..braille import Series, draw


class BrailleChart(Widget):
    """Curves from `tui.braille`, with y labels on the left and the x axis at the bottom."""

    DEFAULT_CSS = "BrailleChart { height: 1fr; min-height: 3; }"

    def __init__(self, *, empty: str = "no data yet", id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._series: list[Series] = []
        self._x_ticks: Callable[[float, float], list[tuple[float, str]]] | None = None
        self._x_range: tuple[float, float] | None = None
        self._lines: list[Strip] = []
        self._drawn_size: tuple[int, int] | None = None
        self._styles: dict[str | None, Style] = {}
        self.empty = empty

    @property
    def series(self) -> list[Series]:
        """The series shown."""
        return list(self._series)

    def set_series(
        self,
        series: Sequence[Series],
        x_ticks: Callable[[float, float], list[tuple[float, str]]] | None = None,
        x_range: tuple[float, float] | None = None,
    ) -> None:
        """Show these series (drawn in order: the last on top), with the x axis labelled by `x_ticks` (see
        `tui.braille.draw`) over `x_range` when given."""
        self._series = list(series)
        self._x_ticks, self._x_range = x_ticks, x_range
        self._drawn_size = None
        self.refresh()

    def render_line(self, y: int) -> Strip:
        """One row of the chart."""
        size = (self.size.width, self.size.height)
        if size != self._drawn_size:
            self._redraw(*size)
        return self._lines[y] if y < len(self._lines) else Strip.blank(size[0])

    def _redraw(self, width: int, height: int) -> None:
        if self._series and any(len(s.xs) for s in self._series):
            rows = draw(self._series, width, height, x_range=self._x_range, x_ticks=self._x_ticks)
        else:
            rows = [[(" " * width, None)] for _ in range(height)]
            if height:
                rows[(height - 1) // 2] = [(f"{self.empty:^{width}}"[:width], "bright_black")]
        self._lines = [Strip([Segment(text, self._style(color)) for text, color in row], width) for row in rows]
        self._drawn_size = (width, height)

    def _style(self, color: str | None) -> Style:
        style = self._styles.get(color)
        if style is None:
            style = self._styles[color] = Style(color=color) if color else Style()
        return style
