"""Tuners and stoppers by name: the table each kind keeps (canonical name -> entry), and the classArgs checks they
share. Adding a tuner or a stopper is one entry in its kind's table."""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from .errors import UserError, close_match

MODES = ("maximize", "minimize")

Entry = TypeVar("Entry")


@dataclass(frozen=True)
class Registry(Generic[Entry]):
    """One kind's table: entries by canonical name (in the order they are listed to users), other spellings
    NNI accepts, and names known but not offered, each with why."""

    kind: str  # as messages name it: "tuner", "early-stopping strategy"
    entries: Mapping[str, Entry]
    aliases: Mapping[str, str] = field(default_factory=dict)  # lower-case spelling -> canonical name
    unavailable: Mapping[str, tuple[str, str]] = field(default_factory=dict)  # lower-case -> (display name, why)
    hint: str = ""  # added to the message for an unknown name

    @property
    def names(self) -> tuple[str, ...]:
        """The canonical names, in the table's order."""
        return tuple(self.entries)

    def canonical(self, name: str) -> str:
        """The canonical spelling of `name` (case-insensitive, aliases accepted), or a UserError listing the names."""
        key = name.strip().lower()
        for canonical in self.entries:
            if canonical.lower() == key:
                return canonical
        if key in self.aliases:
            return self.aliases[key]
        available = ", ".join(self.entries)
        if key in self.unavailable:
            display, reason = self.unavailable[key]
            raise UserError(f"{self.kind} {display!r} is not available: {reason}. Available: {available}")
        close = self._close_name(key)
        guess = f"did you mean {close!r}? " if close else ""
        raise UserError(f"unknown {self.kind} {name!r}; {guess}available: {available}{self.hint}")

    def _close_name(self, key: str) -> str | None:
        """The canonical name a lower-case `key` most probably misspells, comparing with names and aliases."""
        spellings = {canonical.lower(): canonical for canonical in self.entries} | dict(self.aliases)
        close = close_match(key, spellings)
        return None if close is None else spellings[close]


def load(reference: str) -> Any:
    """What a "module:attribute" reference names, importing its module on first use."""
    module, _, attribute = reference.partition(":")
    return getattr(importlib.import_module(module), attribute)


def class_args_mapping(label: str, args: Any) -> dict[str, Any]:
    """The classArgs as a new dict (None: none); anything but a mapping is a UserError."""
    if args is not None and not isinstance(args, Mapping):
        raise UserError(f"{label}: classArgs must be a mapping, got {args!r}")
    return dict(args or {})


def check_mode(mode: str) -> None:
    """The experiment's optimize mode must be one of MODES."""
    if mode not in MODES:
        raise UserError(f"optimize mode must be 'maximize' or 'minimize', got {mode!r}")


def checked_class_args(label: str, args: Any, mode: str, accepted: Sequence[str]) -> dict[str, Any]:
    """The classArgs without optimize_mode, after the checks every builtin tuner and stopper shares: a mapping, a
    valid optimize mode, a classArgs.optimize_mode that agrees with it, and no key outside `accepted`."""
    kwargs = class_args_mapping(label, args)
    check_mode(mode)
    given_mode = kwargs.pop("optimize_mode", None)
    if given_mode is not None and given_mode != mode:
        raise UserError(
            f"{label}: classArgs.optimize_mode is {given_mode!r} but the experiment's optimize mode is "
            f"{mode!r}; drop classArgs.optimize_mode or make the two agree"
        )
    for key in kwargs:
        if key not in accepted:
            raise UserError(f"{label} has no classArgs {key!r}; it accepts: {', '.join(['optimize_mode', *accepted])}")
    return kwargs
