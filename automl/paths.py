"""Where automl keeps its data."""

from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    """The data directory: $AUTOML_HOME, default ~/.local/share/automl."""
    return Path(os.environ.get("AUTOML_HOME") or Path.home() / ".local" / "share" / "automl").expanduser()


def trial_dir(data_dir: Path, experiment_id: str, trial_id: int) -> Path:
    """Where one trial's params, metrics and logs live inside a data directory."""
    return data_dir / "experiments" / experiment_id / "trials" / str(trial_id)
