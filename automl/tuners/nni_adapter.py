"""NNI's tuners behind our `Tuner` interface.

Checks classArgs and search spaces up front (a UserError, never a traceback),
drives NNI's parameter ids, pending trials and late deliveries, never hands
out the same parameter set twice, and returns plain JSON values.
"""

from __future__ import annotations

import copy
import importlib
import json
import math
import os
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nni
from nni.algorithms.hpo.gridsearch_tuner import GridSearchTuner
from nni.algorithms.hpo.random_tuner import RandomTuner
from nni.algorithms.hpo.tpe_tuner import TpeArguments

from automl.config.search_space import is_nested_choice, with_constants_as_choices
from automl.errors import UserError
from automl.tuners.base import Mode, NoMoreTrials, Tuner
from automl.tuners.nni_patches import to_plain

MAX_REPEATS = 20
"""Proposals in a row that repeat an earlier set before the adapter fills in a fresh set itself."""

MAX_SLOW_REPEATS = 2
"""The same for tuners that take seconds per proposal (GP, Metis)."""

RANDOM_FILL_INS = 50
"""Random draws tried for a fresh set before walking the grid of the space."""

SEARCH_SPACE_TYPES = frozenset(
    {
        "choice",
        "randint",
        "uniform",
        "quniform",
        "loguniform",
        "qloguniform",
        "normal",
        "qnormal",
        "lognormal",
        "qlognormal",
    }
)
"""Every parameter type of NNI's search-space format."""

CHECKPOINTS = "checkpoints"
"""PBTTuner's checkpoint folder inside the experiment's folder, unless classArgs or NNI_CHECKPOINT_DIRECTORY say."""

_UNPLACED = "<experiment folder>/checkpoints"
"""PBT's checkpoint folder until the experiment's folder is known."""


def create_nni_tuner(name: str, args: dict[str, Any], search_space: dict[str, Any], mode: Mode) -> NniTuner:
    """The NNI tuner `name` (canonical) set up for `search_space`; every user mistake is a UserError.

    Single-value parameters reach the NNI tuner as one-value choices, so every tuner gives their constant.
    """
    spec = _SPECS[name]
    kwargs = _class_args(name, spec, args, mode)
    _check_search_space(name, spec, search_space)
    space = _batch_space(search_space) if spec.batch else with_constants_as_choices(search_space)
    tuner_class = _load(spec.tuner)
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
        place=spec.place if kwargs.get("all_checkpoint_dir") == _UNPLACED else None,
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


@dataclass(frozen=True)
class _Arg:
    """One classArg: what is allowed (said in error messages), its check, and its keys if it is a mapping."""

    allowed: str
    check: Callable[[Any], bool]
    fields: dict[str, _Arg] | None = None


@dataclass(frozen=True)
class _Spec:
    """How to build one NNI tuner and what it can search; `tuner` ("module:Class") is imported at creation."""

    tuner: str
    args: dict[str, _Arg]
    tuner_args: tuple[Any, ...] = ()
    takes_mode: bool = True
    defaults: dict[str, Any] = field(default_factory=dict)
    prepare: Callable[[str, dict[str, Any]], None] | None = None
    types: frozenset[str] = SEARCH_SPACE_TYPES
    nested: bool = True
    numeric_choices: bool = False
    batch: bool = False
    deferred: bool = False
    fill_in: bool = True
    retries: int | None = MAX_REPEATS
    place: Callable[[Any, dict[str, Any], Path], None] | None = None


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


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _integer(low: int) -> _Arg:
    return _Arg(f"an integer >= {low}", lambda value: _is_int(value) and value >= low)


def _number(low: float, high: float = math.inf, *, above_low: bool = False) -> _Arg:
    if above_low:
        described = f"a number > {low}" if high == math.inf else f"a number in ({low}, {high}]"
        return _Arg(described, lambda value: _is_number(value) and low < value <= high)
    described = f"a number >= {low}" if high == math.inf else f"a number in [{low}, {high}]"
    return _Arg(described, lambda value: _is_number(value) and low <= value <= high)


def _one_of(*options: Any) -> _Arg:
    described = "one of " + ", ".join("null" if option is None else repr(option) for option in options)
    return _Arg(described, lambda value: any(value == option for option in options))


def _mapping(fields: dict[str, _Arg]) -> _Arg:
    return _Arg("a mapping", lambda value: isinstance(value, dict), fields)


_BOOL = _Arg("true or false", lambda value: isinstance(value, bool))
_PATH = _Arg("a non-empty path", lambda value: isinstance(value, str) and bool(value.strip()))
_SEED = _integer(0)
_NUMERIC_TYPES = frozenset({"choice", "randint", "uniform", "quniform", "loguniform", "qloguniform"})
_FLOAT_TYPES = SEARCH_SPACE_TYPES - {"choice", "randint"}
_BOUNDED_TYPES = frozenset({"uniform", "quniform", "loguniform", "qloguniform"})


def _prepare_tpe(name: str, kwargs: dict[str, Any]) -> None:
    """TPE's arguments, checked; without a constant_liar_type, TPE runs with no liar (NNI's default is 'best')."""
    tpe_args = dict(kwargs.get("tpe_args") or {})
    liar = tpe_args.get("constant_liar_type")
    tpe_args["constant_liar_type"] = None if liar is None or str(liar).lower() == "none" else liar
    kwargs["tpe_args"] = tpe_args
    settings = TpeArguments(**tpe_args)
    too_few = [
        n
        for n in range(max(settings.n_startup_jobs, 1), settings.linear_forgetting + 1)
        if min(math.ceil(settings.gamma * math.sqrt(n)), settings.linear_forgetting) >= n
    ]
    if too_few:
        raise UserError(
            f"{name}: with tpe_args.gamma={settings.gamma}, tpe_args.n_startup_jobs must be at least "
            f"{too_few[-1] + 1} (TPE needs one earlier trial outside its best ones); "
            f"got {settings.n_startup_jobs}"
        )


def _prepare_pbt(name: str, kwargs: dict[str, Any]) -> None:
    """PBT's checkpoint folder: classArgs, else NNI_CHECKPOINT_DIRECTORY, else one in the experiment's folder."""
    if "all_checkpoint_dir" not in kwargs:
        kwargs["all_checkpoint_dir"] = os.environ.get("NNI_CHECKPOINT_DIRECTORY") or _UNPLACED


def _place_pbt(tuner: Any, space: dict[str, Any], folder: Path) -> None:
    """Point PBT's population, made before the experiment had a folder, at `folder`/checkpoints."""
    tuner.all_checkpoint_dir = str(folder / CHECKPOINTS)
    tuner.update_search_space(space)


_TPE_ARGS = {
    "constant_liar_type": _one_of("best", "worst", "mean", "none", None),
    "n_startup_jobs": _integer(1),
    "n_ei_candidates": _integer(1),
    "linear_forgetting": _integer(1),
    "prior_weight": _number(0),
    "gamma": _number(0, above_low=True),
}
_HYPEROPT_ARGS = {"parallel_optimize": _BOOL, "constant_liar_type": _one_of("min", "max", "mean")}
_HYPEROPT_TUNER = "automl.tuners.nni_hyperopt:HyperoptTuner"

_SPECS: dict[str, _Spec] = {
    "TPE": _Spec(
        "automl.tuners.nni_patches:TpeTuner",
        {"seed": _SEED, "tpe_args": _mapping(_TPE_ARGS)},
        prepare=_prepare_tpe,
    ),
    "Random": _Spec("nni.algorithms.hpo.random_tuner:RandomTuner", {"seed": _SEED}, takes_mode=False),
    "Anneal": _Spec(_HYPEROPT_TUNER, _HYPEROPT_ARGS, tuner_args=("anneal",)),
    "TPE_legacy": _Spec(_HYPEROPT_TUNER, _HYPEROPT_ARGS, tuner_args=("tpe",)),
    "Evolution": _Spec("automl.tuners.nni_patches:EvolutionTuner", {"population_size": _integer(1)}, deferred=True),
    "GridSearch": _Spec(
        "nni.algorithms.hpo.gridsearch_tuner:GridSearchTuner", {}, takes_mode=False, fill_in=False, retries=None
    ),
    "BatchTuner": _Spec(
        "automl.tuners.nni_patches:BatchTuner", {}, takes_mode=False, batch=True, fill_in=False, retries=None
    ),
    "GPTuner": _Spec(
        "automl.tuners.nni_gp:GPTuner",
        {
            "utility": _one_of("ei", "ucb", "poi"),
            "kappa": _number(0),
            "xi": _number(0),
            "nu": _number(0, above_low=True),
            "alpha": _number(0, above_low=True),
            "cold_start_num": _integer(1),
            "selection_num_warm_up": _integer(1),
            "selection_num_starting_points": _integer(0),
        },
        defaults={"selection_num_warm_up": 10_000, "selection_num_starting_points": 10},
        types=_NUMERIC_TYPES,
        nested=False,
        numeric_choices=True,
        retries=MAX_SLOW_REPEATS,
    ),
    "MetisTuner": _Spec(
        "automl.tuners.nni_metis:MetisTuner",
        {
            "no_resampling": _BOOL,
            "no_candidates": _BOOL,
            "selection_num_starting_points": _integer(1),
            "cold_start_num": _integer(1),
            "exploration_probability": _number(0, 1),
        },
        defaults={"selection_num_starting_points": 30},
        types=frozenset({"choice", "randint", "uniform", "quniform"}),
        nested=False,
        numeric_choices=True,
        retries=MAX_SLOW_REPEATS,
    ),
    "PBTTuner": _Spec(
        "automl.tuners.nni_patches:PBTTuner",
        {
            "all_checkpoint_dir": _PATH,
            "population_size": _integer(1),
            "factor": _number(0, above_low=True),
            "resample_probability": _number(0, 1),
            "fraction": _number(0, 1, above_low=True),
        },
        prepare=_prepare_pbt,
        place=_place_pbt,
        nested=False,
        deferred=True,
        fill_in=False,
    ),
}


def _load(reference: str) -> Callable[..., Any]:
    """The class a "module:Class" reference names, importing its module on first use."""
    module, _, attribute = reference.partition(":")
    return getattr(importlib.import_module(module), attribute)


def _class_args(name: str, spec: _Spec, args: dict[str, Any], mode: Mode) -> dict[str, Any]:
    kwargs = dict(args)
    given_mode = kwargs.pop("optimize_mode", None)
    if given_mode is not None and given_mode != mode:
        raise UserError(
            f"{name}: classArgs.optimize_mode is {given_mode!r} but the experiment's optimize mode is "
            f"{mode!r}; drop classArgs.optimize_mode or make the two agree"
        )
    accepted = ", ".join(["optimize_mode", *sorted(spec.args)])
    for key, value in kwargs.items():
        if key not in spec.args:
            raise UserError(f"{name} has no classArgs {key!r}; it accepts: {accepted}")
        _check_arg(name, key, spec.args[key], value)
    kwargs = {**spec.defaults, **kwargs}
    if spec.prepare is not None:
        spec.prepare(name, kwargs)
    if spec.takes_mode:
        kwargs["optimize_mode"] = mode
    return kwargs


def _check_arg(name: str, path: str, arg: _Arg, value: Any) -> None:
    if not arg.check(value):
        raise UserError(f"{name}: classArgs.{path} must be {arg.allowed}, got {value!r}")
    if arg.fields is None:
        return
    for key, item in value.items():
        if key not in arg.fields:
            raise UserError(f"{name}: classArgs.{path} has no key {key!r}; it accepts: {', '.join(sorted(arg.fields))}")
        _check_arg(name, f"{path}.{key}", arg.fields[key], item)


def _check_search_space(name: str, spec: _Spec, space: dict[str, Any]) -> None:
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
        if spec.numeric_choices and not all(_is_number(value) for value in values):
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
        elif not _is_number(value):
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
