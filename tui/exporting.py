"""Writing an experiment's best config to a YAML file, as `automl export EXP --best` would."""

from __future__ import annotations

import re
from pathlib import Path

from automl.errors import UserError
from automl.export import ranked, render_best
from automl.paths import write_atomically
from automl.store import Store, TrialRecord


def write_best(home: Path, exp_id: str, folder: Path) -> tuple[Path, TrialRecord]:
    """Write the best trial's params to `folder/NAME-best.yaml`; the file and the trial. UserError when there is
    no succeeded trial yet."""
    store = Store.open_for_reading(home)
    if store is None:
        raise UserError(f"no experiments exist yet under {home}")
    try:
        experiment = store.find_experiment(exp_id)
        order = ranked(store.trials(experiment.id), experiment.config["objective"]["mode"])
    finally:
        store.close()
    if not order:
        raise UserError(f"{experiment.name} has no succeeded trial yet: nothing to export")
    path = folder / f"{_file_name(experiment.name)}-best.yaml"
    write_atomically(path, render_best(order[0], "yaml"))
    return path, order[0]


def _file_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.") or "experiment"
