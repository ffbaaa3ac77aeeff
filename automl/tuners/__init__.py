"""Search strategies by name: NNI's tuners behind our `Tuner` interface.

Resolving a name is cheap; `nni` (about a second to import) is loaded only
when a tuner is actually created.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from automl.errors import UserError
from automl.tuners.base import Mode, NoMoreTrials, Tuner

__all__ = ["TUNER_NAMES", "Mode", "NoMoreTrials", "Tuner", "canonical_tuner_name", "create_tuner"]

TUNER_NAMES: tuple[str, ...] = (
    "TPE",
    "Random",
    "Anneal",
    "Evolution",
    "GridSearch",
    "BatchTuner",
    "GPTuner",
    "MetisTuner",
    "PBTTuner",
    "TPE_legacy",
)

_ALIASES = {"batch": "BatchTuner", "gp": "GPTuner", "metis": "MetisTuner", "pbt": "PBTTuner"}

_UNAVAILABLE = {
    "smac": (
        "SMAC",
        "its packages (ConfigSpaceNNI, smac4nni) only build with old Cython and swig and need numpy < 2",
    ),
    "dngo": ("DNGOTuner", "it needs pybnn, which pulls torchvision and gigabytes of CUDA wheels"),
    "dngotuner": ("DNGOTuner", "it needs pybnn, which pulls torchvision and gigabytes of CUDA wheels"),
    "ppo": ("PPOTuner", "it needs TensorFlow and searches neural architectures, not hyperparameters"),
    "ppotuner": ("PPOTuner", "it needs TensorFlow and searches neural architectures, not hyperparameters"),
    "networkmorphism": ("NetworkMorphism", "it searches neural architectures, not hyperparameters"),
    "regularizedevolution": ("RegularizedEvolution", "it searches neural architectures, not hyperparameters"),
    "regularizedevolutiontuner": (
        "RegularizedEvolution",
        "it searches neural architectures, not hyperparameters",
    ),
}


def canonical_tuner_name(name: str) -> str:
    """The canonical spelling of a tuner name (case-insensitive, NNI aliases accepted), or a UserError."""
    key = name.strip().lower()
    for canonical in TUNER_NAMES:
        if canonical.lower() == key:
            return canonical
    if key in _ALIASES:
        return _ALIASES[key]
    if key in _UNAVAILABLE:
        display, reason = _UNAVAILABLE[key]
        raise UserError(f"tuner {display!r} is not available: {reason}. Available: {', '.join(TUNER_NAMES)}")
    raise UserError(f"unknown tuner {name!r}; available: {', '.join(TUNER_NAMES)}")


def create_tuner(
    name: str, args: Mapping[str, Any] | None, search_space: dict[str, Any], mode: Mode
) -> Tuner:
    """A ready tuner for `search_space`; `args` are NNI's classArgs. Any user mistake raises UserError."""
    canonical = canonical_tuner_name(name)
    if args is not None and not isinstance(args, Mapping):
        raise UserError(f"{canonical}: classArgs must be a mapping, got {args!r}")
    if mode not in ("maximize", "minimize"):
        raise UserError(f"optimize mode must be 'maximize' or 'minimize', got {mode!r}")
    from automl.tuners.nni_adapter import create_nni_tuner

    return create_nni_tuner(canonical, dict(args or {}), search_space, mode)
