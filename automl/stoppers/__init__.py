"""Early-stopping strategies ("stoppers") by name: our ASHA and Hyperband, NNI's Medianstop and Curvefitting.

Resolving a name and checking classArgs (`check_stopper`) is cheap; `nni`
(about a second to import) is loaded only when an NNI assessor is created.
"No early stopping" is no stopper at all: the caller simply has none.
A stopper is added by one entry in STOPPERS.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from automl.errors import UserError
from automl.registry import Registry, checked_class_args, class_args_mapping, load
from automl.stoppers.base import History, Stopper
from automl.tuners.base import Mode

__all__ = ["STOPPER_NAMES", "History", "Stopper", "canonical_stopper_name", "check_stopper", "create_stopper"]


@dataclass(frozen=True)
class StopperEntry:
    """One builtin stopper: its class, what checks its classArgs without loading NNI (None: the class itself, when it
    is cheap to build), the classArgs it accepts besides optimize_mode, those it needs (with what each means), and
    the one optimize mode it works for, if so."""

    factory: str  # "module:Class", given (mode, **classArgs)
    args: tuple[str, ...]
    checker: str | None = None  # "module:function", given the same
    required: Mapping[str, str] = field(default_factory=dict)
    only_mode: tuple[Mode, str, str] | None = None  # (the mode, why, what to use in the other)


_RESOURCE_ARGS = ("min_resource", "max_resource", "reduction_factor")
_NNI_ASSESSORS = "automl.stoppers.nni_assessors"

STOPPERS: Registry[StopperEntry] = Registry(
    "early-stopping strategy",
    {
        "ASHA": StopperEntry("automl.stoppers.asha:AshaStopper", (*_RESOURCE_ARGS, "brackets")),
        "Hyperband": StopperEntry("automl.stoppers.hyperband:HyperbandStopper", _RESOURCE_ARGS),
        "Medianstop": StopperEntry(
            f"{_NNI_ASSESSORS}:MedianstopStopper", ("start_step",), checker=f"{_NNI_ASSESSORS}:check_medianstop"
        ),
        "Curvefitting": StopperEntry(
            f"{_NNI_ASSESSORS}:CurvefittingStopper",
            ("epoch_num", "start_step", "threshold", "gap"),
            checker=f"{_NNI_ASSESSORS}:check_curvefitting",
            required={"epoch_num": "the number of intermediate results a full trial reports"},
            only_mode=(
                "maximize",
                "it extrapolates rising curves such as accuracy",
                "use Medianstop, ASHA or Hyperband instead",
            ),
        ),
    },
)
STOPPER_NAMES = STOPPERS.names


def canonical_stopper_name(name: str) -> str:
    """The canonical spelling of a stopper name (case-insensitive), or a UserError listing the available ones."""
    return STOPPERS.canonical(name)


def create_stopper(
    name: str | None,
    args: Mapping[str, Any] | None,
    mode: Mode,
    *,
    class_name: str | None = None,
    code_directory: Path | None = None,
) -> Stopper:
    """A ready stopper; `args` are its classArgs (NNI style). Any user mistake raises a UserError.

    With `class_name` ("module.Class", imported with `code_directory` first on sys.path) it is the user's own
    subclass of NNI's Assessor, given `args` as they are; `name` is then ignored.
    """
    if class_name is not None:
        return _custom(class_name, code_directory, args, mode)
    canonical, kwargs = _checked(name or "", args, mode)
    return _build(canonical, load(STOPPERS.entries[canonical].factory), mode, kwargs)


def check_stopper(
    name: str | None,
    args: Mapping[str, Any] | None,
    mode: Mode,
    *,
    class_name: str | None = None,
    code_directory: Path | None = None,
) -> str:
    """The canonical name (or class_name), or the UserError `create_stopper` would raise.

    Cheap and never loads NNI for a builtin; a user's class is imported and built once to check it.
    """
    if class_name is not None:
        _custom(class_name, code_directory, args, mode)
        return class_name
    canonical, kwargs = _checked(name or "", args, mode)
    entry = STOPPERS.entries[canonical]
    _build(canonical, load(entry.checker or entry.factory), mode, kwargs)
    return canonical


def _custom(class_name: str, code_directory: Path | None, args: Mapping[str, Any] | None, mode: Mode) -> Stopper:
    kwargs = class_args_mapping(class_name, args)
    from automl.stoppers.custom import create_custom_stopper

    return create_custom_stopper(class_name, code_directory, kwargs, mode)


def _checked(name: str, args: Mapping[str, Any] | None, mode: Mode) -> tuple[str, dict[str, Any]]:
    """The canonical name and the classArgs without optimize_mode, after every check that needs no stopper class."""
    canonical = canonical_stopper_name(name)
    entry = STOPPERS.entries[canonical]
    kwargs = checked_class_args(canonical, args, mode, entry.args)
    if entry.only_mode is not None and mode != entry.only_mode[0]:
        only, why, instead = entry.only_mode
        raise UserError(
            f"{canonical} only works for optimize mode {only!r} ({why}); the experiment's optimize mode is "
            f"{mode!r}: {instead}"
        )
    for key, meaning in entry.required.items():
        if key not in kwargs:
            raise UserError(f"{canonical} needs classArgs.{key}: {meaning}")
    return canonical, kwargs


def _build(name: str, build: Callable[..., Any], mode: Mode, kwargs: dict[str, Any]) -> Any:
    try:
        return build(mode, **kwargs)
    except ValueError as exc:
        raise UserError(f"{name}: invalid classArgs: {exc}") from exc
