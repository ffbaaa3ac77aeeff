"""Translate an NNI `config.yml` (v2, or v1 converted as NNI itself does) into our config mapping, with NNI 3.0's
semantics, refusing what we cannot honour."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from ..errors import UserError
from ..tuners import canonical_tuner_name

# NNI fields that change nothing about how trials run here: accepted, with a warning saying so.
_IGNORED = {
    "logLevel": "automl writes its own log",
    "debug": "automl writes its own log",
    "nniManagerIp": "automl needs no manager address",
    "experimentWorkingDirectory": "automl keeps its data under $AUTOML_HOME",
    "experimentType": "only hyperparameter search ('hpo') exists",
}
_TOP_LEVEL = {
    "experimentName",
    "searchSpaceFile",
    "searchSpace",
    "trialCommand",
    "trialCodeDirectory",
    "trialConcurrency",
    "trialGpuNumber",
    "maxExperimentDuration",
    "maxTrialNumber",
    "maxTrialDuration",
    "useAnnotation",
    "tunerGpuIndices",
    "tuner",
    "assessor",
    "advisor",
    "trainingService",
    "sharedStorage",
    *_IGNORED,
}
_LOCAL_SERVICE = {
    "platform",
    "useActiveGpu",
    "maxTrialNumberPerGpu",
    "gpuIndices",
    "trialGpuNumber",
    "trialCommand",
    "trialCodeDirectory",
    "reuseMode",
    "debug",
    "nniManagerIp",
}

V1_MARKER = "trainingServicePlatform"
"""The field only NNI's v1 format has (nnictl tells the two formats apart by it)."""

# The direction each builtin algorithm's constructor defaults to, read from NNI 3.0's source. Random,
# GridSearch and BatchTuner have none (NNI's web UI then shows maximize); Curvefitting takes no direction
# and only works on rising curves.
TUNER_DEFAULT_MODES = {
    "TPE": "minimize",
    "TPE_legacy": "minimize",
    "Anneal": "minimize",
    "Evolution": "maximize",
    "GPTuner": "maximize",
    "MetisTuner": "maximize",
    "PBTTuner": "maximize",
    "Hyperband": "maximize",
    "BOHB": "maximize",
}
_NO_DIRECTION_DEFAULT = "maximize"

# NNI's advisors as a tuner proposing configurations plus Hyperband brackets stopping trials:
# canonical name -> (our tuner, {NNI classArg: our Hyperband arg}, NNI's defaults, the classArg of the full budget)
_ADVISORS: dict[str, tuple[str, dict[str, str], dict[str, Any], str]] = {
    "Hyperband": ("Random", {"R": "max_resource", "eta": "reduction_factor"}, {"R": 60, "eta": 3}, "R"),
    "BOHB": (
        "TPE",
        {"min_budget": "min_resource", "max_budget": "max_resource", "eta": "reduction_factor"},
        {"min_budget": 1, "max_budget": 3, "eta": 3},
        "max_budget",
    ),
}
TRIAL_BUDGET = "TRIAL_BUDGET"
"""The parameter NNI's Hyperband and BOHB put a trial's budget in."""


def is_v1(raw: dict[str, Any]) -> bool:
    """Whether an NNI config is in NNI's v1 format."""
    return V1_MARKER in raw


def translate(raw: dict[str, Any], source: str) -> tuple[dict[str, Any], list[str]]:
    """Our config mapping for an NNI v1 or v2 config, plus warnings for what differs or has no effect here."""
    warnings: list[str] = []
    if is_v1(raw):
        raw = v1_to_v2(raw, source, warnings)
        source = f"{source} (NNI v1, converted to v2)"
    unknown = sorted(set(raw) - _TOP_LEVEL)
    if unknown:
        raise UserError(
            f"{source}: unknown NNI field(s) {', '.join(unknown)}; supported: {', '.join(sorted(_TOP_LEVEL))}"
        )
    warnings += [f"{source}: '{key}' is ignored: {why}" for key, why in _IGNORED.items() if key in raw]
    _refuse(raw, source)
    service = _training_service(raw.get("trainingService"), source, warnings)

    out: dict[str, Any] = {}
    _copy(
        raw,
        out,
        {
            "experimentName": "name",
            "searchSpaceFile": "search_space_file",
            "searchSpace": "search_space",
            "trialCodeDirectory": "working_dir",
            "trialConcurrency": "concurrency",
            "maxExperimentDuration": "max_duration",
            "maxTrialNumber": "max_trials",
            "maxTrialDuration": "trial_timeout",
        },
    )
    if "max_duration" in out:
        out["on_max_duration"] = "finish"  # NNI starts no trial after it and lets running ones end
    _copy(service, out, {"trialCodeDirectory": "working_dir"})
    command = raw.get("trialCommand", service.get("trialCommand"))
    if command is None:
        raise UserError(f"{source}: field 'trialCommand': required")
    out["command"] = command
    gpus = raw.get("trialGpuNumber", service.get("trialGpuNumber"))
    if gpus is not None:
        out["resources"] = {"gpus": gpus}
    gpu_policy = {}
    _copy(service, gpu_policy, {"useActiveGpu": "use_active_gpu", "maxTrialNumberPerGpu": "max_trials_per_gpu"})
    if service.get("gpuIndices") is not None:
        gpu_policy["indices"] = _gpu_indices(service["gpuIndices"], source)
    if gpu_policy:
        out["gpu"] = gpu_policy
    out.update(_algorithms(raw, source, warnings))
    return out, warnings


def v1_to_v2(raw: dict[str, Any], source: str, warnings: list[str]) -> dict[str, Any]:
    """An NNI v1 config in v2 form, converted by NNI's own `to_v2` (as nnictl does); only the local platform."""
    platform = raw.get(V1_MARKER)
    if platform != "local":
        raise UserError(
            f"{source}: this is NNI's v1 config format with trainingServicePlatform: {platform}; "
            "only the local platform is supported (trainingServicePlatform: local)"
        )
    from nni.experiment.config import convert  # imports nni: about a second, so only for v1 files

    logger = logging.getLogger(convert.__name__)
    collected = _Collected()
    logger.addHandler(collected)
    logger.propagate = False
    try:
        v2 = convert.to_v2(raw)
    except KeyError as e:
        raise UserError(f"{source}: NNI v1 config: field {e.args[0]!r} is required here") from None
    except (AssertionError, AttributeError, TypeError) as e:
        raise UserError(f"{source}: NNI v1 config cannot be converted: {e or type(e).__name__}") from None
    finally:
        logger.removeHandler(collected)
        logger.propagate = True
    if collected.errors:
        raise UserError(f"{source}: NNI v1 fields that have no v2 equivalent: {'; '.join(collected.errors)}")
    warnings += [f"{source}: {message}" for message in collected.warnings]
    return v2


class _Collected(logging.Handler):
    """Keeps what NNI's converter logs: its warnings (fields dropped) and errors (fields it could not convert)."""

    def __init__(self) -> None:
        super().__init__()
        self.warnings: list[str] = []
        self.errors: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        (self.errors if record.levelno >= logging.ERROR else self.warnings).append(record.getMessage())


@dataclass
class _Algorithm:
    """A tuner, advisor or assessor of an NNI config: our spec for it and the direction its classArgs state."""

    field: str
    spec: dict[str, Any]
    stated: str | None

    @property
    def custom(self) -> bool:
        return "class_name" in self.spec

    @property
    def label(self) -> str:
        """How messages name it: the canonical builtin name, or 'the custom tuner module.Class'."""
        if self.custom:
            return f"the custom {self.field} {self.spec['class_name']}"
        return _canonical_algorithm(str(self.spec["name"]))


def _algorithms(raw: dict[str, Any], source: str, warnings: list[str]) -> dict[str, Any]:
    """Our tuner, stopper, objective and fixed parameters from NNI's tuner (or advisor) and assessor."""
    if raw.get("tuner") is not None and raw.get("advisor") is not None:
        raise UserError(f"{source}: give either 'tuner' or 'advisor', not both")
    field = "advisor" if raw.get("advisor") is not None else "tuner"
    if raw.get(field) is None:
        raise UserError(f"{source}: field 'tuner': required, e.g. {{name: TPE}}")
    tuner = _algorithm(raw[field], source, field)
    assessor = None if raw.get("assessor") is None else _algorithm(raw["assessor"], source, "assessor")
    is_advisor = not tuner.custom and tuner.label in _ADVISORS
    if field == "advisor" and not is_advisor:
        raise UserError(
            f"{source}: field 'advisor.name': {tuner.spec.get('name', tuner.label)!r} is not "
            "supported; allowed: Hyperband, BOHB (or give a tuner and an assessor)"
        )
    if is_advisor and assessor is not None:
        raise UserError(f"{source}: {tuner.label} stops trials itself; drop 'assessor'")

    mode, mode_from = _direction(tuner, assessor)
    objective: dict[str, Any] = {"metric": "default", "mode": mode}
    if mode_from is not None:
        objective["mode_from"] = mode_from
        warnings.append(
            f"{source}: the optimize direction is {mode}, from {mode_from} (NNI's rule: the "
            "tuner's classArgs.optimize_mode, else the assessor's, else the tuner's default); "
            "set tuner.classArgs.optimize_mode to choose"
        )
    out: dict[str, Any] = {"objective": objective}
    if is_advisor:
        out["tuner"], out["stopper"], out["fixed_params"] = _advisor(tuner, source, warnings)
        return out
    out["tuner"] = tuner.spec
    if assessor is not None:
        out["stopper"] = _assessor_spec(assessor, mode, source, warnings)
    return out


def _algorithm(spec: Any, source: str, field: str) -> _Algorithm:
    """A builtin (`name`) or custom (`className`, `codeDirectory`) algorithm with its classArgs, checked."""
    if not isinstance(spec, dict):
        raise UserError(
            f"{source}: field '{field}': must be a mapping with 'name' (or 'className') and optional 'classArgs'"
        )
    custom = "className" in spec
    allowed = {"className", "codeDirectory", "classArgs"} if custom else {"name", "classArgs"}
    unknown = sorted(set(spec) - allowed)
    if unknown:
        raise UserError(
            f"{source}: field '{field}': unknown field(s) {', '.join(unknown)}; allowed: name, "
            "classArgs (a builtin) or className, codeDirectory, classArgs (a custom class)"
        )
    if not custom and spec.get("name") is None:
        raise UserError(f"{source}: field '{field}.name': required (or 'className' for a custom class)")
    class_args = spec.get("classArgs") or {}
    if not isinstance(class_args, dict):
        raise UserError(
            f"{source}: field '{field}.classArgs': must be a mapping of argument names to values, got {class_args!r}"
        )
    stated = class_args.get("optimize_mode")
    if stated is not None and stated not in ("maximize", "minimize"):
        raise UserError(
            f"{source}: field '{field}.classArgs.optimize_mode': must be 'maximize' or 'minimize', got {stated!r}"
        )
    if not custom:
        args = {key: value for key, value in class_args.items() if key != "optimize_mode"}
        return _Algorithm(field, {"name": spec["name"], "args": args}, stated)
    ours: dict[str, Any] = {"class_name": spec["className"]}
    if spec.get("codeDirectory") is not None:
        ours["code_directory"] = spec["codeDirectory"]
    ours["args"] = dict(class_args)  # NNI hands a custom class its classArgs as written
    return _Algorithm(field, ours, stated)


def _direction(tuner: _Algorithm, assessor: _Algorithm | None) -> tuple[str, str | None]:
    """NNI's direction and, when the tuner's classArgs do not state it, where it came from."""
    if tuner.stated is not None:
        return tuner.stated, None
    if assessor is not None and assessor.stated is not None:
        return assessor.stated, "the assessor"
    default = None if tuner.custom else TUNER_DEFAULT_MODES.get(tuner.label)
    if default is not None:
        return default, f"{tuner.label}'s default"
    return _NO_DIRECTION_DEFAULT, f"NNI's default, as {tuner.label} has no direction"


def _assessor_spec(assessor: _Algorithm, mode: str, source: str, warnings: list[str]) -> dict[str, Any]:
    """Our stopper spec; an optimize_mode the tuner overrules is dropped, so the assessor runs in `mode`."""
    if assessor.stated is not None and assessor.stated != mode:
        warnings.append(
            f"{source}: assessor.classArgs.optimize_mode is {assessor.stated} but the tuner's is "
            f"{mode}; the tuner's wins (NNI's rule) and the assessor runs with {mode}"
        )
        assessor.spec["args"].pop("optimize_mode", None)
    return assessor.spec


def _advisor(
    tuner: _Algorithm, source: str, warnings: list[str]
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """NNI's Hyperband or BOHB as our tuner (Random or TPE), Hyperband stopper and the trials' TRIAL_BUDGET."""
    ours, mapping, defaults, budget = _ADVISORS[tuner.label]
    given = tuner.spec["args"]
    args = {**defaults, **given}
    stopper_args = {our_name: args[theirs] for theirs, our_name in mapping.items()}
    ignored = sorted(set(given) - set(mapping))
    if ignored:
        warnings.append(
            f"{source}: {tuner.field} classArgs {', '.join(ignored)} ignored: trials run {ours}'s "
            "configurations under Hyperband brackets that stop them early"
        )
    return {"name": ours, "args": {}}, {"name": "Hyperband", "args": stopper_args}, {TRIAL_BUDGET: args[budget]}


def _canonical_algorithm(name: str) -> str:
    """A builtin tuner or advisor's canonical name; an unknown one as written (validation names it later)."""
    for advisor in _ADVISORS:
        if name.strip().lower() == advisor.lower():
            return advisor
    try:
        return canonical_tuner_name(name)
    except UserError:
        return name


def _refuse(raw: dict[str, Any], source: str) -> None:
    if raw.get("useAnnotation"):
        raise UserError(
            f"{source}: 'useAnnotation: true' is not supported; "
            "call nni.get_next_parameter() and nni.report_*_result() in the script instead"
        )
    for key, why in (
        ("sharedStorage", "trials run on this machine, no shared storage is needed"),
        ("tunerGpuIndices", "tuners run on the CPU here"),
    ):
        if raw.get(key) is not None:
            raise UserError(f"{source}: field '{key}' is not supported: {why}")


def _training_service(service: Any, source: str, warnings: list[str]) -> dict[str, Any]:
    if service is None:
        raise UserError(f"{source}: field 'trainingService': required (use {{platform: local}})")
    if isinstance(service, list):
        if len(service) != 1:
            raise UserError(f"{source}: field 'trainingService': only one training service (local) is supported")
        service = service[0]
    if not isinstance(service, dict):
        raise UserError(f"{source}: field 'trainingService': must be a mapping such as {{platform: local}}")
    if service.get("platform") != "local":
        raise UserError(
            f"{source}: field 'trainingService.platform': {service.get('platform')!r} is not supported; allowed: local"
        )
    unknown = sorted(set(service) - _LOCAL_SERVICE)
    if unknown:
        raise UserError(
            f"{source}: field 'trainingService': unknown field(s) {', '.join(unknown)}; "
            f"supported: {', '.join(sorted(_LOCAL_SERVICE))}"
        )
    if service.get("reuseMode"):
        warnings.append(f"{source}: 'trainingService.reuseMode' is ignored: every trial is a fresh process")
    return service


def _gpu_indices(value: Any, source: str) -> list[int]:
    if isinstance(value, int) and not isinstance(value, bool):
        return [value]
    if isinstance(value, str):
        try:
            return [int(part) for part in value.split(",") if part.strip()]
        except ValueError:
            pass
    elif isinstance(value, list) and all(isinstance(v, int) for v in value):
        return value
    raise UserError(
        f"{source}: field 'trainingService.gpuIndices': expected an index, a list of indices "
        f"or a string like '0,1'; got {value!r}"
    )


def _copy(src: dict[str, Any], dst: dict[str, Any], names: dict[str, str]) -> None:
    for nni_name, our_name in names.items():
        if src.get(nni_name) is not None:
            dst[our_name] = src[nni_name]
