"""A user's own NNI `Tuner` subclass behind our `Tuner` interface, loaded and called as NNI does.

NNI imports `className` ("module.Class") with `codeDirectory` first on
sys.path, builds it with the classArgs as keyword arguments, and calls
`update_search_space`, `generate_multiple_parameters` (with `st_callback`),
`receive_trial_result`, `trial_end` and `import_data`. Mistakes found while
loading are UserErrors; an exception raised later inside the class becomes a
`UserCodeError` that fails the experiment.
"""

from __future__ import annotations

import copy
import importlib
import math
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import nni
from nni.tuner import Tuner as NniTunerBase

from automl.errors import UserError
from automl.tuners.base import NoMoreTrials, Tuner, UserCodeError
from automl.tuners.nni_patches import to_plain

NNI_METHODS = frozenset(
    {
        "update_search_space",
        "generate_parameters",
        "generate_multiple_parameters",
        "receive_trial_result",
        "trial_end",
        "import_data",
        "assess_trial",
    }
)
"""The methods NNI calls on tuners and assessors."""

_IMPORTING = threading.Lock()
"""Imports of user classes change sys.path and sys.modules: one at a time (the daemon loads from threads)."""


def create_custom_tuner(
    class_name: str, code_directory: Path | None, args: Mapping[str, Any], search_space: dict[str, Any]
) -> CustomTuner:
    """The user's tuner class built with `args` and given `search_space` as is; a UserError if that fails."""
    tuner_class = load_class(class_name, code_directory, NniTunerBase, "tuner")
    tuner = build(tuner_class, class_name, args, "tuner")
    try:
        tuner.update_search_space(copy.deepcopy(search_space))
    except Exception as exc:
        raise UserError(f"tuner {class_name}: update_search_space raised {one_line(exc)}") from exc
    return CustomTuner(class_name, tuner)


class CustomTuner(Tuner):
    """A user's NNI tuner driven through ask/tell.

    Each proposal gets a fresh NNI parameter id. Proposals are handed out
    exactly as the class makes them (numpy values made plain), repeats
    included, as NNI does. A request the class answers with nothing (NNI's
    NoMoreTrialError) returns None: it is asked again when a trial ends, and
    sets it delivers later through `st_callback` are handed out first.
    """

    def __init__(self, class_name: str, tuner: Any) -> None:
        self.name = class_name
        self._tuner = tuner
        self._issued: dict[int, tuple[int, dict[str, Any]]] = {}
        self._delivered: deque[tuple[int, Any]] = deque()
        self._next_id = 0

    def ask(self, key: int) -> dict[str, Any] | None:
        if key in self._issued:
            raise ValueError(f"trial {key} already has parameters")
        if not self._delivered:
            parameter_id = self._next_id
            self._next_id += 1
            proposals = self._call("generate_multiple_parameters", [parameter_id], st_callback=self._deliver)
            if proposals:
                self._delivered.appendleft((parameter_id, proposals[0]))
        if not self._delivered:
            return None
        parameter_id, raw = self._delivered.popleft()
        params = to_plain(raw)
        if not isinstance(params, dict):
            raise UserCodeError(
                f"{self.name}.generate_parameters returned {raw!r}, not a mapping of parameter names to values"
            )
        self._issued[key] = (parameter_id, params)
        return copy.deepcopy(params)

    def tell(self, key: int, value: float | None) -> None:
        """NNI's order: `receive_trial_result` for a finite result, then `trial_end`; keys never asked are ignored."""
        issued = self._issued.pop(key, None)
        if issued is None:
            return
        parameter_id, params = issued
        succeeded = value is not None and math.isfinite(value)
        if succeeded:
            self._call("receive_trial_result", parameter_id, copy.deepcopy(params), float(value))
        self._call("trial_end", parameter_id, succeeded)

    def restore(
        self, history: list[tuple[dict[str, Any], float | None]], pending: Sequence[dict[str, Any]] = ()
    ) -> None:
        records = [
            {"parameter": copy.deepcopy(params), "value": float(value)}
            for params, value in history
            if value is not None and math.isfinite(value)
        ]
        if records:
            self._call("import_data", records)

    def _deliver(self, parameter_id: int, params: Any, *_: Any, **__: Any) -> None:
        self._delivered.append((parameter_id, params))

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        try:
            return getattr(self._tuner, method)(*args, **kwargs)
        except nni.NoMoreTrialError as exc:
            raise NoMoreTrials(f"{self.name}: {exc}") from exc
        except (Exception, SystemExit) as exc:
            raise failure(self.name, self._tuner, method, exc) from exc


def failure(class_name: str, instance: Any, method: str, exc: BaseException) -> UserCodeError:
    """The one-line reason for an exception from `instance`: its class and the NNI method it came from.

    That is the innermost NNI method of `instance` on the traceback (generate_parameters rather than the
    generate_multiple_parameters that called it), else the method called.
    """
    traceback = exc.__traceback__
    while traceback is not None:
        frame = traceback.tb_frame
        if frame.f_code.co_name in NNI_METHODS and frame.f_locals.get("self") is instance:
            method = frame.f_code.co_name
        traceback = traceback.tb_next
    return UserCodeError(f"{class_name}.{method} raised {one_line(exc)}")


def load_class(class_name: str, code_directory: Path | None, base: type, kind: str) -> type:
    """The class "module.Class" names, imported with `code_directory` first on sys.path; it must subclass `base`.

    A module found in `code_directory` is imported afresh, so experiments whose code directories hold
    modules of the same name each get their own.
    """
    module_name, _, attribute = class_name.rpartition(".")
    if not module_name or not attribute:
        raise UserError(f"{kind} class_name {class_name!r} must be 'module.Class'")
    where = f" from {code_directory}" if code_directory is not None else ""
    with _IMPORTING, _code_directory_first(code_directory, module_name):
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:
            raise UserError(
                f"{kind} class {class_name}: cannot import module {module_name!r}{where}: {one_line(exc)}"
            ) from exc
    found = getattr(module, attribute, None)
    if found is None:
        raise UserError(f"{kind} class {class_name}: module {module_name!r} has no {attribute!r}")
    if not (isinstance(found, type) and issubclass(found, base)):
        raise UserError(f"{kind} class {class_name} is not a subclass of {base.__module__}.{base.__qualname__}")
    return found


def build(cls: Callable[..., Any], class_name: str, args: Mapping[str, Any], kind: str) -> Any:
    """`cls(**args)`, as NNI passes classArgs; whatever it raises is a UserError naming the class."""
    try:
        return cls(**args)
    except TypeError as exc:
        raise UserError(f"{kind} {class_name}: invalid classArgs {dict(args)}: {exc}") from exc
    except (Exception, SystemExit) as exc:
        raise UserError(f"{kind} {class_name}: __init__ raised {one_line(exc)}") from exc


@contextmanager
def _code_directory_first(code_directory: Path | None, module_name: str) -> Iterator[None]:
    """sys.path with `code_directory` first while importing; afterwards it stays last, for imports made later."""
    if code_directory is None:
        yield
        return
    folder = str(code_directory)
    top = module_name.partition(".")[0]
    if (code_directory / f"{top}.py").is_file() or (code_directory / top).is_dir():
        for name in [name for name in sys.modules if name == top or name.startswith(f"{top}.")]:
            del sys.modules[name]
    sys.path.insert(0, folder)
    importlib.invalidate_caches()
    try:
        yield
    finally:
        sys.path.remove(folder)
        if folder not in sys.path:
            sys.path.append(folder)


def one_line(exc: BaseException) -> str:
    """`Type: first line of the message`, for one-line reasons."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
