"""NNI 3.0 tuners fixed for numpy 2, current SciPy and a quiet host process.

NNI is archived, so its bugs are fixed here by subclassing. Metis keeps its
search in module functions; those few names are rebound in NNI's modules
once, when this module is first imported. Importing this module also stops
NNI from printing its log to stdout and from leaking warnings to stderr.
"""

from __future__ import annotations

import functools
import logging
import math
import statistics
import warnings
from collections.abc import Callable
from typing import Any

import nni
import numpy as np
from hyperopt import anneal
from nni.algorithms.hpo import batch_tuner, evolution_tuner, hyperopt_tuner, tpe_tuner
from nni.algorithms.hpo.gp_tuner import gp_tuner, target_space
from nni.algorithms.hpo.gp_tuner.util import UtilityFunction
from nni.algorithms.hpo.metis_tuner import lib_acquisition_function, metis_tuner
from nni.algorithms.hpo.metis_tuner.Regression_GP import CreateModel, OutlierDetection
from nni.algorithms.hpo.metis_tuner.Regression_GP import Selection as gp_selection
from nni.runtime.log import silence_stdout
from nni.utils import OptimizeMode, extract_scalar_reward
from scipy.optimize import minimize

METIS_GP_RESTARTS = 20
"""Optimizer restarts per Gaussian-process fit in Metis (NNI uses 250, which costs 10-30 s per suggestion)."""

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


class GPTuner(gp_tuner.GPTuner):
    """NNI's GP tuner fixed for numpy 2 / current SciPy, keeping values inside their declared ranges.

    Pending trials enter the model with the worst result seen so far (a
    constant liar), so parallel suggestions do not pile up on one point.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._pending: dict[int, dict[str, Any]] = {}

    def update_search_space(self, search_space: dict[str, Any]) -> None:
        self._space = _GPSpace(search_space, self._random_state)

    def generate_parameters(self, parameter_id: int, **kwargs: Any) -> dict[str, Any]:
        space = self._space
        if space.len() < self._cold_start_num:
            x = space.random_sample()
        else:
            features, targets = space.params, space.target
            if self._pending:
                lies = np.array([space.params_to_array(p) for p in self._pending.values()], dtype=float)
                features = np.vstack([features, lies])
                targets = np.concatenate([targets, np.full(len(lies), targets.min())])
            self._gp.fit(features, targets)
            utility = UtilityFunction(kind=self._utility, kappa=self._kappa, xi=self._xi)
            x = _gp_acquisition_max(
                utility.utility,
                self._gp,
                space,
                float(space.target.max()),
                self._selection_num_warm_up,
                self._selection_num_starting_points,
            )
        params = space.array_to_params(x)
        self._pending[parameter_id] = params
        return params

    def receive_trial_result(self, parameter_id: int, parameters: dict, value: Any, **kwargs: Any) -> None:
        self._pending.pop(parameter_id, None)
        super().receive_trial_result(parameter_id, parameters, value, **kwargs)

    def trial_end(self, parameter_id: int, success: bool, **kwargs: Any) -> None:
        self._pending.pop(parameter_id, None)

    def import_data(self, data: ImportData) -> None:
        for trial in data:
            self.receive_trial_result(-1, trial["parameter"], trial["value"])


class MetisTuner(metis_tuner.MetisTuner):
    """NNI's Metis fixed for Python 3.11 / numpy 2, quiet, with zero-valued results restorable.

    Choice bounds are sorted so its optimizer sees the real numeric range.
    """

    def update_search_space(self, search_space: dict[str, Any]) -> None:
        self.key_order = list(search_space)
        self.x_bounds, self.x_types = [], []
        for spec in search_space.values():
            kind, values = spec["_type"], spec["_value"]
            if kind == "quniform":
                low, high, q = (float(v) for v in values)
                if q == 1 and low.is_integer() and high.is_integer():
                    self.x_bounds.append([int(low), int(high) + 1])
                    self.x_types.append("range_int")
                else:
                    grid = np.clip(np.arange(np.round(low / q), np.round(high / q) + 1) * q, low, high)
                    self.x_bounds.append([float(v) for v in grid])
                    self.x_types.append("discrete_int")
            elif kind == "randint":
                self.x_bounds.append([int(values[0]), int(values[1])])
                self.x_types.append("range_int")
            elif kind == "uniform":
                self.x_bounds.append([float(values[0]), float(values[1])])
                self.x_types.append("range_continuous")
            else:
                self.x_bounds.append(sorted(values))
                self.x_types.append("discrete_int")
        self.minimize_starting_points = metis_tuner._rand_init(
            self.x_bounds, self.x_types, self.selection_num_starting_points
        )

    def receive_trial_result(self, parameter_id: Any, parameters: dict, value: Any, **kwargs: Any) -> None:
        loss = extract_scalar_reward(value)
        if self.optimize_mode is OptimizeMode.Maximize:
            loss = -loss
        sample_x = [parameters[key] for key in self.key_order]
        if sample_x in self.samples_x:
            index = self.samples_x.index(sample_x)
            self.samples_y[index].append(loss)
            self.samples_y_aggregation[index] = [statistics.median(self.samples_y[index])]
        else:
            self.samples_x.append(sample_x)
            self.samples_y.append([loss])
            self.samples_y_aggregation.append([loss])

    def import_data(self, data: ImportData) -> None:
        for trial in data:
            self.total_data.append(trial["parameter"])
            self.receive_trial_result(-1, trial["parameter"], trial["value"])


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


def is_nested_choice(options: list[Any]) -> bool:
    """Whether a choice's options are nested search spaces (mappings with a `_name`)."""
    return bool(options) and all(isinstance(option, dict) and "_name" in option for option in options)


class _GPSpace(target_space.TargetSpace):
    """GP's parameter space: numpy-2-safe sampling, no print on repeated points, legal values out."""

    def __init__(self, search_space: dict[str, Any], random_state: np.random.RandomState) -> None:
        super().__init__(search_space, random_state)
        self.minmax = np.array([_gp_range(bound) for bound in self._bounds], dtype=float)

    def random_sample(self) -> np.ndarray:
        return self.random_samples(1)[0]

    def random_samples(self, count: int) -> np.ndarray:
        """`count` random points, one per row, drawn column by column (NNI draws them one value at a time)."""
        columns = [_gp_samples(bound, self._random_state, count) for bound in self._bounds]
        return np.column_stack(columns).astype(float)

    def params_to_array(self, params: dict[str, Any]) -> np.ndarray:
        return np.array([float(params[key]) for key in self.keys])

    def register(self, params: dict[str, Any], target: float) -> None:
        x = self.params_to_array(params)
        self._cache[target_space._hashable(x)] = target
        self._params = np.concatenate([self._params, x.reshape(1, -1)])
        self._target = np.concatenate([self._target, [target]])

    def array_to_params(self, x: np.ndarray) -> dict[str, Any]:
        return {
            key: _gp_snap(bound, value) for key, bound, value in zip(self.keys, self._bounds, x, strict=True)
        }


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


def _gp_acquisition_max(
    utility: Callable[..., np.ndarray],
    gp: Any,
    space: _GPSpace,
    y_max: float,
    num_warmup: int,
    num_starting_points: int,
) -> np.ndarray:
    candidates = space.random_samples(num_warmup)
    scores = utility(candidates, gp=gp, y_max=y_max)
    best_x, best_score = candidates[scores.argmax()], float(scores.max())
    for _ in range(num_starting_points):
        result = minimize(
            lambda x: -float(utility(x.reshape(1, -1), gp=gp, y_max=y_max)[0]),
            space.random_sample(),
            bounds=space.minmax,
            method="L-BFGS-B",
        )
        if result.success and -float(result.fun) >= best_score:
            best_x, best_score = result.x, -float(result.fun)
    return np.clip(best_x, space.minmax[:, 0], space.minmax[:, 1])


def _gp_range(bound: dict[str, Any]) -> tuple[float, float]:
    kind, values = bound["_type"], bound["_value"]
    if kind == "choice":
        return min(values), max(values)
    if kind == "randint":
        return values[0], values[1] - 1
    return values[0], values[1]


def _gp_samples(bound: dict[str, Any], random_state: np.random.RandomState, count: int) -> np.ndarray:
    kind, values = bound["_type"], bound["_value"]
    if kind == "choice":
        return np.asarray(values, dtype=float)[random_state.randint(len(values), size=count)]
    if kind == "randint":
        return random_state.randint(values[0], values[1], size=count).astype(float)
    low, high = float(values[0]), float(values[1])
    if "log" in kind:
        x = np.exp(random_state.uniform(math.log(low), math.log(high), size=count))
    else:
        x = random_state.uniform(low, high, size=count)
    if kind.startswith("q"):
        x = np.clip(np.round(x / values[2]) * values[2], low, high)
    return x


def _gp_snap(bound: dict[str, Any], x: float) -> Any:
    kind, values = bound["_type"], bound["_value"]
    if kind == "choice":
        return min(values, key=lambda value: abs(value - x))
    low, high = _gp_range(bound)
    if kind == "randint":
        return int(min(max(round(x), low), high))
    if kind in ("quniform", "qloguniform"):
        q = values[2]
        x = round(x / q) * q
    return float(min(max(x, low), high))


def _minimize_with_flat_start(fun: Callable[..., Any], x0: Any, *args: Any, **kwargs: Any) -> Any:
    return minimize(fun, np.ravel(x0), *args, **kwargs)


def _quiet_gp_selection(
    acquisition_function: str,
    samples_y_aggregation: list,
    x_bounds: list,
    x_types: list,
    regressor_gp: Any,
    minimize_starting_points: list,
    minimize_constraints_fun: Callable[..., bool] | None = None,
) -> dict[str, Any] | None:
    predict = gp_selection.gp_prediction.predict
    if acquisition_function == "lc":
        return lib_acquisition_function.next_hyperparameter_lowest_confidence(
            predict, [regressor_gp], x_bounds, x_types, minimize_starting_points, minimize_constraints_fun
        )
    if acquisition_function == "lm":
        return lib_acquisition_function.next_hyperparameter_lowest_mu(
            predict, [regressor_gp], x_bounds, x_types, minimize_starting_points, minimize_constraints_fun
        )
    return lib_acquisition_function.next_hyperparameter_expected_improvement(
        predict,
        [regressor_gp],
        x_bounds,
        x_types,
        samples_y_aggregation,
        minimize_starting_points,
        minimize_constraints_fun,
    )


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


def _fix_metis_helpers() -> None:
    lib_acquisition_function.minimize = _minimize_with_flat_start
    fit = CreateModel.create_model
    CreateModel.create_model = functools.partial(fit, n_restarts_optimizer=METIS_GP_RESTARTS)
    gp_selection.selection = _quiet_gp_selection
    OutlierDetection.outlierDetection_threaded = OutlierDetection.outlierDetection


_quiet_logging()
_fix_metis_helpers()
