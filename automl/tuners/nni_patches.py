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

from automl.config.search_space import is_nested_choice

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
    """NNI's PBTTuner that takes up a restarted experiment in the generation it was in.

    NNI's own resume starts over from the newest complete generation, with a new random exploit, so trials
    of the next generation that ran or still run before the restart are run again into the same checkpoint
    folders (and it raises a KeyError when that generation's predecessor is absent). Here the generation in
    progress is rebuilt: its members already handed out keep their parameters, the ones still running count
    when their results arrive, and only members never handed out are drawn anew.
    """

    def restore_history(
        self, history: list[tuple[dict[str, Any], float | None]], pending: list[dict[str, Any]]
    ) -> None:
        """Ended trials (value None: failed) and trials whose outcome comes later; the first call rebuilds the
        generation in progress, later ones settle its pending members."""
        if getattr(self, "_pending", None) is not None:
            for params, value in history:
                self._settle(params, value)
            return
        self._pending: dict[str, pbt_tuner.TrialInfo] = {}
        generations: dict[int, list[tuple[dict[str, Any], float | None, bool]]] = {}
        for params, value, waiting in [(p, v, False) for p, v in history] + [(p, None, True) for p in pending]:
            if "save_checkpoint_dir" in params:
                generations.setdefault(int(os.path.basename(params["save_checkpoint_dir"])), []).append(
                    (params, value, waiting)
                )
        if not generations:
            return
        newest = max(generations)
        if newest > 0 and not self._start_generation(newest, generations.get(newest - 1, [])):
            return
        self._take_members(generations[newest])

    def _start_generation(self, generation: int, before: list[tuple[dict[str, Any], float | None, bool]]) -> bool:
        """Draw generation `generation` from the complete one before it, as NNI does between generations."""
        if len(before) != self.population_size or any(waiting for _, _, waiting in before):
            return False
        self.epoch = generation - 1
        self.finished = [
            pbt_tuner.TrialInfo(
                checkpoint_dir=os.path.dirname(params["save_checkpoint_dir"]),
                hyper_parameters=params,
                score=self._score(value),
            )
            for params, value, _ in before
        ]
        self.finished_trials = self.population_size
        self._proceed_next_epoch()
        return True

    def _take_members(self, members: list[tuple[dict[str, Any], float | None, bool]]) -> None:
        """Put the generation's members handed out before the restart first, in place of fresh draws."""
        handed_out = []
        for params, value, waiting in members:
            folder = os.path.dirname(params["save_checkpoint_dir"])
            info = pbt_tuner.TrialInfo(checkpoint_dir=folder, hyper_parameters=params)
            handed_out.append(info)
            if waiting:
                self._pending[params["save_checkpoint_dir"]] = info
            else:
                self._finish(info, value)
        folders = {info.checkpoint_dir for info in handed_out}
        self.population = handed_out + [info for info in self.population if info.checkpoint_dir not in folders]
        self.pos = len(handed_out) - 1
        if self.finished_trials == self.population_size:
            self._proceed_next_epoch()

    def _settle(self, params: dict[str, Any], value: float | None) -> None:
        info = self._pending.pop(params.get("save_checkpoint_dir", ""), None)
        if info is not None:
            self._finish(info, value)
            if self.finished_trials == self.population_size:
                self._proceed_next_epoch()

    def _finish(self, info: pbt_tuner.TrialInfo, value: float | None) -> None:
        info.score = self._score(value)
        self.finished.append(info)
        self.finished_trials += 1

    def _score(self, value: float | None) -> float:
        """A trial's result; a failed one counts as the worst, as NNI's trial_end does."""
        if value is not None:
            return float(value)
        return float("inf") if self.optimize_mode == OptimizeMode.Minimize else float("-inf")


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
