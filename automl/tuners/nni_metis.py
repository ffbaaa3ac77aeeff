"""NNI's Metis tuner fixed for Python 3.11 / numpy 2 and quiet; importing it loads sklearn's Gaussian processes.

Metis keeps its search in module functions; those few names are rebound in
NNI's modules once, when this module is first imported.
"""

from __future__ import annotations

import functools
import statistics
from collections.abc import Callable
from typing import Any

import numpy as np
from nni.algorithms.hpo.metis_tuner import lib_acquisition_function, metis_tuner
from nni.algorithms.hpo.metis_tuner.Regression_GP import CreateModel, OutlierDetection
from nni.algorithms.hpo.metis_tuner.Regression_GP import Selection as gp_selection
from nni.utils import OptimizeMode, extract_scalar_reward
from scipy.optimize import minimize

from automl.tuners.nni_patches import ImportData

METIS_GP_RESTARTS = 20
"""Optimizer restarts per Gaussian-process fit in Metis (NNI uses 250, which costs 10-30 s per suggestion)."""


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


def _fix_metis_helpers() -> None:
    lib_acquisition_function.minimize = _minimize_with_flat_start
    fit = CreateModel.create_model
    CreateModel.create_model = functools.partial(fit, n_restarts_optimizer=METIS_GP_RESTARTS)
    gp_selection.selection = _quiet_gp_selection
    OutlierDetection.outlierDetection_threaded = OutlierDetection.outlierDetection


_fix_metis_helpers()
