"""A user's own NNI `Assessor` subclass behind our `Stopper` interface, called as NNI's dispatcher calls it.

On every new intermediate result NNI calls `assess_trial(trial_job_id, history)`
with the trial's id (a string) and all its intermediate values so far, stops the
trial on `AssessResult.Bad` (or False), and calls `trial_end(trial_job_id,
success)` when a trial that reported ends. Unlike the builtin assessors, an
exception inside the user's class is not swallowed: it fails the experiment.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nni.assessor import Assessor, AssessResult

from automl.states import TrialStatus
from automl.stoppers.base import History, Stopper
from automl.tuners.base import Mode, UserCodeError
from automl.tuners.custom import build, failure, load_class


def create_custom_stopper(
    class_name: str, code_directory: Path | None, args: Mapping[str, Any], mode: Mode
) -> CustomStopper:
    """The user's assessor class built with `args` as they are; a UserError if it cannot be loaded or built."""
    assessor_class = load_class(class_name, code_directory, Assessor, "assessor")
    return CustomStopper(mode, class_name, build(assessor_class, class_name, args, "assessor"))


class CustomStopper(Stopper):
    """A user's NNI assessor judging each trial on its whole history; a missing or NaN value is passed as NaN."""

    def __init__(self, mode: Mode, class_name: str, assessor: Any) -> None:
        super().__init__(mode)
        self.name = class_name
        self._assessor = assessor
        self._values: dict[int, list[float]] = {}

    def report(self, key: int, step: int, value: float | None) -> bool:
        values = self._values.setdefault(key, [])
        if step <= len(values):
            return False
        values.append(math.nan if value is None else float(value))
        return self._judge(key, values)

    def ended(self, key: int, status: TrialStatus, value: float | None) -> None:
        if self._values.pop(key, None) is not None:
            self._call("trial_end", str(key), status == TrialStatus.SUCCEEDED)

    def restore(self, history: History) -> None:
        """Running trials keep their values; each ended one is shown its whole history once, then its end."""
        for key, values, status in history:
            plain = [math.nan if value is None else float(value) for value in values]
            if status == TrialStatus.RUNNING:
                self._values[key] = plain
            elif plain:
                self._judge(key, plain)
                self._call("trial_end", str(key), status == TrialStatus.SUCCEEDED)

    def _judge(self, key: int, values: list[float]) -> bool:
        """Whether the user's class says stop; NNI also accepts a bool (False means stop)."""
        result = self._call("assess_trial", str(key), list(values))
        if isinstance(result, bool):
            return not result
        if not isinstance(result, AssessResult):
            raise UserCodeError(f"{self.name}.assess_trial returned {result!r}, not an AssessResult")
        return result is AssessResult.Bad

    def _call(self, method: str, *args: Any) -> Any:
        try:
            return getattr(self._assessor, method)(*args)
        except (Exception, SystemExit) as exc:
            raise failure(self.name, self._assessor, method, exc) from exc
