"""Lets unmodified NNI trial scripts run under automl.

The launcher sets NNI_TRIAL_COMMAND_CHANNEL to this class, so
`nni.get_next_parameter()` reads our params file and `nni.report_*_result()`
append to our metrics file. Imported only inside trials that import nni.
"""

from __future__ import annotations

import os
from typing import Any

from nni.runtime.trial_command_channel.base import TrialCommandChannel
from nni.typehint import ParameterRecord

from . import trial


class TrialChannel(TrialCommandChannel):
    """NNI's trial-side channel over automl's params and metrics files."""

    def __init__(self) -> None:
        self._handed_out = False

    def receive_parameter(self) -> ParameterRecord | None:
        """The trial's one parameter set; None afterwards (a trial runs one configuration)."""
        if self._handed_out:
            return None
        self._handed_out = True
        params = trial.get_params()
        bare = os.environ.get(trial.BARE_PARAMETER_ENV)
        if bare and list(params) == [bare]:  # a plain value of NNI's BatchTuner: NNI hands it out alone
            return ParameterRecord(parameter_id=int(trial.trial_id() or 0), parameters=params[bare])
        return ParameterRecord(parameter_id=int(trial.trial_id() or 0), parameters=params)

    def send_metric(
        self,
        type: str,
        parameter_id: int | None,
        trial_job_id: str,
        sequence: int,  # noqa: A002
        value: Any,
    ) -> None:
        """Append NNI's PERIODICAL (step = sequence + 1) or FINAL metric to the metrics file."""
        if type == "FINAL":
            trial._emit("final", None, value)
        else:
            trial._emit("intermediate", sequence + 1, value)
