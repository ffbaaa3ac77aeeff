"""NNI's tuners behind our `Tuner` interface.

Checks classArgs and search spaces up front (a UserError, never a traceback),
drives NNI's parameter ids, pending trials and late deliveries, never hands
out the same parameter set twice, and returns plain JSON values.
"""

from __future__ import annotations

import copy
import json
import math
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nni
from nni.algorithms.hpo.gridsearch_tuner import GridSearchTuner
from nni.algorithms.hpo.random_tuner import RandomTuner

from automl.config.search_space import is_nested_choice, with_constants_as_choices
from automl.errors import UserError
from automl.registry import load
from automl.tuners.base import Mode, NoMoreTrials, Tuner
from automl.tuners.builtin import MAX_REPEATS, SEARCH_SPACE_TYPES, TUNERS, UNPLACED, TunerEntry, is_number
from automl.tuners.nni_patches import to_plain

RANDOM_FILL_INS = 50
"""Random draws tried for a fresh set before walking the grid of the space."""


def create_nni_tuner(name: str, args: dict[str, Any], search_space: dict[str, Any], mode: Mode) -> NniTuner:
    """The NNI tuner `name` (canonical) set up for `search_space`, given classArgs `checked_tuner_args` passed;
    every user mistake is a UserError.

    Single-value parameters reach the NNI tuner as one-value choices, so every tuner gives their constant.
    """
    spec = TUNERS.entries[name]
    kwargs = _class_args(name, spec, args, mode)
    _check_search_space(name, spec, search_space)
    space = _batch_space(search_space) if spec.batch else with_constants_as_choices(search_space)
    tuner_class = load(spec.tuner)
    try:
        tuner = tuner_class(*spec.tuner_args, **kwargs)
    except (TypeError, ValueError) as exc:
        raise UserError(f"{name}: invalid classArgs: {exc}") from exc
    try:
        tuner.update_search_space(copy.deepcopy(space))
    except (ValueError, RuntimeError, KeyError, IndexError, TypeError) as exc:
        raise UserError(f"{name} cannot use this search space: {exc}") from exc
    adapter = NniTuner(
        name,
        tuner,
        space,
        deferred=spec.deferred,
        fill_in=spec.fill_in,
        retries=spec.retries,
        place=spec.place if kwargs.get("all_checkpoint_dir") == UNPLACED else None,
    )
    if spec.batch:
        adapter.bare_parameter = _plain_batch_parameter(search_space)
    return adapter


class NniTuner(Tuner):
    """One NNI tuner driven through ask/tell.

    Each proposal gets a fresh NNI parameter id; a proposal that repeats an
    earlier set (or is no parameter set at all) is dropped as a failed trial
    and asked for again, and after `retries` such proposals the adapter fills
    in a set the tuner never proposed. Tuners that deliver late (Evolution,
    PBT) keep one request waiting at a time.
    """

    def __init__(
        self,
        name: str,
        tuner: Any,
        search_space: dict[str, Any],
        *,
        deferred: bool = False,
        fill_in: bool = True,
        retries: int | None = MAX_REPEATS,
        place: Callable[[Any, dict[str, Any], Path], None] | None = None,
    ) -> None:
        self.name = name
        self._place = place
        self._tuner = tuner
        self._space = copy.deepcopy(search_space)
        self._deferred = deferred
        self._fill_in = fill_in
        self._retries = retries
        self._issued: dict[int, _Issued] = {}
        self._seen: set[str] = set()
        self._delivered: deque[tuple[int, Any]] = deque()
        self._waiting: set[int] = set()
        self._next_id = 0
        self._fresh: _FreshSets | None = None

    def use_folder(self, folder: Path) -> None:
        if self._place is not None:
            self._place(self._tuner, copy.deepcopy(self._space), folder)
            self._place = None

    def ask(self, key: int) -> dict[str, Any] | None:
        if key in self._issued:
            raise ValueError(f"trial {key} already has parameters")
        if self._place is not None:
            raise RuntimeError(f"{self.name} needs the experiment's folder (use_folder) before its first proposal")
        repeats = 0
        while self._retries is None or repeats < self._retries:
            proposal = self._propose()
            if proposal is None:
                return None
            parameter_id, raw = proposal
            params = _legal(self._space, to_plain(raw)) if isinstance(raw, dict) else None
            if params is not None and self._remember(params):
                self._issued[key] = _Issued(parameter_id, params)
                return copy.deepcopy(params)
            self._tuner.trial_end(parameter_id, False)
            repeats += 1
        if not self._fill_in:
            raise NoMoreTrials(f"{self.name} only proposes parameter sets it has proposed before")
        if self._fresh is None:
            self._fresh = _FreshSets(self._space)
        params = self._fresh.next(self._seen)
        self._remember(params)
        self._issued[key] = _Issued(None, params)
        return copy.deepcopy(params)

    def tell(self, key: int, value: float | None) -> None:
        """Report trial `key`; a missing or non-finite value counts as a failed trial.

        Keys this tuner never handed out (e.g. trials still running when an
        experiment resumed) are ignored: feed those through `restore`.
        """
        issued = self._issued.pop(key, None)
        if issued is None:
            return
        succeeded = value is not None and math.isfinite(value)
        if issued.parameter_id is None:
            if succeeded:
                self._tuner.import_data([{"parameter": copy.deepcopy(issued.params), "value": float(value)}])
            return
        if not succeeded:
            self._tuner.trial_end(issued.parameter_id, False)
            return
        self._tuner.receive_trial_result(issued.parameter_id, copy.deepcopy(issued.params), float(value))
        self._tuner.trial_end(issued.parameter_id, True)

    def restore(
        self, history: list[tuple[dict[str, Any], float | None]], pending: Sequence[dict[str, Any]] = ()
    ) -> None:
        plain = [(to_plain(params), value) for params, value in history]
        waiting = [to_plain(params) for params in pending]
        for params in [params for params, _ in plain] + waiting:
            self._seen.add(_canonical(params))
        if hasattr(self._tuner, "restore_history"):  # a tuner that rebuilds its state itself (PBT)
            self._tuner.restore_history(plain, waiting)
            return
        records = [
            {"parameter": params, "value": float(value)}
            for params, value in plain
            if value is not None and math.isfinite(value)
        ]
        if records:
            self._tuner.import_data(records)

    def _propose(self) -> tuple[int, Any] | None:
        if self._delivered:
            return self._delivered.popleft()
        parameter_id = self._next_id
        self._next_id += 1
        if self._deferred:
            if self._waiting:
                return None
            proposals = self._tuner.generate_multiple_parameters([parameter_id], st_callback=self._deliver)
            if proposals:
                return parameter_id, proposals[0]
            self._waiting.add(parameter_id)
            return None
        try:
            return parameter_id, self._tuner.generate_parameters(parameter_id)
        except nni.NoMoreTrialError as exc:
            raise NoMoreTrials(f"{self.name}: {exc}") from exc

    def _deliver(self, parameter_id: int, params: Any) -> None:
        self._waiting.discard(parameter_id)
        self._delivered.append((parameter_id, params))

    def _remember(self, params: dict[str, Any]) -> bool:
        signature = _canonical(params)
        if signature in self._seen:
            return False
        self._seen.add(signature)
        return True


@dataclass
class _Issued:
    """A parameter set handed out; parameter_id is None when the adapter filled it in itself."""

    parameter_id: int | None
    params: dict[str, Any]


class _FreshSets:
    """Parameter sets nobody proposed yet: random draws first, then NNI's ever-finer grid of the space."""

    def __init__(self, search_space: dict[str, Any]) -> None:
        self._space = search_space
        self._random = RandomTuner()
        self._random.update_search_space(copy.deepcopy(search_space))
        self._grid = GridSearchTuner()
        self._grid.update_search_space(copy.deepcopy(search_space))

    def next(self, seen: set[str]) -> dict[str, Any]:
        for _ in range(RANDOM_FILL_INS):
            try:
                params = _legal(self._space, to_plain(self._random.generate_parameters(0)))
            except nni.NoMoreTrialError:
                break
            if _canonical(params) not in seen:
                return params
        while True:
            try:
                params = _legal(self._space, to_plain(self._grid.generate_parameters(0)))
            except nni.NoMoreTrialError as exc:
                raise NoMoreTrials("every parameter set of the search space has been tried") from exc
            if _canonical(params) not in seen:
                return params


_FLOAT_TYPES = SEARCH_SPACE_TYPES - {"choice", "randint"}
_BOUNDED_TYPES = frozenset({"uniform", "quniform", "loguniform", "qloguniform"})


def _class_args(name: str, spec: TunerEntry, args: dict[str, Any], mode: Mode) -> dict[str, Any]:
    """Checked classArgs (see `checked_tuner_args`) as the NNI tuner's keyword arguments: defaults, prepared, and
    the optimize mode for a tuner that takes one."""
    kwargs = {**spec.defaults, **args}
    if spec.prepare is not None:
        spec.prepare(name, kwargs)
    if spec.takes_mode:
        kwargs["optimize_mode"] = mode
    return kwargs


def _check_search_space(name: str, spec: TunerEntry, space: dict[str, Any]) -> None:
    if not space:
        raise UserError(f"{name}: the search space is empty")
    if spec.batch:
        _check_batch_space(name, space)
        return
    for path, kind, values in _walk(space):
        if kind not in spec.types:
            raise UserError(
                f"{name} cannot search parameter {path!r} of type {kind!r}; "
                f"it supports: {', '.join(sorted(spec.types))}"
            )
        if kind != "choice":
            continue
        if not spec.nested and is_nested_choice(values):
            raise UserError(f"{name} cannot search parameter {path!r}: it does not support nested choices")
        if spec.numeric_choices and not all(is_number(value) for value in values):
            raise UserError(f"{name} cannot search parameter {path!r}: its choice values must all be numbers")


def _check_batch_space(name: str, space: dict[str, Any]) -> None:
    (_, spec), *rest = space.items()
    values = spec.get("_value")
    if rest or spec.get("_type") != "choice" or not isinstance(values, list) or not values:
        raise UserError(
            f"{name} needs a search space with exactly one parameter (conventionally 'combine_params') "
            "of type 'choice' whose values are the parameter sets to run, each a mapping; "
            f"got parameters {', '.join(repr(k) for k in space)}"
        )


def _plain_batch_parameter(space: dict[str, Any]) -> str | None:
    """BatchTuner's parameter when some of its values are plain (not parameter sets): NNI hands those out bare."""
    ((parameter, spec),) = space.items()
    return parameter if any(not isinstance(value, dict) for value in spec["_value"]) else None


def _batch_space(space: dict[str, Any]) -> dict[str, Any]:
    """BatchTuner's space with each value a parameter set: a plain value v of parameter p becomes {p: v}."""
    ((parameter, spec),) = space.items()
    sets = [value if isinstance(value, dict) else {parameter: value} for value in spec["_value"]]
    return {parameter: {"_type": "choice", "_value": sets}}


def _walk(space: dict[str, Any], prefix: str = "") -> list[tuple[str, str, list[Any]]]:
    found = []
    for name, spec in space.items():
        if name == "_name":
            continue
        path = f"{prefix}{name}"
        found.append((path, spec["_type"], spec["_value"]))
        if spec["_type"] == "choice" and is_nested_choice(spec["_value"]):
            for option in spec["_value"]:
                found += _walk(option, f"{path}.{option['_name']}.")
    return found


def _legal(space: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    for name, spec in space.items():
        if name == "_name" or name not in params:
            continue
        kind, values, value = spec["_type"], spec["_value"], params[name]
        if kind == "choice":
            if isinstance(value, dict) and is_nested_choice(values):
                options = {option["_name"]: option for option in values}
                if value.get("_name") in options:
                    _legal(options[value["_name"]], value)
        elif not is_number(value):
            continue
        elif kind == "randint":
            params[name] = int(min(max(round(value), values[0]), values[1] - 1))
        elif kind in _BOUNDED_TYPES:
            params[name] = min(max(float(value), float(values[0])), float(values[1]))
        elif kind in _FLOAT_TYPES:
            params[name] = float(value)
    return params


def _canonical(params: Any) -> str:
    return json.dumps(_integral_floats_as_ints(params), sort_keys=True, separators=(",", ":"))


def _integral_floats_as_ints(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _integral_floats_as_ints(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_integral_floats_as_ints(item) for item in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value
