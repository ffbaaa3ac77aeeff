"""NNI 3.0's Curvefitting assessor, fixed by subclassing; importing it loads NNI.

What is fixed:
- its curve model evaluates the MCMC likelihood point by point in Python, so
  one prediction takes about 1 s at 20 intermediate results and 10 s at 50;
  here the same numbers come from array operations, tens of milliseconds at any length;
- fitted curve parameters live in one module-level dict of NNI's, so a curve
  whose fit fails keeps the parameters of the last fit, maybe another trial's,
  and two assessors in two threads overwrite each other's: here every
  prediction starts from NNI's defaults, one at a time.
NNI's `trial_end` reads the last value of whichever trial was judged last: the
caller puts the ended trial's values in `trial_history` before calling it.
"""

from __future__ import annotations

import copy
import logging
import threading
import warnings
from typing import Any

import numpy as np
from nni.algorithms.hpo.curvefitting_assessor import curvefitting_assessor, curvefunctions, model_factory
from nni.assessor import AssessResult
from scipy.optimize import OptimizeWarning

_PREDICTING = threading.Lock()
"""One prediction at a time: the fitted parameters are NNI's module-level state."""

_DEFAULT_PARAMETERS = copy.deepcopy(curvefunctions.model_para)
"""NNI's starting parameters of its twelve curves, copied before any fit changes them."""


class CurvefittingAssessor(curvefitting_assessor.CurvefittingAssessor):
    """NNI's Curvefitting assessor predicting with `CurveModel`, each prediction from a clean slate.

    It judges whenever asked once a trial has succeeded: start step, gap and
    values that cannot be fitted are the caller's business. Exceptions propagate.
    """

    def assess_trial(self, trial_job_id: Any, trial_history: list[float]) -> AssessResult:
        self.trial_history = list(trial_history)
        if not self.set_best_performance:
            return AssessResult.Good
        with _PREDICTING, np.errstate(all="ignore"):
            reset_curve_parameters()
            predicted = CurveModel(self.target_pos).predict(self.trial_history)
        if predicted is None or predicted > self.completed_best_performance * self.threshold:
            return AssessResult.Good
        return AssessResult.Bad


class CurveModel(model_factory.CurveModel):
    """NNI's curve model with the MCMC's likelihood and prior computed on arrays: the same numbers, much faster.

    The effective curves are evaluated once per prediction at every observed
    step and at the target step; each weight sample then combines them with
    one matrix product.
    """

    def mcmc_sampling(self) -> None:
        steps = [*range(1, self.point_num + 1), self.target_pos]
        self._curves = np.array([[self.predict_y(model, step) for step in steps] for model in self.effective_model])
        super().mcmc_sampling()

    def target_distribution(self, samples: Any) -> np.ndarray:
        weights = np.asarray(samples, dtype=float)
        combined = weights @ self._curves
        delta = np.asarray(self.trial_history, dtype=float) - combined[:, :-1]
        sigma_sq = np.mean(delta * delta, axis=1, keepdims=True)
        density = np.exp(np.square(delta) / (-2.0 * sigma_sq)) / np.sqrt(2 * np.pi * np.sqrt(sigma_sq))
        likelihood = np.prod(density, axis=1)
        falling = combined[:, 0] >= combined[:, -1]
        prior = (np.all(weights > 0, axis=1) & ~falling).astype(float)
        return likelihood * prior


def reset_curve_parameters() -> None:
    """Put NNI's shared curve parameters back to its defaults, so a prediction depends on its own trial only."""
    for model, parameters in _DEFAULT_PARAMETERS.items():
        curvefunctions.model_para[model][:] = parameters


class _RoutineFitFailures(logging.Filter):
    """Drops NNI's log of each curve that cannot be fitted (fewer results than the curve has parameters):
    routine while a trial has reported fewer than four results, and NNI goes on with the other curves."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Exceptions in fit_theta")


_nni_log = logging.getLogger("curvefitting_Assessor")
_nni_log.setLevel(logging.WARNING)
_nni_log.addFilter(_RoutineFitFailures())
warnings.filterwarnings("ignore", category=OptimizeWarning, module=r"nni\.algorithms\.hpo\.curvefitting_assessor")
