"""NNI 3.0's light tuners (TPE, Evolution, Batch) fixed by subclassing, and helpers shared with the heavy ones.

Importing it quiets NNI (no log on stdout, no warnings on stderr). The GP, Metis and hyperopt fixes live in
`nni_gp`, `nni_metis` and `nni_hyperopt`, imported only when their tuner is created.
"""

from __future__ import annotations

import logging
import os
import warnings
from typing import Any

import nni
import numpy as np
from nni.algorithms.hpo import batch_tuner, evolution_tuner, pbt_tuner, tpe_tuner
from nni.runtime.log import silence_stdout
from nni.utils import OptimizeMode, extract_scalar_reward

from automl.search_space import is_nested_choice

ImportData = list[dict[str, Any]]
"""NNI's import_data format: one {"parameter": params, "value": result} per finished trial."""


class TpeTuner(tpe_tuner.TpeTuner):
    """NNI's TPE whose constant liar also learns from imported (restored) results."""

    def import_data(self, data: ImportData) -> None:
        super().import_data(data)
        if self.liar is None:
            return
        sign = 1.0 if self.optimize_mode is OptimizeMode.Minimize else -1.0
        for trial in data:
            self.liar.update(sign * extract_scalar_reward(trial["value"]))


class EvolutionTuner(evolution_tuner.EvolutionTuner):
    """NNI's Evolution that serves a single queued request and can seed its population from history.

    NNI fails instead of queueing a request once its whole population is
    out, and only answers queued requests once two or more wait.
    """

    def generate_parameters(self, parameter_id: int, **kwargs: Any) -> dict[str, Any]:
        if not self.population or self.num_running_trials >= self.population_size:
            self.credit += 1
            self.param_ids.append(parameter_id)
            raise nni.NoMoreTrialError("no parameters until a running trial ends")
        return self._generate_individual(parameter_id)

    def trial_end(self, parameter_id: int, success: bool, **kwargs: Any) -> None:
        self.num_running_trials -= 1
        if not success:
            self.running_trials.pop(parameter_id, None)
            self._random_generate_individual()
        if self.credit > 0:
            waiting_id = self.param_ids.popleft()
            config = self._generate_individual(waiting_id)
            self.credit -= 1
            self.num_running_trials += 1
            self.send_trial_callback(waiting_id, config)

    def import_data(self, data: ImportData) -> None:
        sign = 1.0 if self.optimize_mode is OptimizeMode.Maximize else -1.0
        restored = [
            evolution_tuner.Individual(
                config=indexed_parameters(self.searchspace_json, trial["parameter"]),
                result=sign * extract_scalar_reward(trial["value"]),
            )
            for trial in data
        ]
        fresh = [individual for individual in self.population if individual.result is None]
        for individual in fresh[: len(restored)]:
            self.population.remove(individual)
        self.population.extend(restored)


class BatchTuner(batch_tuner.BatchTuner):
    """NNI's BatchTuner without its search-space log noise and with zero-valued results restorable."""

    def update_search_space(self, search_space: dict[str, Any]) -> None:
        self._values = self._is_valid(search_space)

    def import_data(self, data: ImportData) -> None:
        self._values = self._values[self._count + 1 :]
        self._count = -1
        for trial in data:
            if trial["parameter"] in self._values:
                self._values.remove(trial["parameter"])


class PBTTuner(pbt_tuner.PBTTuner):
    """NNI's PBTTuner whose resume (import_data) takes up from the newest complete generation, or from scratch.

    NNI's raises a KeyError when the newest generation in the data is incomplete and the one before is
    absent. Only the first import, before any proposal, is used: later ones (trials that were running at the
    restart and ended since) would restart the generations, and are ignored, as NNI ignores imports once
    trials run.
    """

    def import_data(self, data: ImportData) -> None:
        if getattr(self, "_imported", False) or self.pos >= 0 or self.running:
            return
        self._imported = True
        generations: dict[int, ImportData] = {}
        for record in data:
            if "save_checkpoint_dir" in record["parameter"]:
                generation = int(os.path.basename(record["parameter"]["save_checkpoint_dir"]))
                generations.setdefault(generation, []).append(record)
        complete = [generation for generation, records in generations.items() if len(records) == self.population_size]
        if complete:
            super().import_data(generations[max(complete)])


def indexed_parameters(space: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """Plain parameters in the `{"_index", "_value"}` form kept inside NNI's Evolution and hyperopt tuners."""
    out: dict[str, Any] = {}
    for name, spec in space.items():
        if name == "_name":
            out[name] = spec
            continue
        if name not in params:
            continue
        value = params[name]
        if spec["_type"] != "choice":
            out[name] = value
            continue
        options = spec["_value"]
        if is_nested_choice(options):
            index = [option["_name"] for option in options].index(value["_name"])
            out[name] = {"_index": index, "_value": indexed_parameters(options[index], value)}
        else:
            out[name] = {"_index": options.index(value), "_value": value}
    return out


def to_plain(value: Any) -> Any:
    """`value` with numpy scalars and arrays turned into plain Python, ready for JSON."""
    if isinstance(value, dict):
        return {key: to_plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_plain(item) for item in value]
    if isinstance(value, np.ndarray):
        return to_plain(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    return value


def _quiet_logging() -> None:
    silence_stdout()
    for name in (
        "nni",
        "GP_Tuner_AutoML",
        "Metis_Tuner_AutoML",
        "hyperopt_AutoML",
        "batch_tuner_AutoML",
        "pbt_tuner_AutoML",
        "hyperopt",
    ):
        logger = logging.getLogger(name)
        logger.setLevel(logging.WARNING)
        if not any(isinstance(handler, logging.NullHandler) for handler in logger.handlers):
            logger.addHandler(logging.NullHandler())
    noisy_modules = r"(nni|hyperopt|sklearn\.gaussian_process|sklearn\.mixture)(\.|$)"
    warnings.filterwarnings("ignore", module=noisy_modules)


_quiet_logging()
