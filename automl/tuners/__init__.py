"""Search strategies by name: NNI's tuners behind our `Tuner` interface.

Resolving a name and checking classArgs are cheap; `nni` (about a second to
import) is loaded only when a tuner is actually created. The builtin tuners are
one table, `automl.tuners.builtin.TUNERS`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from automl.registry import class_args_mapping
from automl.tuners.base import Mode, NoMoreTrials, Tuner, UserCodeError
from automl.tuners.builtin import TUNERS, checked_tuner_args

__all__ = [
    "TUNER_NAMES",
    "Mode",
    "NoMoreTrials",
    "Tuner",
    "UserCodeError",
    "canonical_tuner_name",
    "create_tuner",
    "order_only_tuners",
    "tuner_for",
]

TUNER_NAMES: tuple[str, ...] = TUNERS.names


def canonical_tuner_name(name: str) -> str:
    """The canonical spelling of a tuner name (case-insensitive, NNI aliases accepted), or a UserError."""
    return TUNERS.canonical(name)


def order_only_tuners() -> list[str]:
    """The builtin tuners that learn from the order of results alone (or from none), as `learn_from: rung` needs."""
    return [name for name, entry in TUNERS.entries.items() if entry.order_only]


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
    if class_name is not None:
        from automl.tuners.custom import create_custom_tuner

        return create_custom_tuner(class_name, code_directory, class_args_mapping(class_name, args), search_space)
    label = canonical_tuner_name(name or "")
    kwargs = checked_tuner_args(label, args, mode)
    from automl.tuners.nni_adapter import create_nni_tuner

    return create_nni_tuner(label, kwargs, search_space, mode)


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
