"""Modal dialogs: a yes/no confirmation for destructive actions, a whole-number input, and the choice of columns."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.validation import Number
from textual.widgets import Button, Input, Label, SelectionList, Static
from textual.widgets.selection_list import Selection


class ConfirmDialog(ModalScreen[bool]):
    """Ask before doing something that cannot be undone; dismisses with True for yes."""

    BINDINGS = [
        Binding("y", "answer(True)", "Yes", id="dialog.yes"),
        Binding("n,escape", "answer(False)", "No", id="dialog.no"),
    ]

    def __init__(self, question: str, action: str) -> None:
        super().__init__()
        self.question, self.action = question, action

    def compose(self) -> ComposeResult:
        """The question and two buttons."""
        with Vertical(classes="dialog"):
            yield Label(self.question, classes="dialog-question")
            with Horizontal(classes="dialog-buttons"):
                yield Button(f"{self.action} (y)", variant="error", id="yes")
                yield Button("Cancel (n)", id="no")

    def on_mount(self) -> None:
        """Focus Cancel, so that Enter alone does no harm."""
        self.query_one("#no", Button).focus()

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, yes: bool) -> None:
        """Close the dialog with the answer."""
        self.dismiss(yes)


class NumberDialog(ModalScreen["int | None"]):
    """Ask for a whole number of at least `minimum`; dismisses with it, or None when cancelled."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="dialog.cancel")]

    def __init__(self, question: str, value: int, minimum: int = 1) -> None:
        super().__init__()
        self.question, self.value, self.minimum = question, value, minimum

    def compose(self) -> ComposeResult:
        """The question, the input and a hint."""
        with Vertical(classes="dialog"):
            yield Label(self.question, classes="dialog-question")
            yield Input(
                str(self.value),
                type="integer",
                validators=[Number(minimum=self.minimum)],
                id="number",
                select_on_focus=True,
            )
            yield Label(f"Enter to apply (at least {self.minimum}), Escape to cancel", classes="dialog-hint")

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        if event.validation_result is not None and not event.validation_result.is_valid:
            self.notify(f"enter a whole number of at least {self.minimum}", severity="warning")
            return
        self.dismiss(int(event.value))

    def action_cancel(self) -> None:
        """Close without a value."""
        self.dismiss(None)


class ColumnsDialog(ModalScreen["list[tuple[str, bool]] | None"]):
    """Pick, reorder and hide the trials table's columns; dismisses with every column's key and whether it shows,
    in the chosen order, or None to go back to the default columns."""

    BINDINGS = [
        Binding("shift+up,minus", "move(-1)", "Move up", id="columns.up"),
        Binding("shift+down,plus", "move(1)", "Move down", id="columns.down"),
        Binding("d", "default", "Default columns", id="columns.default"),
        Binding("escape", "done", "Done", id="columns.done"),
    ]

    def __init__(self, columns: list[tuple[str, str, bool]]) -> None:
        super().__init__()
        self.columns = list(columns)  # (key, header, shown)

    def compose(self) -> ComposeResult:
        """The columns as a checklist, and a hint."""
        with Vertical(classes="dialog"):
            yield Label("Columns of the trials table", classes="dialog-question")
            yield SelectionList[str](*self._selections(), id="columns")
            yield Label("space show/hide · -/+ move · d default · esc done", classes="dialog-hint")

    def _selections(self) -> list[Selection[str]]:
        return [Selection(header, key, shown) for key, header, shown in self.columns]

    @on(SelectionList.SelectedChanged)
    def _toggled(self, event: SelectionList.SelectedChanged) -> None:
        chosen = set(event.selection_list.selected)
        self.columns = [(key, header, key in chosen) for key, header, _ in self.columns]

    def action_move(self, by: int) -> None:
        """Move the highlighted column up or down."""
        checklist = self.query_one("#columns", SelectionList)
        at = checklist.highlighted
        if at is None or not 0 <= at + by < len(self.columns):
            return
        self.columns[at], self.columns[at + by] = self.columns[at + by], self.columns[at]
        checklist.clear_options()
        checklist.add_options(self._selections())
        checklist.highlighted = at + by

    def action_default(self) -> None:
        """Back to the default columns."""
        self.dismiss(None)

    def action_done(self) -> None:
        """Close, keeping the choice."""
        self.dismiss([(key, shown) for key, _, shown in self.columns])


class KeysDialog(ModalScreen[None]):
    """Every key of the screen below, with what it does; any of escape, ? or q closes it."""

    BINDINGS = [Binding("escape,question_mark,q", "close", "Close", id="keys.close")]

    def __init__(self, rows: list[tuple[str, str]]) -> None:
        super().__init__()
        self.rows = rows  # (keys, what they do)

    def compose(self) -> ComposeResult:
        """The keys as two aligned columns in a scrollable box."""
        width = max((len(keys) for keys, _ in self.rows), default=0)
        with Vertical(classes="dialog"):
            yield Label("Keys", classes="dialog-question")
            with VerticalScroll(id="keys"):
                yield Static("\n".join(f"{keys:>{width}}  {what}" for keys, what in self.rows))
            yield Label("escape or ? closes · ctrl+p: every command", classes="dialog-hint")

    def action_close(self) -> None:
        """Back to the screen."""
        self.dismiss(None)
