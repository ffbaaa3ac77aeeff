"""Where automl keeps its data."""

from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    """The data directory: $AUTOML_HOME, default ~/.local/share/automl."""
    return Path(os.environ.get("AUTOML_HOME") or Path.home() / ".local" / "share" / "automl").expanduser()
