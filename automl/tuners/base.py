"""The one interface every search strategy sits behind: propose parameters, learn from results."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

Mode = Literal["maximize", "minimize"]


class NoMoreTrials(Exception):
    """The strategy has nothing left to propose, ever (e.g. a finished grid)."""


class UserCodeError(Exception):
    """A user's own tuner or assessor class raised: the experiment fails with this one-line reason."""


class Tuner(ABC):
    """Proposes parameter sets and learns from finished trials.

    Not thread-safe: the experiment loop calls one tuner from one worker
    thread at a time, so a slow `ask` never blocks the loop itself.
    Parameter sets are plain JSON-serializable dicts in NNI's format
    (a nested choice is a dict with a `_name` key).
    """

    bare_parameter: str | None = None
    """The parameter whose value an NNI trial receives alone instead of the whole set (BatchTuner's plain values)."""

    @abstractmethod
    def ask(self, key: int) -> dict[str, Any] | None:
        """Parameters for the trial numbered `key`.

        Returns None when nothing can be proposed until a running trial
        ends (e.g. Evolution waiting for its population); raises
        NoMoreTrials when the space is exhausted. Never returns a set it
        returned before.
        """

    @abstractmethod
    def tell(self, key: int, value: float | None) -> None:
        """Trial `key` ended with objective `value`, or None when it failed."""

    def use_folder(self, folder: Path) -> None:  # noqa: B027
        """The experiment's own folder, given once before the first `ask`.

        Strategies that keep files (PBTTuner's default checkpoint folder) put them there; others ignore it.
        """

    def restore(  # noqa: B027
        self, history: list[tuple[dict[str, Any], float | None]], pending: Sequence[dict[str, Any]] = ()
    ) -> None:
        """Feed results of earlier trials, e.g. when an experiment resumes.

        `history` holds ended trials with their value; None marks a failed one:
        it is not learned from, but never proposed again. `pending` holds sets
        whose trials still run or will run again: never proposed again, and
        their outcome comes later through another `restore([(params, value)])`.
        Strategies that cannot learn from history may ignore both.
        """
