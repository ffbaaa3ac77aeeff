"""NNI's hyperopt adapter (Anneal, legacy TPE) fixed for numpy 2; importing it loads hyperopt."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from hyperopt import anneal
from nni.algorithms.hpo import hyperopt_tuner

from automl.tuners.nni_patches import ImportData, indexed_parameters, to_plain


class HyperoptTuner(hyperopt_tuner.HyperoptTuner):
    """NNI's hyperopt adapter (Anneal, legacy TPE) fixed for numpy 2.

    Suggestions are kept as plain Python values (numpy scalars break its
    result bookkeeping), anneal uses a numpy-2-safe algorithm, a failed
    trial stops counting as running for the constant liar, and restoring
    works for nested choices and zero-valued results.
    """

    def _choose_tuner(self, algorithm_name: str) -> Callable[..., Any]:
        if algorithm_name == "anneal":
            return _anneal_suggest
        return super()._choose_tuner(algorithm_name)

    def _get_suggestion(self, random_search: bool = False) -> dict[str, Any]:
        return to_plain(super()._get_suggestion(random_search))

    def trial_end(self, parameter_id: int, success: bool, **kwargs: Any) -> None:
        if self.parallel and not success and parameter_id in self.running_data:
            self.running_data.remove(parameter_id)

    def import_data(self, data: ImportData) -> None:
        for trial in data:
            self.supplement_data_num += 1
            parameter_id = f"ImportData_{self.supplement_data_num}"
            self.total_data[parameter_id] = indexed_parameters(self.json, trial["parameter"])
            if self.parallel:
                self.running_data.append(parameter_id)
            self.receive_trial_result(parameter_id, trial["parameter"], trial["value"])


class _AnnealingAlgo(anneal.AnnealingAlgo):
    """hyperopt's annealing with its best-trial pick converted to int the numpy-2 way."""

    def choose_ltv(self, label: str, size: int) -> tuple[Any, Any, Any]:
        tids = self.node_tids[label]
        vals = self.node_vals[label]
        losses = [self.tid_losses_dct[tid] for tid in tids]
        if size == 1:
            known = set(tids)
            for tid in self.best_tids:
                if tid in known:
                    index = tids.index(tid)
                    return losses[index], tid, vals[index]
        good = self.rng.geometric(1.0 / self.avg_best_idx, size=size) - 1
        good = np.clip(good, 0, len(tids) - 1).astype("int32")
        picks = np.argsort(losses)[good]
        picks_tids = np.asarray(tids)[picks]
        if size == 1:
            self.best_tids.append(int(picks_tids[0]))
        return np.asarray(losses)[picks], picks_tids, np.asarray(vals)[picks]


def _anneal_suggest(new_ids: list[int], domain: Any, trials: Any, seed: int) -> Any:
    (new_id,) = new_ids
    return _AnnealingAlgo(domain, trials, seed)(new_id)
