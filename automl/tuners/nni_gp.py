"""NNI's GP tuner fixed for numpy 2 and current SciPy; importing it loads sklearn's Gaussian processes."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from nni.algorithms.hpo.gp_tuner import gp_tuner, target_space
from nni.algorithms.hpo.gp_tuner.util import UtilityFunction
from scipy.optimize import minimize

from automl.tuners.nni_patches import ImportData


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
        return {key: _gp_snap(bound, value) for key, bound, value in zip(self.keys, self._bounds, x, strict=True)}


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
