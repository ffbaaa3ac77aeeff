"""The builtin tuners: one table from each name to how its NNI tuner is built, the classArgs it accepts (each with
its check) and what it can search. Adding a tuner is one entry in TUNERS; `nni` is imported only when one is built.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from automl.config.search_space import TYPES
from automl.errors import UserError
from automl.registry import Registry, checked_class_args

MAX_REPEATS = 20
"""Proposals in a row that repeat an earlier set before the adapter fills in a fresh set itself."""

MAX_SLOW_REPEATS = 2
"""The same for tuners that take seconds per proposal (GP, Metis)."""

SEARCH_SPACE_TYPES = frozenset(TYPES)
"""Every parameter type of NNI's search-space format."""

CHECKPOINTS = "checkpoints"
"""PBTTuner's checkpoint folder inside the experiment's folder, unless classArgs or NNI_CHECKPOINT_DIRECTORY say."""

UNPLACED = "<experiment folder>/checkpoints"
"""PBT's checkpoint folder until the experiment's folder is known."""


@dataclass(frozen=True)
class Arg:
    """One classArg: what is allowed (said in error messages), its check, and its keys if it is a mapping."""

    allowed: str
    check: Callable[[Any], bool]
    fields: dict[str, Arg] | None = None


@dataclass(frozen=True)
class TunerEntry:
    """How to build one NNI tuner and what it can search; `tuner` ("module:Class") is imported at creation."""

    tuner: str
    args: dict[str, Arg]
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
    order_only: bool = False
    """It learns from the order of results alone (or not at all), so `learn_from: rung` can feed it ranks."""


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _integer(low: int) -> Arg:
    return Arg(f"an integer >= {low}", lambda value: _is_int(value) and value >= low)


def _number(low: float, high: float = math.inf, *, above_low: bool = False) -> Arg:
    if above_low:
        described = f"a number > {low}" if high == math.inf else f"a number in ({low}, {high}]"
        return Arg(described, lambda value: is_number(value) and low < value <= high)
    described = f"a number >= {low}" if high == math.inf else f"a number in [{low}, {high}]"
    return Arg(described, lambda value: is_number(value) and low <= value <= high)


def _one_of(*options: Any) -> Arg:
    described = "one of " + ", ".join("null" if option is None else repr(option) for option in options)
    return Arg(described, lambda value: any(value == option for option in options))


def _mapping(fields: dict[str, Arg]) -> Arg:
    return Arg("a mapping", lambda value: isinstance(value, dict), fields)


_BOOL = Arg("true or false", lambda value: isinstance(value, bool))
_PATH = Arg("a non-empty path", lambda value: isinstance(value, str) and bool(value.strip()))
_SEED = _integer(0)
_NUMERIC_TYPES = frozenset({"choice", "randint", "uniform", "quniform", "loguniform", "qloguniform"})


def _prepare_tpe(name: str, kwargs: dict[str, Any]) -> None:
    """TPE's arguments, checked; without a constant_liar_type, TPE runs with no liar (NNI's default is 'best')."""
    tpe_args = dict(kwargs.get("tpe_args") or {})
    liar = tpe_args.get("constant_liar_type")
    tpe_args["constant_liar_type"] = None if liar is None or str(liar).lower() == "none" else liar
    kwargs["tpe_args"] = tpe_args
    from nni.algorithms.hpo.tpe_tuner import TpeArguments  # on use: checking names and classArgs loads no NNI

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
        kwargs["all_checkpoint_dir"] = os.environ.get("NNI_CHECKPOINT_DIRECTORY") or UNPLACED


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

_TABLE: dict[str, TunerEntry] = {
    "TPE": TunerEntry(
        "automl.tuners.nni_patches:TpeTuner",
        {"seed": _SEED, "tpe_args": _mapping(_TPE_ARGS)},
        prepare=_prepare_tpe,
        order_only=True,
    ),
    "Random": TunerEntry(
        "nni.algorithms.hpo.random_tuner:RandomTuner", {"seed": _SEED}, takes_mode=False, order_only=True
    ),
    "Anneal": TunerEntry(_HYPEROPT_TUNER, _HYPEROPT_ARGS, tuner_args=("anneal",)),
    "Evolution": TunerEntry(
        "automl.tuners.nni_patches:EvolutionTuner", {"population_size": _integer(1)}, deferred=True, order_only=True
    ),
    "GridSearch": TunerEntry(
        "nni.algorithms.hpo.gridsearch_tuner:GridSearchTuner",
        {},
        takes_mode=False,
        fill_in=False,
        retries=None,
        order_only=True,
    ),
    "BatchTuner": TunerEntry(
        "automl.tuners.nni_patches:BatchTuner",
        {},
        takes_mode=False,
        batch=True,
        fill_in=False,
        retries=None,
        order_only=True,
    ),
    "GPTuner": TunerEntry(
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
    "MetisTuner": TunerEntry(
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
    "PBTTuner": TunerEntry(
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
    "TPE_legacy": TunerEntry(_HYPEROPT_TUNER, _HYPEROPT_ARGS, tuner_args=("tpe",)),
}
_ALIASES = {"batch": "BatchTuner", "gp": "GPTuner", "metis": "MetisTuner", "pbt": "PBTTuner"}
_NAS = "it searches neural architectures, not hyperparameters"
_DNGO = "it needs pybnn, which pulls torchvision and gigabytes of CUDA wheels"
_PPO = "it needs TensorFlow and searches neural architectures, not hyperparameters"
_UNAVAILABLE = {
    "smac": ("SMAC", "its packages (ConfigSpaceNNI, smac4nni) only build with old Cython and swig and need numpy < 2"),
    "dngo": ("DNGOTuner", _DNGO),
    "dngotuner": ("DNGOTuner", _DNGO),
    "ppo": ("PPOTuner", _PPO),
    "ppotuner": ("PPOTuner", _PPO),
    "networkmorphism": ("NetworkMorphism", _NAS),
    "regularizedevolution": ("RegularizedEvolution", _NAS),
    "regularizedevolutiontuner": ("RegularizedEvolution", _NAS),
}

TUNERS: Registry[TunerEntry] = Registry(
    "tuner",
    _TABLE,
    _ALIASES,
    _UNAVAILABLE,
    hint="; a tuner of your own (or one registered with `nnictl algo register`) is named by class_name and "
    "code_directory (NNI: className and codeDirectory)",
)


def checked_tuner_args(name: str, args: Any, mode: str) -> dict[str, Any]:
    """A builtin tuner's classArgs without optimize_mode, after the checks every tuner and stopper shares and each
    argument's own check; nothing of NNI is loaded."""
    entry = TUNERS.entries[name]
    kwargs = checked_class_args(name, args, mode, sorted(entry.args))
    for key, value in kwargs.items():
        check_arg(name, key, entry.args[key], value)
    return kwargs


def check_arg(name: str, path: str, arg: Arg, value: Any) -> None:
    """A classArg's value (and each key of a mapping one) against its check; a UserError names the path."""
    if not arg.check(value):
        raise UserError(f"{name}: classArgs.{path} must be {arg.allowed}, got {value!r}")
    if arg.fields is None:
        return
    for key, item in value.items():
        if key not in arg.fields:
            raise UserError(f"{name}: classArgs.{path} has no key {key!r}; it accepts: {', '.join(sorted(arg.fields))}")
        check_arg(name, f"{path}.{key}", arg.fields[key], item)
