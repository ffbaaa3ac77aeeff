"""Early-stopping strategies ("stoppers") by name: our ASHA and Hyperband, NNI's Medianstop and Curvefitting.

Resolving a name and checking classArgs (`check_stopper`) is cheap; `nni`
(about a second to import) is loaded only when an NNI assessor is created.
"No early stopping" is no stopper at all: the caller simply has none.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from automl.errors import UserError
from automl.stoppers.base import History, Stopper
from automl.tuners.base import Mode

__all__ = ["STOPPER_NAMES", "History", "Stopper", "canonical_stopper_name", "check_stopper", "create_stopper"]

STOPPER_NAMES: tuple[str, ...] = ("ASHA", "Hyperband", "Medianstop", "Curvefitting")

_RESOURCE_ARGS = ("min_resource", "max_resource", "reduction_factor")
_ARGS: dict[str, tuple[str, ...]] = {
    "ASHA": _RESOURCE_ARGS,
    "Hyperband": _RESOURCE_ARGS,
    "Medianstop": ("start_step",),
    "Curvefitting": ("epoch_num", "start_step", "threshold", "gap"),
}
"""The classArgs each stopper accepts, besides optimize_mode."""

_REQUIRED: dict[str, dict[str, str]] = {
    "Curvefitting": {"epoch_num": "the number of intermediate results a full trial reports"},
}


def canonical_stopper_name(name: str) -> str:
    """The canonical spelling of a stopper name (case-insensitive), or a UserError listing the available ones."""
    key = name.strip().lower()
    for canonical in STOPPER_NAMES:
        if canonical.lower() == key:
            return canonical
    raise UserError(f"unknown early-stopping strategy {name!r}; available: {', '.join(STOPPER_NAMES)}")


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
    return _build(canonical, _factory(canonical), mode, kwargs)


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
    _build(canonical, _checker(canonical), mode, kwargs)
    return canonical


def _custom(class_name: str, code_directory: Path | None, args: Mapping[str, Any] | None, mode: Mode) -> Stopper:
    if args is not None and not isinstance(args, Mapping):
        raise UserError(f"{class_name}: classArgs must be a mapping, got {args!r}")
    from automl.stoppers.custom import create_custom_stopper

    return create_custom_stopper(class_name, code_directory, dict(args or {}), mode)


def _checked(name: str, args: Mapping[str, Any] | None, mode: Mode) -> tuple[str, dict[str, Any]]:
    """The canonical name and the classArgs without optimize_mode, after every check that needs no stopper class."""
    canonical = canonical_stopper_name(name)
    if args is not None and not isinstance(args, Mapping):
        raise UserError(f"{canonical}: classArgs must be a mapping, got {args!r}")
    if mode not in ("maximize", "minimize"):
        raise UserError(f"optimize mode must be 'maximize' or 'minimize', got {mode!r}")
    kwargs = dict(args or {})
    given_mode = kwargs.pop("optimize_mode", None)
    if given_mode is not None and given_mode != mode:
        raise UserError(
            f"{canonical}: classArgs.optimize_mode is {given_mode!r} but the experiment's optimize mode is "
            f"{mode!r}; drop classArgs.optimize_mode or make the two agree"
        )
    accepted = _ARGS[canonical]
    for key in kwargs:
        if key not in accepted:
            raise UserError(
                f"{canonical} has no classArgs {key!r}; it accepts: {', '.join(['optimize_mode', *accepted])}"
            )
    if canonical == "Curvefitting" and mode != "maximize":
        raise UserError(
            "Curvefitting only works for optimize mode 'maximize' (it extrapolates rising curves such as "
            f"accuracy); the experiment's optimize mode is {mode!r}: use Medianstop, ASHA or Hyperband instead"
        )
    for key, meaning in _REQUIRED.get(canonical, {}).items():
        if key not in kwargs:
            raise UserError(f"{canonical} needs classArgs.{key}: {meaning}")
    return canonical, kwargs


def _build(name: str, build: Callable[..., Any], mode: Mode, kwargs: dict[str, Any]) -> Any:
    try:
        return build(mode, **kwargs)
    except ValueError as exc:
        raise UserError(f"{name}: invalid classArgs: {exc}") from exc


def _factory(name: str) -> Callable[..., Stopper]:
    """The class for a canonical name."""
    if name == "ASHA":
        from automl.stoppers.asha import AshaStopper

        return AshaStopper
    if name == "Hyperband":
        from automl.stoppers.hyperband import HyperbandStopper

        return HyperbandStopper
    from automl.stoppers import nni_assessors

    return nni_assessors.MedianstopStopper if name == "Medianstop" else nni_assessors.CurvefittingStopper


def _checker(name: str) -> Callable[..., Any]:
    """What checks a canonical name's classArgs without loading NNI: our own stoppers are cheap to build."""
    if name in ("ASHA", "Hyperband"):
        return _factory(name)
    from automl.stoppers import nni_assessors

    return nni_assessors.check_medianstop if name == "Medianstop" else nni_assessors.check_curvefitting
