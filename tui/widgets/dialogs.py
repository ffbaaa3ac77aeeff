"""Modal dialogs: a yes/no confirmation for destructive actions, and a whole-number input."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.validation import Number
from textual.widgets import Button, Input, Label


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
