"""NNI's Medianstop and Curvefitting assessors behind our `Stopper` interface.

`nni` (about a second to import) is loaded when such a stopper is created, not
when this module is imported, so argument checks stay cheap. NNI sees our trial
keys as its trial job ids and, on every report, the whole list of the trial's
intermediate values so far, as NNI's own dispatcher hands them over; None and
NaN become the worst value for the optimize mode. An exception inside NNI never
reaches the caller: the trial goes on, and a warning is logged once per stopper.
"""

from __future__ import annotations

import logging
import math
from abc import abstractmethod
from typing import Any

from automl.states import TrialStatus
from automl.stoppers.base import History, Stopper, check_int
from automl.tuners.base import Mode

log = logging.getLogger(__name__)


class NniAssessorStopper(Stopper):
    """One NNI assessor driven through report/ended/restore, with each trial's values kept on our side."""

    name = "NNI assessor"

    def __init__(self, mode: Mode, assessor: Any) -> None:
        super().__init__(mode)
        from nni.assessor import AssessResult
        from nni.runtime.log import silence_stdout

        silence_stdout()
        self._bad = AssessResult.Bad
        self._assessor = assessor
        self._values: dict[int, list[float]] = {}
        self._warned = False

    def report(self, key: int, step: int, value: float | None) -> bool:
        values = self._values.setdefault(key, [])
        if step <= len(values):
            return False
        values.append(self._plain(value))
        return self._judge(key, values)

    def ended(self, key: int, status: TrialStatus, value: float | None) -> None:
        values = self._values.pop(key, [])
        self._end(key, values, status == TrialStatus.SUCCEEDED)

    def restore(self, history: History) -> None:
        for key, values, status in history:
            plain = [self._plain(value) for value in values]
            if status == TrialStatus.SUCCEEDED:
                self._replay(key, plain)
            else:
                self._values[key] = plain

    def _judge(self, key: int, values: list[float]) -> bool:
        """Whether the trial with these values (its latest last) must stop now."""
        return self._call(self._assessor.assess_trial, key, list(values)) is self._bad

    @abstractmethod
    def _end(self, key: int, values: list[float], success: bool) -> None:
        """Tell NNI the trial ended, if NNI holds anything about it."""

    @abstractmethod
    def _replay(self, key: int, values: list[float]) -> None:
        """Bring NNI to the state it would be in had it seen this succeeded trial live."""

    def _plain(self, value: float | None) -> float:
        if value is None or math.isnan(value):
            return -math.inf if self.mode == "maximize" else math.inf
        return float(value)

    def _call(self, method: Any, *args: Any) -> Any:
        """`method(*args)`, or _FAILED when it raises: the trial goes on, and the first failure is logged."""
        try:
            return method(*args)
        except Exception as exc:
            if not self._warned:
                self._warned = True
                log.warning(
                    "%s could not judge a trial (%s); trials it cannot judge go on", self.name, exc, exc_info=exc
                )
            return _FAILED


class MedianstopStopper(NniAssessorStopper):
    """NNI's median stopping rule: stop a trial whose best value so far is worse than the median of the running
    averages of succeeded trials at the same step; judged from `start_step` reports on.

    A None or NaN value counts as the worst, so it stops a trial only when its best value so far is below the median.
    Each judgement is cheap (linear in the number of succeeded trials).
    """

    name = "Medianstop"

    def __init__(self, mode: Mode, start_step: int = 0) -> None:
        self.start_step = check_medianstop(mode, start_step)
        from nni.algorithms.hpo.medianstop_assessor import MedianstopAssessor

        logging.getLogger("medianstop_Assessor").setLevel(logging.WARNING)
        super().__init__(mode, MedianstopAssessor(optimize_mode=mode, start_step=self.start_step))

    def _end(self, key: int, values: list[float], success: bool) -> None:
        if values and len(values) >= self.start_step:
            self._call(self._assessor.trial_end, key, success)

    def _replay(self, key: int, values: list[float]) -> None:
        if values and len(values) >= self.start_step:
            self._call(self._assessor.assess_trial, key, list(values))
            self._call(self._assessor.trial_end, key, True)


class CurvefittingStopper(NniAssessorStopper):
    """NNI's learning-curve extrapolation: stop a trial whose predicted value at `epoch_num` is below `threshold`
    times the best last intermediate value of the succeeded trials. Maximize only (it fits rising curves).

    Judged at steps start_step, start_step + gap, ... once some trial has succeeded. A curve holding None, NaN or
    -inf cannot be fitted: it is stopped at its next judgement; one holding +inf goes on. A judgement takes 10-50 ms
    and holds a process-wide lock: call it off the event loop.
    """

    name = "Curvefitting"

    def __init__(self, mode: Mode, epoch_num: int, start_step: int = 6, threshold: float = 0.95, gap: int = 1) -> None:
        self.epoch_num, self.start_step, self.threshold, self.gap = check_curvefitting(
            mode, epoch_num, start_step, threshold, gap
        )
        from automl.stoppers.nni_curvefitting import CurvefittingAssessor

        assessor = CurvefittingAssessor(
            epoch_num=self.epoch_num, start_step=self.start_step, threshold=self.threshold, gap=1
        )
        super().__init__(mode, assessor)
        self._judging = False

    def _judge(self, key: int, values: list[float]) -> bool:
        step = len(values)
        if not self._judging or step < self.start_step or (step - self.start_step) % self.gap:
            return False
        if not all(math.isfinite(value) for value in values):
            return -math.inf in values
        return super()._judge(key, values)

    def _end(self, key: int, values: list[float], success: bool) -> None:
        if success:
            self._replay(key, values)

    def _replay(self, key: int, values: list[float]) -> None:
        """Count the trial's last value towards the best; NNI reads it from `trial_history`, put in place first."""
        if not values or not math.isfinite(values[-1]):
            return
        self._assessor.trial_history = list(values)
        if self._call(self._assessor.trial_end, key, True) is not _FAILED:
            self._judging = True


def check_medianstop(mode: Mode, start_step: object = 0) -> int:
    """Medianstop's start_step, checked without loading NNI; a ValueError says what is allowed."""
    return check_int("start_step", start_step, 0)


def check_curvefitting(
    mode: Mode, epoch_num: object, start_step: object = 6, threshold: object = 0.95, gap: object = 1
) -> tuple[int, int, float, int]:
    """Curvefitting's (epoch_num, start_step, threshold, gap), checked without loading NNI."""
    if mode != "maximize":
        raise ValueError(
            "Curvefitting only supports optimize mode 'maximize' (it extrapolates rising curves such as "
            f"accuracy), got {mode!r}"
        )
    if not isinstance(threshold, (int, float)) or isinstance(threshold, bool) or not 0 <= threshold < math.inf:
        raise ValueError(f"threshold must be a number >= 0, got {threshold!r}")
    return (
        check_int("epoch_num", epoch_num, 1),
        check_int("start_step", start_step, 0),
        float(threshold),
        check_int("gap", gap, 1),
    )


_FAILED = object()
"""What `NniAssessorStopper._call` returns when NNI raised."""
