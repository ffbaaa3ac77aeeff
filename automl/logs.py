"""automl's log: one logger named `automl`, and the files it is also written to (an experiment's, the daemon's)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from .paths import open_append, private_folders

log = logging.getLogger("automl")


def log_to(path: Path) -> None:
    """Also write automl's log, INFO and up, to `path`."""
    private_folders(path.parent)
    handler = logging.StreamHandler(os.fdopen(open_append(path), "a", encoding="utf-8"))
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.setLevel(logging.INFO)
    log.addHandler(handler)
