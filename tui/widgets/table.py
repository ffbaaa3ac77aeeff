"""A table for thousands of live rows, drawn line by line: only visible rows are formatted, each is cached until
its row changes, and narrow terminals drop the least important columns or scroll the columns sideways."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.message import Message
from textual.strip import Strip
from textual.widget import Widget

from ..format import number

Cell = Text | str | float
"""A cell: text as it is, or a number, spelled to fit its column's width."""


@dataclass(frozen=True)
class Column:
    """A column: its key, header, width in cells, alignment, how important it is (the least important are hidden
    first when a table that does not scroll sideways is narrow) and whether it takes a share of spare width."""

    key: str
    label: str
    width: int
    align: str = "left"
    priority: int = 50
    grow: bool = False


class LiveTable(Widget, can_focus=True):
    """Rows identified by keys; the owner supplies the order, a formatter and a change stamp per row."""

    DEFAULT_CSS = """
    LiveTable { height: 1fr; }
    LiveTable > .live-table--header { text-style: bold; color: $text-muted; background: $boost; }
    LiveTable > .live-table--cursor { background: $block-cursor-blurred-background; }
    LiveTable:focus > .live-table--cursor { background: $block-cursor-background; }
    """

    COMPONENT_CLASSES = {"live-table--header", "live-table--cursor"}

    BINDINGS = [
        Binding("up", "move(-1)", "Up", show=False, id="table.up"),
        Binding("down", "move(1)", "Down", show=False, id="table.down"),
        Binding("pageup", "page(-1)", "Page up", show=False, id="table.page_up"),
        Binding("pagedown", "page(1)", "Page down", show=False, id="table.page_down"),
        Binding("home", "edge(-1)", "First", show=False, id="table.first"),
        Binding("end", "edge(1)", "Last", show=False, id="table.last"),
        Binding("enter", "select", "Open", show=False, id="table.open"),
        Binding("left", "scroll_columns(-1)", "Columns left", show=False, id="table.left"),
        Binding("right", "scroll_columns(1)", "Columns right", show=False, id="table.right"),
    ]

    class TableMessage(Message):
        """A message from the table (its `control`, so that handlers can pick a table by its selector)."""

        def __init__(self, table: LiveTable) -> None:
            super().__init__()
            self.table = table

        @property
        def control(self) -> LiveTable:
            """The table."""
            return self.table

    class Highlighted(TableMessage):
        """The cursor moved to another row."""

        def __init__(self, table: LiveTable, key: Hashable | None) -> None:
            super().__init__(table)
            self.key = key

    class Selected(TableMessage):
        """Enter (or a click on the cursor row) on a row."""

        def __init__(self, table: LiveTable, key: Hashable) -> None:
            super().__init__(table)
            self.key = key

    class HeaderClicked(TableMessage):
        """A click on a column's header."""

        def __init__(self, table: LiveTable, column: str) -> None:
            super().__init__(table)
            self.column = column

    def __init__(
        self,
        columns: Sequence[Column] = (),
        *,
        empty: str = "nothing to show",
        sideways: bool = False,
        fixed_columns: int = 0,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        """`sideways`: when the columns do not fit, show them all and scroll them sideways (the first
        `fixed_columns` stay in place) rather than leave out the least important ones."""
        super().__init__(id=id, classes=classes)
        self._columns: list[Column] = list(columns)
        self.sideways = sideways
        self.fixed_columns = fixed_columns
        self._left = 0  # how many of the scrolling columns are scrolled out of view on the left
        self._more_right = False
        self._keys: list[Hashable] = []
        self._index: dict[Hashable, int] = {}
        self._format: Callable[[Hashable], Mapping[str, Cell]] = lambda key: {}
        self._stamp: Callable[[Hashable], object] = lambda key: 0
        self._cache: dict[Hashable, tuple[object, Strip]] = {}
        self._layout: list[tuple[Column, int]] = []
        self._layout_width = -1
        self._cursor = 0
        self._top = 0
        self._pinned = True  # the cursor stays on the first row until the user moves it elsewhere
        self.empty = empty
        self.sort_column: str | None = None
        self.sort_reverse = False

    # the owner's side

    @property
    def cursor_key(self) -> Hashable | None:
        """The key of the row under the cursor."""
        return self._keys[self._cursor] if self._keys else None

    @property
    def row_count(self) -> int:
        """How many rows there are."""
        return len(self._keys)

    @property
    def position(self) -> str:
        """'cursor row / rows', for a title."""
        return f"{self._cursor + 1}/{len(self._keys)}" if self._keys else "0/0"

    @property
    def columns(self) -> list[Column]:
        """The columns, in order (narrow terminals may not show all of them)."""
        return list(self._columns)

    @property
    def shown_columns(self) -> list[str]:
        """The keys of the columns in view, in order."""
        return [column.key for column, _ in self._layout]

    def set_columns(self, columns: Sequence[Column]) -> None:
        """Replace the columns (e.g. when the parameters worth showing change)."""
        if list(columns) != self._columns:
            self._columns = list(columns)
            self._layout_width = -1
            self._cache.clear()
            self.refresh()

    def set_rows(
        self,
        keys: Sequence[Hashable],
        format: Callable[[Hashable], Mapping[str, Cell]],
        stamp: Callable[[Hashable], object],
    ) -> None:
        """Show these rows in this order; `format` gives a row's cells by column key, and a row is formatted
        again only when its `stamp` changes. The cursor stays on its row when that row is still there, or on the
        first row while the user has not moved it away from there."""
        current = self.cursor_key
        self._keys = list(keys)
        self._index = {key: i for i, key in enumerate(self._keys)}
        self._format, self._stamp = format, stamp
        if len(self._cache) > 4 * len(self._keys) + 256:
            self._cache.clear()
        if self._pinned:
            self._cursor = 0
        else:
            self._cursor = self._index.get(current, min(self._cursor, max(0, len(self._keys) - 1)))
        self._scroll_to_cursor()
        self.refresh()
        if self.cursor_key != current:
            self.post_message(self.Highlighted(self, self.cursor_key))

    def invalidate(self) -> None:
        """Format every row again (after a change the stamps do not show, e.g. the clock)."""
        self._cache.clear()
        self.refresh()

    # drawing

    def render_line(self, y: int) -> Strip:
        """One line: the header, a row, or blank."""
        width = self.size.width
        if width != self._layout_width:
            self._lay_out(width)
        if y == 0:
            return self._header(width)
        index = self._top + y - 1
        if not self._keys:
            if y == 2:
                return Strip([Segment(f"{self.empty:^{width}}"[:width], Style(dim=True))], width)
            return Strip.blank(width)
        if index >= len(self._keys):
            return Strip.blank(width)
        strip = self._row(self._keys[index], width)
        if index == self._cursor:
            strip = strip.apply_style(self.get_component_rich_style("live-table--cursor"))
        return strip

    def _row(self, key: Hashable, width: int) -> Strip:
        stamp = self._stamp(key)
        cached = self._cache.get(key)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        cells = self._format(key)
        line = Text(no_wrap=True)
        for column, cell_width in self._layout:
            line.append_text(_fit(cells.get(column.key, ""), cell_width, column.align))
            line.append(" ")
        strip = Strip(list(line.render(self.app.console, end=""))).adjust_cell_length(width)
        self._cache[key] = (stamp, strip)
        return strip

    def _header(self, width: int) -> Strip:
        style = self.get_component_rich_style("live-table--header")
        scrolled = self._left and 0 < self.fixed_columns <= len(self._layout)
        last_fixed = self._layout[self.fixed_columns - 1][0] if scrolled else None  # `‹` after it: more on the left
        line = Text(no_wrap=True)
        for column, cell_width in self._layout:
            label = column.label
            if column.key == self.sort_column:
                label = f"{label}{'▼' if self.sort_reverse else '▲'}"
            line.append_text(_fit(label, cell_width, column.align))
            line.append("‹" if column is last_fixed else " ")
        if self._more_right:
            line.pad_right(width - 1 - line.cell_len)
            line.append("›")
        return Strip(list(line.render(self.app.console, end=""))).adjust_cell_length(width).apply_style(style)

    def _lay_out(self, width: int) -> None:
        """Choose the columns that fit and share spare width among growing ones."""
        shown = self._scrolled_columns(width) if self.sideways else self._most_important_columns(width)
        self._more_right = self.sideways and shown[-1:] != self._columns[-1:]
        spare = 0 if self._left or self._more_right else width - sum(c.width + 1 for c in shown)
        growing = [c for c in shown if c.grow]
        widths = {c.key: c.width for c in shown}
        for i, column in enumerate(growing):
            share = spare // (len(growing) - i)
            widths[column.key] += share
            spare -= share
        self._layout = [(c, widths[c.key]) for c in shown]
        self._layout_width = width
        self._cache.clear()

    def _most_important_columns(self, width: int) -> list[Column]:
        """The most important columns that fit in `width`, in their order."""
        chosen = sorted(self._columns, key=lambda c: -c.priority)
        while chosen and sum(c.width + 1 for c in chosen) > width:
            chosen.pop()
        keep = {c.key for c in chosen}
        return [c for c in self._columns if c.key in keep]

    def _scrolled_columns(self, width: int) -> list[Column]:
        """The fixed columns, then the scrolling ones from the first in view on as many as fit in `width` (one cell
        kept for the `›` that says more are on the right); the scroll stops once the last column is in view."""
        if sum(c.width + 1 for c in self._columns) <= width:
            self._left = 0
            return list(self._columns)
        fixed, scrolling = self._columns[: self.fixed_columns], self._columns[self.fixed_columns :]
        room = width - 1 - sum(c.width + 1 for c in fixed)
        fits_from_end, used = 0, 0
        for column in reversed(scrolling):
            used += column.width + 1
            if used > room:
                break
            fits_from_end += 1
        self._left = max(0, min(self._left, len(scrolling) - max(1, fits_from_end)))
        shown, used = [], 0
        for column in scrolling[self._left :]:
            used += column.width + 1
            if used > room and shown:
                break
            shown.append(column)
        return fixed + shown

    # moving

    @property
    def _visible_rows(self) -> int:
        return max(1, self.size.height - 1)

    def _set_cursor(self, index: int) -> None:
        """Move the cursor at the user's request."""
        if not self._keys:
            return
        index = max(0, min(index, len(self._keys) - 1))
        self._pinned = index == 0
        if index != self._cursor:
            self._cursor = index
            self.post_message(self.Highlighted(self, self.cursor_key))
        self._scroll_to_cursor()
        self.refresh()

    def _scroll_to_cursor(self) -> None:
        rows = self._visible_rows
        if self._cursor < self._top:
            self._top = self._cursor
        elif self._cursor >= self._top + rows:
            self._top = self._cursor - rows + 1
        self._top = max(0, min(self._top, max(0, len(self._keys) - rows)))

    def action_move(self, delta: int) -> None:
        """Cursor up or down a row."""
        self._set_cursor(self._cursor + delta)

    def action_page(self, direction: int) -> None:
        """Cursor up or down a page."""
        self._set_cursor(self._cursor + direction * self._visible_rows)

    def action_edge(self, direction: int) -> None:
        """Cursor to the first or last row."""
        self._set_cursor(0 if direction < 0 else len(self._keys) - 1)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Columns scroll only in a table that scrolls sideways."""
        return self.sideways or action != "scroll_columns"

    def action_scroll_columns(self, delta: int) -> None:
        """Scroll the columns sideways by `delta` columns (the fixed ones stay)."""
        left = max(0, self._left + delta)
        if self.sideways and left != self._left and (delta < 0 or self._more_right):
            self._left = left
            self._layout_width = -1
            self.refresh()

    def action_select(self) -> None:
        """Open the row under the cursor."""
        if self._keys:
            self.post_message(self.Selected(self, self._keys[self._cursor]))

    def on_click(self, event: events.Click) -> None:
        """A header click sorts; a row click moves the cursor there, or opens the row under the cursor."""
        offset = event.get_content_offset(self)
        if offset is None:
            return
        if offset.y == 0:
            x = 0
            for column, cell_width in self._layout:
                if x <= offset.x < x + cell_width + 1:
                    self.post_message(self.HeaderClicked(self, column.key))
                    return
                x += cell_width + 1
            return
        index = self._top + offset.y - 1
        if index < len(self._keys):
            if index == self._cursor or event.chain > 1:
                self.post_message(self.Selected(self, self._keys[index]))
            self._set_cursor(index)

    def on_mouse_scroll_down(self, event: events.MouseScrollDown) -> None:
        """Scroll the rows by three (with shift, the columns one to the right)."""
        if event.shift and self.sideways:
            self.action_scroll_columns(1)
        else:
            self._set_cursor(self._cursor + 3)

    def on_mouse_scroll_up(self, event: events.MouseScrollUp) -> None:
        """Scroll the rows by three (with shift, the columns one to the left)."""
        if event.shift and self.sideways:
            self.action_scroll_columns(-1)
        else:
            self._set_cursor(self._cursor - 3)

    def on_mouse_scroll_right(self, event: events.MouseScrollRight) -> None:
        """Scroll the columns one to the right."""
        event.stop()
        self.action_scroll_columns(1)

    def on_mouse_scroll_left(self, event: events.MouseScrollLeft) -> None:
        """Scroll the columns one to the left."""
        event.stop()
        self.action_scroll_columns(-1)

    def on_resize(self, event: events.Resize) -> None:
        """Keep the cursor in view."""
        self._scroll_to_cursor()


def _fit(cell: Cell, width: int, align: str) -> Text:
    if isinstance(cell, Text):
        text = cell.copy()
    elif isinstance(cell, float):
        text = Text(number(cell, width))
    else:
        text = Text(str(cell))
    text.truncate(width, overflow="ellipsis")
    if align == "right":
        text.pad_left(width - text.cell_len)
    else:
        text.pad_right(width - text.cell_len)
    return text
