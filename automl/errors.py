"""Errors a user can cause: reported as one clear message and exit code 2."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class UserError(Exception):
    """A mistake in the user's input (config, search space, command line); nothing was started."""

    exit_code = 2


class DaemonError(Exception):
    """The daemon could not do what was asked, through no fault of the request (reported, exit code 1)."""

    exit_code = 1


def close_match(word: str, choices: Iterable[str]) -> str | None:
    """The choice `word` most probably misspells (for a 'did you mean'), or None when none is close."""
    close = difflib.get_close_matches(word, list(choices), n=1)
    return close[0] if close else None
