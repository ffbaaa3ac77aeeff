"""The importance panel: each parameter's share of importance for the objective, as bars, largest first."""

from __future__ import annotations

from collections.abc import Mapping

from rich.text import Text
from textual.widgets import Static

from automl.importance import MIN_TRIALS

from .. import format as fmt


class ImportancePanel(Static):
    """Bars of the parameters' importance (PED-ANOVA, computed by the store reader off the UI thread)."""

    DEFAULT_CSS = "ImportancePanel { height: auto; }"

    def show(self, importance: Mapping[str, float], succeeded: int) -> None:
        """Draw the shares `importance` computed from `succeeded` trials, fitted to the panel's width."""
        self.update(importance_text(importance, succeeded, max(30, self.size.width or 76)))


def importance_text(importance: Mapping[str, float], succeeded: int, width: int) -> Text:
    """The panel's text at `width` cells."""
    if not importance:
        return Text(
            f"importance needs {MIN_TRIALS} succeeded trials with a value (has {succeeded})", style="bright_black"
        )
    labels = fmt.short_names(list(importance), 20)
    name_width = max(len(label) for label in labels.values())
    bar_width = max(8, width - name_width - 9)
    text = Text(no_wrap=True, overflow="ellipsis")
    text.append(f"share of importance, from {succeeded} succeeded trials (PED-ANOVA)\n", style="bright_black")
    for n, (name, share) in enumerate(importance.items()):
        filled, empty = fmt.bar(share, bar_width)
        text.append(f"{labels[name]:<{name_width}} ")
        text.append(filled, style=fmt.SERIES_COLORS[0])
        text.append(empty, style="bright_black")
        text.append(f" {share * 100:>5.1f}%" + ("\n" if n < len(importance) - 1 else ""))
    return text
