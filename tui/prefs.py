"""What the dashboard remembers between runs: the trials table's columns per experiment, in
`$AUTOML_HOME/dashboard.json` (the dashboard's own file; it never writes the store)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from automl.paths import write_atomically

PREFS_FILE = "dashboard.json"


def load_columns(home: Path, exp_id: str) -> list[tuple[str, bool]] | None:
    """The columns chosen for an experiment (key, shown), in order; None when none were chosen (or the file is
    unreadable: the defaults then)."""
    chosen = _load(home).get("columns", {}).get(exp_id)
    if not isinstance(chosen, list):
        return None
    return [(str(key), bool(shown)) for key, shown in chosen if isinstance(key, str)]


def save_columns(home: Path, exp_id: str, columns: list[tuple[str, bool]] | None) -> None:
    """Remember the columns chosen for an experiment (None: forget them, back to the defaults)."""
    prefs = _load(home)
    chosen = prefs.setdefault("columns", {})
    if columns is None:
        chosen.pop(exp_id, None)
    else:
        chosen[exp_id] = [[key, shown] for key, shown in columns]
    write_atomically(home / PREFS_FILE, json.dumps(prefs, indent=1))


def _load(home: Path) -> dict[str, Any]:
    try:
        prefs = json.loads((home / PREFS_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return prefs if isinstance(prefs, dict) else {}
