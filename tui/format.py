"""Short, fixed-width spellings of numbers, durations, money and statuses, with their colours."""

from __future__ import annotations

import math
import string
from typing import Any

DASH = "—"

STATUS_STYLE = {
    "running": "bold green",
    "waiting": "cyan",
    "paused": "bold yellow",
    "succeeded": "green",
    "done": "green",
    "early_stopped": "yellow",
    "failed": "bold red",
    "killed": "red",
    "stopped": "magenta",
    "interrupted": "yellow",
}

STATUS_ICON = {
    "running": "▶",
    "waiting": "·",
    "paused": "‖",
    "succeeded": "✓",
    "done": "✓",
    "early_stopped": "↓",
    "failed": "✗",
    "killed": "✗",
    "stopped": "■",
    "interrupted": "!",
}

STATUS_WORD = {"early_stopped": "early-stop", "interrupted": "interrupt"}

CURRENCY_SIGN = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥"}

SERIES_COLORS = (
    "#5fafff",
    "#ff875f",
    "#87d75f",
    "#d787ff",
    "#5fd7d7",
    "#ffd75f",
    "#ff5f87",
    "#afaf87",
    "#87afd7",
    "#d7af87",
)
"""Curve colours, all exact entries of the xterm 256-colour palette so 256-colour terminals show them unchanged."""

BEST_COLOR = "#ffd700"


def status_style(status: str | None) -> str:
    """The colour of a trial or experiment status."""
    return STATUS_STYLE.get(status or "", "white")


def status_label(status: str | None) -> str:
    """A status as an icon and a short word, e.g. '▶ running'."""
    status = status or "unknown"
    return f"{STATUS_ICON.get(status, '?')} {STATUS_WORD.get(status, status)}"


def number(value: float | None, width: int = 8) -> str:
    """A metric value in at most `width` characters, with as many significant digits as fit."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return DASH
    for digits in (5, 4, 3, 2, 1):
        text = _compact(f"{value:.{digits}g}")
        if len(text) <= width:
            return text
        text = _compact(f"{value:.{digits - 1}e}")
        if len(text) <= width:
            return text
    return _compact(f"{value:.0e}")


def _compact(text: str) -> str:
    """Scientific notation without the exponent's plus sign and leading zeros: 8.01e-4, 1.2e5; 'e0' dropped."""
    if "e" not in text:
        return text
    mantissa, _, exponent = text.partition("e")
    power = int(exponent)
    return mantissa if power == 0 else f"{mantissa}e{power}"


def param(value: Any, width: int = 8) -> str:
    """A parameter value, short: numbers as `number`, nested choices by their name."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (int, float)):
        return number(value, width) if isinstance(value, float) else str(value)
    if isinstance(value, dict):
        return str(value.get("_name", "{…}"))
    if value is None:
        return DASH
    return str(value)


def duration(seconds: float | None) -> str:
    """Seconds as '42s', '3m12s', '1h05m' or '2d03h'."""
    if seconds is None or seconds < 0:
        return DASH
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h"


def money(amount: float | None, currency: str | None) -> str:
    """An amount of money with its currency's sign ('$4.10') or code ('4.10 CHF')."""
    if amount is None:
        return DASH
    text = f"{amount:,.2f}" if amount < 1000 else f"{amount:,.0f}"
    sign = CURRENCY_SIGN.get((currency or "").upper())
    if sign is not None:
        return f"{sign}{text}"
    return f"{text} {currency}" if currency else text


def node_name(node: str) -> str:
    """A cluster node as the dashboard names it: a Ray node id (56 hex digits) by its first 8, like the
    experiment ids; any other name whole."""
    return node[:8] if len(node) > 12 and all(c in string.hexdigits for c in node) else node


def mib(value: float | None) -> str:
    """Memory in MiB as '512M' or '9.8G'."""
    if value is None:
        return DASH
    if value < 1024:
        return f"{value:.0f}M"
    return f"{value / 1024:.1f}G"


def load_style(percent: float | None) -> str:
    """Green, yellow or red for a load in percent."""
    if percent is None:
        return "bright_black"
    if percent < 50:
        return "green"
    if percent < 80:
        return "yellow"
    return "red"


def bar(fraction: float | None, width: int) -> tuple[str, str]:
    """A horizontal bar of `width` cells filled to `fraction` (eighths of a cell): the filled and empty parts."""
    if width <= 0:
        return "", ""
    fraction = 0.0 if fraction is None else min(1.0, max(0.0, fraction))
    eighths = round(fraction * width * 8)
    full, part = divmod(eighths, 8)
    filled = "█" * full + (" ▏▎▍▌▋▊▉"[part] if part else "")
    return filled, "░" * (width - len(filled))


SPARK = "▁▂▃▄▅▆▇█"


def sparkline(values: list[float], width: int, top: float = 100.0) -> list[tuple[str, str]]:
    """The last `width` values as block characters scaled to `top`, each with its load colour."""
    cells = []
    for value in values[-width:]:
        level = 0 if top <= 0 else min(len(SPARK) - 1, max(0, int(value / top * (len(SPARK) - 1) + 0.5)))
        cells.append((SPARK[level], load_style(value / top * 100 if top > 0 else None)))
    return cells


def short_names(names: list[str], width: int | None = None) -> dict[str, str]:
    """Headers for parameter names: their last dotted parts, as few as keep them apart, cut to `width` (with '…'
    in the middle, keeping the ends that tell them apart); never two alike."""
    parts = {name: name.split(".") for name in names}
    labels: dict[str, str] = {}
    for name in names:
        for keep in range(1, len(parts[name]) + 1):
            label = ".".join(parts[name][-keep:])
            if not any(other != name and _ends_with(parts[other], parts[name][-keep:]) for other in names):
                break
        labels[name] = label
    if width is not None:
        labels = {name: _cut(label, width) for name, label in labels.items()}
    return _unique(labels, names)


def _ends_with(parts: list[str], tail: list[str]) -> bool:
    return len(parts) >= len(tail) and parts[-len(tail) :] == tail


def _cut(label: str, width: int) -> str:
    """`label` in at most `width` characters: its start and, after '…', its last few characters."""
    if len(label) <= width:
        return label
    end = min(3, max(0, width - 4))
    return label[: width - 1 - end] + "…" + (label[-end:] if end else "")


def _unique(labels: dict[str, str], names: list[str]) -> dict[str, str]:
    """Number the labels that still read alike (after cutting), keeping their width."""
    seen: dict[str, int] = {}
    for name in names:
        seen[labels[name]] = seen.get(labels[name], 0) + 1
    counts: dict[str, int] = {}
    result = {}
    for name in names:
        label = labels[name]
        if seen[label] > 1:
            counts[label] = counts.get(label, 0) + 1
            suffix = str(counts[label])
            label = label[: max(1, len(label) - len(suffix))] + suffix
        result[name] = label
    return result
