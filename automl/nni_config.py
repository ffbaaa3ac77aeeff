"""Translate an NNI v2 `config.yml` (camelCase fields) into our config mapping, refusing what we cannot honour."""

from __future__ import annotations

from typing import Any

from .errors import UserError

# NNI fields that change nothing about how trials run here: accepted, with a warning saying so.
_IGNORED = {
    "logLevel": "automl writes its own log",
    "debug": "automl writes its own log",
    "nniManagerIp": "automl needs no manager address",
    "experimentWorkingDirectory": "automl keeps its data under $AUTOML_HOME",
    "experimentType": "only hyperparameter search ('hpo') exists",
}
_TOP_LEVEL = {
    "experimentName", "searchSpaceFile", "searchSpace", "trialCommand", "trialCodeDirectory",
    "trialConcurrency", "trialGpuNumber", "maxExperimentDuration", "maxTrialNumber", "maxTrialDuration",
    "useAnnotation", "tunerGpuIndices", "tuner", "assessor", "advisor", "trainingService", "sharedStorage",
    *_IGNORED,
}
_LOCAL_SERVICE = {"platform", "useActiveGpu", "maxTrialNumberPerGpu", "gpuIndices", "trialGpuNumber",
                  "trialCommand", "trialCodeDirectory", "reuseMode", "debug", "nniManagerIp"}


def translate(raw: dict[str, Any], source: str) -> tuple[dict[str, Any], list[str]]:
    """Our config mapping for an NNI v2 config, plus warnings for fields that have no effect here."""
    unknown = sorted(set(raw) - _TOP_LEVEL)
    if unknown:
        raise UserError(f"{source}: unknown NNI field(s) {', '.join(unknown)}; "
                        f"supported: {', '.join(sorted(_TOP_LEVEL))}")
    warnings = [f"{source}: '{key}' is ignored: {why}" for key, why in _IGNORED.items() if key in raw]
    _refuse(raw, source)
    service = _training_service(raw.get("trainingService"), source, warnings)

    out: dict[str, Any] = {}
    _copy(raw, out, {"experimentName": "name", "searchSpaceFile": "search_space_file",
                     "searchSpace": "search_space", "trialCodeDirectory": "working_dir",
                     "trialConcurrency": "concurrency", "maxExperimentDuration": "max_duration",
                     "maxTrialNumber": "max_trials", "maxTrialDuration": "trial_timeout"})
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
    if raw.get("tuner") is not None and raw.get("advisor") is not None:
        raise UserError(f"{source}: give either 'tuner' or 'advisor', not both")
    if raw.get("tuner") is not None:
        out["tuner"], mode = _tuner(raw["tuner"], source, "tuner")
        out["objective"] = {"metric": "default", "mode": mode}
    if raw.get("advisor") is not None:
        out["tuner"], out["stopper"], mode = _advisor(raw["advisor"], source, warnings)
        out["objective"] = {"metric": "default", "mode": mode}
    if raw.get("assessor") is not None:
        if raw.get("advisor") is not None:
            raise UserError(f"{source}: an advisor stops trials itself; drop 'assessor'")
        spec, _ = _tuner(raw["assessor"], source, "assessor")
        out["stopper"] = spec
    return out, warnings


def _refuse(raw: dict[str, Any], source: str) -> None:
    if raw.get("useAnnotation"):
        raise UserError(f"{source}: 'useAnnotation: true' is not supported; "
                        "call nni.get_next_parameter() and nni.report_*_result() in the script instead")
    for key, why in (("sharedStorage", "trials run on this machine, no shared storage is needed"),
                     ("tunerGpuIndices", "tuners run on the CPU here")):
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
        raise UserError(f"{source}: field 'trainingService.platform': {service.get('platform')!r} is not "
                        "supported; allowed: local")
    unknown = sorted(set(service) - _LOCAL_SERVICE)
    if unknown:
        raise UserError(f"{source}: field 'trainingService': unknown field(s) {', '.join(unknown)}; "
                        f"supported: {', '.join(sorted(_LOCAL_SERVICE))}")
    if service.get("reuseMode"):
        warnings.append(f"{source}: 'trainingService.reuseMode' is ignored: every trial is a fresh process")
    return service


def _tuner(spec: Any, source: str, field: str) -> tuple[dict[str, Any], str]:
    """Our spec for a builtin tuner, assessor or advisor, and the direction it names (NNI's default: minimize)."""
    if not isinstance(spec, dict):
        raise UserError(f"{source}: field '{field}': must be a mapping with 'name' and optional 'classArgs'")
    if "className" in spec or "codeDirectory" in spec:
        raise UserError(f"{source}: field '{field}': custom classes are not supported; use a builtin name")
    unknown = sorted(set(spec) - {"name", "classArgs"})
    if unknown:
        raise UserError(f"{source}: field '{field}': unknown field(s) {', '.join(unknown)}; allowed: name, classArgs")
    class_args = spec.get("classArgs") or {}
    if not isinstance(class_args, dict):
        raise UserError(f"{source}: field '{field}.classArgs': must be a mapping of argument names to values, "
                        f"got {class_args!r}")
    args = dict(class_args)
    mode = args.pop("optimize_mode", "minimize")
    if mode not in ("maximize", "minimize"):
        raise UserError(f"{source}: field '{field}.classArgs.optimize_mode': must be 'maximize' or 'minimize', "
                        f"got {mode!r}")
    return {"name": spec.get("name"), "args": args}, mode


# NNI's advisors as a tuner proposing configurations plus Hyperband brackets stopping trials:
# advisor name -> (our tuner, {NNI classArg: our Hyperband arg})
_ADVISORS = {
    "hyperband": ("Random", {"R": "max_resource", "eta": "reduction_factor"}),
    "bohb": ("TPE", {"min_budget": "min_resource", "max_budget": "max_resource", "eta": "reduction_factor"}),
}


def _advisor(spec: Any, source: str, warnings: list[str]) -> tuple[dict[str, Any], dict[str, Any], str]:
    """NNI's Hyperband or BOHB advisor as our tuner (Random or TPE) and Hyperband stopper."""
    advisor, mode = _tuner(spec, source, "advisor")
    name = str(advisor["name"]).lower()
    if name not in _ADVISORS:
        raise UserError(f"{source}: field 'advisor.name': {advisor['name']!r} is not supported; "
                        "allowed: Hyperband, BOHB (or give a tuner and an assessor)")
    tuner, mapping = _ADVISORS[name]
    args = {ours: advisor["args"][theirs] for theirs, ours in mapping.items() if theirs in advisor["args"]}
    ignored = sorted(set(advisor["args"]) - set(mapping))
    if ignored:
        warnings.append(f"{source}: advisor classArgs {', '.join(ignored)} ignored: trials run {tuner}'s "
                        "configurations under Hyperband brackets that stop them early")
    return {"name": tuner, "args": {}}, {"name": "Hyperband", "args": args}, mode


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
    raise UserError(f"{source}: field 'trainingService.gpuIndices': expected an index, a list of indices "
                    f"or a string like '0,1'; got {value!r}")


def _copy(src: dict[str, Any], dst: dict[str, Any], names: dict[str, str]) -> None:
    for nni_name, our_name in names.items():
        if src.get(nni_name) is not None:
            dst[our_name] = src[nni_name]
