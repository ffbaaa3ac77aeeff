"""Search strategies by name: NNI's tuners behind our `Tuner` interface.

Resolving a name is cheap; `nni` (about a second to import) is loaded only
when a tuner is actually created.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from automl.errors import UserError
from automl.tuners.base import Mode, NoMoreTrials, Tuner, UserCodeError

__all__ = [
    "TUNER_NAMES",
    "Mode",
    "NoMoreTrials",
    "Tuner",
    "UserCodeError",
    "canonical_tuner_name",
    "create_tuner",
    "tuner_for",
]

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
    raise UserError(
        f"unknown tuner {name!r}; available: {', '.join(TUNER_NAMES)}; a tuner of your own (or one "
        "registered with `nnictl algo register`) is named by class_name and code_directory (NNI: "
        "className and codeDirectory)"
    )


def create_tuner(
    name: str | None,
    args: Mapping[str, Any] | None,
    search_space: dict[str, Any],
    mode: Mode,
    *,
    class_name: str | None = None,
    code_directory: Path | None = None,
) -> Tuner:
    """A ready tuner for `search_space`; `args` are NNI's classArgs. Any user mistake raises UserError.

    With `class_name` ("module.Class", imported with `code_directory` first on sys.path) it is the user's own
    subclass of NNI's Tuner, given `args` as they are and the search space unchanged; `name` is then ignored.
    Call `use_folder` with the experiment's folder before the first `ask`.
    """
    label = class_name or canonical_tuner_name(name or "")
    if args is not None and not isinstance(args, Mapping):
        raise UserError(f"{label}: classArgs must be a mapping, got {args!r}")
    if class_name is not None:
        from automl.tuners.custom import create_custom_tuner

        return create_custom_tuner(class_name, code_directory, dict(args or {}), search_space)
    if mode not in ("maximize", "minimize"):
        raise UserError(f"optimize mode must be 'maximize' or 'minimize', got {mode!r}")
    from automl.tuners.nni_adapter import create_nni_tuner

    return create_nni_tuner(label, dict(args or {}), search_space, mode)


def tuner_for(config: Any) -> Tuner:
    """The tuner an experiment config asks for (its `tuner`, `search_space` and `objective.mode`)."""
    spec = config.tuner
    return create_tuner(
        spec.name,
        spec.args,
        config.search_space,
        config.objective.mode,
        class_name=spec.class_name,
        code_directory=spec.code_directory,
    )
