"""What a trial script imports: its parameters in, its metrics out.

Standard library only, so that importing it adds nothing measurable to a
trial's start-up. Inside an experiment the launcher sets the environment
variables below; outside one the script runs standalone: `get_params` returns
the defaults (merged with `AUTOML_PARAMS_FILE` if that is set by hand) and
reported metrics are printed to stderr.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time

TYPE_CHECKING = False  # importing `typing` would cost a few ms on every trial start
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any

__all__ = ["get_params", "report", "report_final", "trial_id", "experiment_id", "trial_dir"]

PARAMS_ENV = "AUTOML_PARAMS_FILE"
METRICS_ENV = "AUTOML_METRICS_FILE"
BARE_PARAMETER_ENV = "AUTOML_NNI_BARE_PARAMETER"  # NNI's BatchTuner hands a plain value out bare: which parameter

_intermediate_count = 0
_final_reported = False


def get_params(defaults: dict[str, Any] | None = None) -> dict[str, Any]:
    """The trial's parameters: `defaults` overlaid with the ones the tuner chose."""
    params = dict(defaults or {})
    path = os.environ.get(PARAMS_ENV)
    if path:
        with open(path, encoding="utf-8") as f:
            chosen = json.load(f)
        if not isinstance(chosen, dict):
            raise ValueError(f"{path}: parameters must be a JSON object, got {type(chosen).__name__}")
        params.update(chosen)
    return params


def report(value: float | dict[str, float], step: int | None = None) -> None:
    """Report an intermediate metric (e.g. validation accuracy after an epoch).

    `value` is a number or a dict of numbers (the objective is read from the
    key the config names, `default` unless told otherwise). `step` defaults to
    the number of intermediate reports so far, this one included (1, 2, ...).
    """
    global _intermediate_count
    _intermediate_count += 1
    if step is None:
        step = _intermediate_count
    elif isinstance(step, bool) or not isinstance(step, int):
        raise TypeError(f"step must be an int, got {step!r}")
    _emit("intermediate", step, _checked(value))


def report_final(value: float | dict[str, float]) -> None:
    """Report the trial's final result; call it once, at the end."""
    global _final_reported
    if _final_reported:
        raise RuntimeError("report_final() was already called in this trial")
    _final_reported = True
    _emit("final", None, _checked(value))


def trial_id() -> str | None:
    """This trial's id inside its experiment, or None when running standalone."""
    return os.environ.get("AUTOML_TRIAL_ID")


def experiment_id() -> str | None:
    """The experiment's id, or None when running standalone."""
    return os.environ.get("AUTOML_EXPERIMENT_ID")


def trial_dir() -> Path:
    """The folder for this trial's outputs (checkpoints, plots); the current one when standalone."""
    from pathlib import Path

    return Path(os.environ.get("AUTOML_TRIAL_DIR") or os.getcwd())


def _checked(value: Any) -> float | dict[str, float]:
    if isinstance(value, dict):
        if not value:
            raise TypeError("a metric dict must hold at least one number")
        return {str(k): _number(v, f"metric {k!r}") for k, v in value.items()}
    return _number(value, "metric")


def _number(value: Any, what: str) -> float:
    if isinstance(value, (str, bytes, bool)) or value is None:
        raise TypeError(f"{what} must be a number, got {value!r}")
    if hasattr(value, "__float__"):
        try:
            return float(value)
        except (TypeError, ValueError) as e:
            raise TypeError(f"{what} must be a number, got {value!r}") from e
    raise TypeError(f"{what} must be a number, got {value!r}")


def _plain(value: Any) -> Any:
    """numpy and torch scalars and arrays as plain JSON values."""
    for method in ("item", "tolist"):
        if hasattr(value, method):
            try:
                return getattr(value, method)()
            except (TypeError, ValueError):
                continue
    raise TypeError(f"cannot report a value of type {type(value).__name__}")


def _emit(kind: str, step: int | None, value: float | dict[str, float]) -> None:
    record = {"kind": kind, "step": step, "value": value, "time": time.time()}
    path = os.environ.get(METRICS_ENV)
    if not path:
        shown = value if not isinstance(value, float) or math.isfinite(value) else str(value)
        where = "final" if kind == "final" else f"step {step}"
        print(f"[automl] {where}: {shown}", file=sys.stderr, flush=True)
        return
    line = (json.dumps(record, default=_plain) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)
