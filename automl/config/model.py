"""Experiment configuration: the pydantic model, loading from YAML/JSON, and the checks done before anything runs."""

from __future__ import annotations

import json
import math
import os
import re
import shlex
import shutil
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..errors import UserError, close_match
from ..launchers.ray_address import DEFAULT_RECONNECT_TIMEOUT
from ..tuners import canonical_tuner_name
from . import search_space

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_CONFIG_NODES = 1_000_000  # values in a config once YAML aliases are expanded (a few bytes can expand to gigabytes)
MAX_CONFIG_DEPTH = 100  # nested mappings and lists (deeper ones exhaust the recursion of every reader after us)


def parse_duration(value: Any) -> float | None:
    """Seconds from a number or a string like '90s', '10m', '1.5h', '2d'; never infinite or NaN."""
    if value is None:
        return None
    seconds = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = value
    elif isinstance(value, str) and (m := _DURATION.match(value)):
        seconds = float(m.group(1)) * _UNIT_SECONDS[m.group(2)]
    if seconds is None:
        raise ValueError(f"expected seconds or a duration such as '90s', '10m', '2h', '1d'; got {value!r}")
    if not math.isfinite(seconds):
        raise ValueError("a duration must be a finite number of seconds")
    return seconds


Duration = Annotated[float, BeforeValidator(parse_duration), Field(gt=0)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Objective(_Model):
    """Which reported metric is optimized, and in which direction."""

    metric: str = "default"
    mode: Literal["maximize", "minimize"] = "maximize"
    mode_from: str | None = None
    """Where a direction the user did not state came from (an NNI config's assessor or tuner default); else None."""


def _canonical(name: str, canonical: Callable[[str], str]) -> str:
    """A strategy's canonical name, its UserError turned into the ValueError pydantic reports."""
    try:
        return canonical(name)
    except UserError as e:
        raise ValueError(str(e)) from None


def _custom_class(spec: TunerSpec | StopperSpec, what: str) -> bool:
    """Whether the spec names the user's own class; checks the name / class_name / code_directory combination.

    For a user's class, `name` is set to `class_name`, so messages and views can always show `name`.
    """
    if spec.class_name is None:
        if spec.code_directory is not None:
            raise ValueError("code_directory is only used with class_name")
        return False
    if spec.name not in (None, spec.class_name):
        raise ValueError(f"give either name (a builtin {what}) or class_name (your own class), not both")
    module, _, attribute = spec.class_name.rpartition(".")
    if not module or not attribute:
        raise ValueError(f"class_name must be 'module.Class', got {spec.class_name!r}")
    spec.name = spec.class_name
    return True


class TunerSpec(_Model):
    """An NNI builtin tuner by name, or the user's own NNI Tuner subclass by class_name, with its classArgs."""

    name: str | None = None
    class_name: str | None = None
    code_directory: Path | None = None
    args: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _known_name(self) -> TunerSpec:
        if not _custom_class(self, "tuner"):
            self.name = _canonical(self.name or "TPE", canonical_tuner_name)
        return self


class StopperSpec(_Model):
    """An early-stopping strategy by name (or the user's own NNI Assessor subclass by class_name) with its
    classArgs, and what the tuner learns from a trial it stopped."""

    name: str | None = None
    class_name: str | None = None
    code_directory: Path | None = None
    args: dict[str, Any] = Field(default_factory=dict)
    learn_from: Literal["last", "best", "rung", "none"] = "last"

    @model_validator(mode="after")
    def _known_name(self) -> StopperSpec:
        from ..stoppers import canonical_stopper_name

        if _custom_class(self, "early-stopping strategy"):
            return self
        if self.name is None:
            raise ValueError("give name (a builtin early-stopping strategy) or class_name (your own Assessor)")
        self.name = _canonical(self.name, canonical_stopper_name)
        return self


class Resources(_Model):
    """What one trial gets: CPU threads (its OMP_NUM_THREADS) and GPUs."""

    cpus: int | None = Field(default=None, ge=1)
    gpus: float = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _whole_or_fraction(self) -> Resources:
        if self.gpus > 1 and not float(self.gpus).is_integer():
            raise ValueError(f"gpus must be a whole number, or a fraction below 1 to share a GPU; got {self.gpus}")
        return self


class SimulatedLoad(_Model):
    """What one trial puts on each of its GPUs when the GPUs are simulated (AUTOML_SIM_GPUS)."""

    memory_mib: float = Field(default=1024, ge=0)
    utilization: float = Field(default=80, ge=0, le=100)


class GpuPolicy(_Model):
    """Which GPUs trials may use, how many trials one GPU takes, and how free a GPU must be to take one."""

    indices: list[int] | None = None
    max_trials_per_gpu: int = Field(default=1, ge=1)
    use_active_gpu: bool = False
    max_utilization: float = Field(default=30, ge=0, le=100)
    min_free_memory_mib: float = Field(default=1024, ge=0)
    trial_memory_mib: float | None = Field(default=None, gt=0)
    simulated_load: SimulatedLoad = Field(default_factory=SimulatedLoad)


class CostPolicy(_Model):
    """Prices that turn a trial's energy and GPU time into money."""

    price_per_kwh: float = Field(default=0, ge=0)
    price_per_gpu_hour: float = Field(default=0, ge=0)
    currency: str = "USD"


class NotifySpec(_Model):
    """A command run when the experiment ends (`automl.notify`)."""

    command: list[str] = Field(min_length=1)

    @field_validator("command", mode="before")
    @classmethod
    def _words(cls, value: Any) -> Any:
        return shlex.split(value) if isinstance(value, str) else value


class LauncherSpec(_Model):
    """Where trials run: this machine (`local`) or a Ray cluster (`ray`, at `address`, each trial asking for the
    custom Ray `resources` too); unset: the host's default (the daemon's `--ray` cluster, else this machine)."""

    name: Literal["local", "ray"] | None = None
    address: str | None = None
    resources: dict[str, float] = Field(default_factory=dict)
    labels: dict[str, str] = Field(default_factory=dict)  # Ray node labels a trial's node must match
    node_dir: str | None = None  # the folder of trial folders on each node (default: the node's temp folder)
    reconnect_timeout: Duration = DEFAULT_RECONNECT_TIMEOUT  # how long to wait for a cluster that went away
    code: Literal["shared", "upload"] = "shared"  # working_dir on every node's filesystem, or uploaded through Ray

    @model_validator(mode="after")
    def _ray_fields(self) -> LauncherSpec:
        ray_only = [name for name in ("address", "resources", "labels", "node_dir") if getattr(self, name)]
        if self.name == "local" and self.reconnect_timeout != DEFAULT_RECONNECT_TIMEOUT:
            ray_only.append("reconnect_timeout")
        if self.name == "local" and self.code != "shared":
            ray_only.append("code")
        if self.name == "local" and ray_only:
            raise ValueError(f"{', '.join(ray_only)} only apply to the ray launcher (name: ray)")
        for resource, amount in self.resources.items():
            if amount <= 0 or not math.isfinite(amount):
                raise ValueError(f"resources: {resource} must be a positive number, got {amount}")
        return self


class ExperimentConfig(_Model):
    """One experiment, as written in its config file (paths already resolved)."""

    name: str = Field(min_length=1)
    command: str | list[str]
    working_dir: Path = Path(".")
    search_space: dict[str, Any] | None = None
    search_space_file: Path | None = None
    fixed_params: dict[str, Any] = Field(default_factory=dict)
    objective: Objective = Field(default_factory=Objective)
    tuner: TunerSpec = Field(default_factory=TunerSpec)
    stopper: StopperSpec | None = None
    max_trials: int | None = Field(default=None, ge=1)
    max_duration: Duration | None = None
    on_max_duration: Literal["finish", "kill"] = "kill"
    concurrency: int = Field(default=1, ge=1)
    trial_timeout: Duration | None = None
    retries: int = Field(default=0, ge=0)
    max_failures: int | None = Field(default=5, ge=1)
    rerun_interrupted: bool = True
    resources: Resources = Field(default_factory=Resources)
    gpu: GpuPolicy = Field(default_factory=GpuPolicy)
    cost: CostPolicy = Field(default_factory=CostPolicy)
    env: dict[str, str] = Field(default_factory=dict)
    launcher: LauncherSpec = Field(default_factory=LauncherSpec)
    max_log_mib: float = Field(default=64, gt=0, le=1 << 20, allow_inf_nan=False)  # per log file; the tail is kept
    notify: NotifySpec | None = None

    @model_validator(mode="after")
    def _one_search_space(self) -> ExperimentConfig:
        if (self.search_space is None) == (self.search_space_file is None):
            raise ValueError("give exactly one of search_space (inline) or search_space_file")
        if self.stopper is not None and self.stopper.learn_from == "rung":
            _check_ranks_learnt(self.tuner)
        if isinstance(self.command, list) and not self.command:
            raise ValueError("command must not be empty")
        if isinstance(self.command, str) and not self.command.strip():
            raise ValueError("command must not be empty")
        return self

    @field_validator("command")
    @classmethod
    def _balanced_quotes(cls, command: str | list[str]) -> str | list[str]:
        """A command string the shell cannot split (an unclosed quote) fails every trial; say so now."""
        if isinstance(command, str):
            try:
                shlex.split(command)
            except ValueError as e:
                raise ValueError(
                    f"the shell cannot split it: {e} (an unclosed quote or a trailing backslash?)"
                ) from None
        return command

    @field_validator("env")
    @classmethod
    def _environment_names(cls, env: dict[str, str]) -> dict[str, str]:
        """Names a process environment can hold: not empty, no '='."""
        for name in env:
            if not name or "=" in name:
                raise ValueError(f"environment variable names must be non-empty and hold no '='; got {name!r}")
        return env

    def cpus_per_trial(self) -> int:
        """A trial's CPU threads (its OMP_NUM_THREADS): as configured, else an equal share of the cores."""
        return self.resources.cpus or max(1, (os.cpu_count() or 1) // self.concurrency)

    def argv(self) -> list[str]:
        """The trial command as an argument vector (a string goes through `sh -c` only if it uses shell syntax)."""
        if isinstance(self.command, list):
            return list(self.command)
        if _uses_shell_syntax(self.command):
            return ["/bin/sh", "-c", self.command]
        return shlex.split(self.command)


def config_from_store(data: dict[str, Any]) -> ExperimentConfig:
    """An experiment's config as the store keeps it: paths resolved, the search space inline."""
    return ExperimentConfig.model_validate({**data, "search_space_file": None})


def load_config(
    path: str | os.PathLike[str], environment: Mapping[str, str] | None = None
) -> tuple[ExperimentConfig, list[str]]:
    """Read, translate (NNI v1 and v2 files), validate and resolve a config file; returns it and any warnings.
    `environment` is what its trials will run with (None: this process's), where its command is looked up."""
    path = Path(path)
    raw = _read_mapping(path)
    warnings: list[str] = []
    if _looks_like_nni(raw):
        from .nni import translate

        raw, warnings = translate(raw, str(path))
    raw.setdefault("name", path.stem)
    config = build_config(raw, path.parent, str(path), environment)
    assert config.search_space is not None
    return config, [*warnings, *search_space.constant_warnings(config.search_space, f"{path}: search space")]


def build_config(
    raw: dict[str, Any], base_dir: Path, source: str, environment: Mapping[str, str] | None = None
) -> ExperimentConfig:
    """Validate a config mapping whose relative paths are relative to `base_dir`, then check it is runnable
    in `environment` (None: this process's)."""
    try:
        config = ExperimentConfig.model_validate(raw)
    except ValidationError as e:
        raise UserError(_format_validation_error(source, e)) from None
    base_dir = base_dir.resolve()
    config.working_dir = (base_dir / config.working_dir).resolve()
    if not config.working_dir.is_dir():
        raise UserError(f"{source}: field 'working_dir': folder {config.working_dir} does not exist")
    if config.search_space_file is not None:
        space_path = (base_dir / config.search_space_file).resolve()
        config.search_space = _read_search_space(space_path, source)
        config.search_space_file = space_path
    search_space.validate(config.search_space, f"{source}: search space")
    for field, spec in (("tuner", config.tuner), ("stopper", config.stopper)):
        if spec is not None and spec.code_directory is not None:
            spec.code_directory = (base_dir / spec.code_directory).resolve()
            if not spec.code_directory.is_dir():
                raise UserError(
                    f"{source}: field '{field}.code_directory': folder {spec.code_directory} does not exist"
                )
    _check_fixed_params(config, source)
    if config.stopper is not None:
        from ..stoppers import check_stopper

        try:
            check_stopper(
                config.stopper.name,
                config.stopper.args,
                config.objective.mode,
                class_name=config.stopper.class_name,
                code_directory=config.stopper.code_directory,
            )
        except UserError as e:
            raise UserError(f"{source}: field 'stopper': {e}") from None
    _check_command(config, source, os.environ if environment is None else environment)
    return config


def resolve_launcher(config: ExperimentConfig, source: str, ray_address: str | None) -> None:
    """Settle where the experiment's trials run: its own launcher, else the host's Ray cluster (`ray_address`), else
    this machine; a Ray cluster must answer at its address now (UserError naming the address and what to check)."""
    spec = config.launcher
    if spec.name is None:
        spec.name = "ray" if ray_address or spec.address else "local"
    if spec.name != "ray":
        return
    spec.address = spec.address or ray_address
    if not spec.address:
        raise UserError(
            f"{source}: field 'launcher.address': the ray launcher needs the cluster's address (HOST:PORT, as "
            "`ray start --head` prints it), or a daemon started with `automl daemon start --ray HOST:PORT`"
        )
    from ..launchers.ray_address import address_problem

    problem = address_problem(spec.address)
    if problem:
        raise UserError(f"{source}: field 'launcher.address': {problem}")


def _check_ranks_learnt(tuner: TunerSpec) -> None:
    """A ValueError unless the tuner learns from the order of results alone, as `stopper.learn_from: rung` needs."""
    from ..tuners import order_only_tuners

    if tuner.class_name is None and tuner.name in order_only_tuners():
        return
    raise ValueError(
        f"stopper.learn_from: rung tells the tuner ranks, not values, so it needs a tuner that learns from the order "
        f"of results alone ({', '.join(order_only_tuners())}); {tuner.class_name or tuner.name} learns from the "
        "values: use learn_from: best or last with it"
    )


def _read_mapping(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{path}: config file not found") from None
    except (IsADirectoryError, PermissionError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: cannot read config file ({e})") from None
    data = _parse(text, path, "config")
    if not isinstance(data, dict):
        raise UserError(f"{path}: the config must be a mapping of fields, got {type(data).__name__}")
    _refuse_nul(data, str(path))
    return data


def _read_search_space(path: Path, source: str) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise UserError(f"{source}: field 'search_space_file': cannot read {path} ({e.strerror})") from None
    return _parse(text, path, "search space")


def _parse(text: str, path: Path, what: str) -> Any:
    """A JSON or YAML document, refused when it nests too deeply, refers to itself or expands beyond bounds."""
    kind = "JSON" if path.suffix == ".json" else "YAML"
    try:
        data = json.loads(text) if kind == "JSON" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as e:
        raise UserError(f"{path}: {what} is not valid {kind}: {e}") from None
    except RecursionError:
        data = None
        problem: str | None = f"nests deeper than {MAX_CONFIG_DEPTH} levels"
    else:
        problem = _shape_problem(data)
    if problem is not None:
        raise UserError(f"{path}: {what} {problem}; write it out plainly") from None
    return data


def _shape_problem(data: Any) -> str | None:
    """Why `data` cannot be a config: it contains itself, nests too deeply, or holds too many values once the
    YAML aliases are expanded (shared values are counted once per use, as every reader after us sees them)."""
    try:
        _ShapeWalk().measure(data)
    except _SelfReference:
        return "contains itself (a YAML alias inside its own anchor)"
    except _TooDeep:
        return f"nests deeper than {MAX_CONFIG_DEPTH} levels"
    except _TooMany:
        return f"holds more than {MAX_CONFIG_NODES:,} values once its aliases are expanded"
    return None


_Shape = tuple[int, int]  # a value's count of values and its depth, with aliases expanded


class _ShapeWalk:
    """A depth-first walk on an explicit stack (no recursion to exhaust) that sizes each container once, however
    many aliases share it, and raises as soon as the data is self-referential, too deep or too large."""

    def __init__(self) -> None:
        self.done: dict[int, _Shape] = {}  # container id -> its shape
        self.stack: list[tuple[Any, Iterator[Any], list[int]]] = []  # open containers: children left, shape so far
        self.active: set[int] = set()  # ids of the open containers

    def measure(self, data: Any) -> None:
        """Walk all of `data`, adding each measured value to the container that holds it."""
        self._enter(data)
        while self.stack:
            shape = self._step()
            if shape is not None and self.stack:
                self._add_to_parent(shape)

    def _step(self) -> _Shape | None:
        """Enter the innermost open container's next child, or close the container when it has none left; the
        shape of the value now known (None: a container was opened)."""
        container, children, acc = self.stack[-1]
        child = next(children, _END)
        if child is not _END:
            return self._enter(child)
        self.stack.pop()
        self.active.discard(id(container))
        shape = self.done[id(container)] = (acc[0], acc[1] + 1)
        return shape

    def _enter(self, value: Any) -> _Shape | None:
        """A scalar's or an already measured container's shape; otherwise open the container (None)."""
        if not isinstance(value, (dict, list)):
            return (1, 0)
        if id(value) in self.done:
            return self.done[id(value)]
        if id(value) in self.active:
            raise _SelfReference
        if len(self.stack) >= MAX_CONFIG_DEPTH:
            raise _TooDeep
        self.active.add(id(value))
        self.stack.append((value, iter(value.values() if isinstance(value, dict) else value), [1, 0]))
        return None

    def _add_to_parent(self, shape: _Shape) -> None:
        """Count a measured child into the innermost open container."""
        parent = self.stack[-1][2]
        parent[0] += shape[0]
        parent[1] = max(parent[1], shape[1])
        if parent[0] > MAX_CONFIG_NODES:
            raise _TooMany


class _SelfReference(Exception):
    pass


class _TooDeep(Exception):
    pass


class _TooMany(Exception):
    pass


_END = object()


def _refuse_nul(data: Any, source: str, field: str = "") -> None:
    """No path, command, name or environment value can hold a NUL byte; name the field that does."""
    items = data.items() if isinstance(data, dict) else enumerate(data) if isinstance(data, list) else ()
    for key, value in items:
        where = f"{field}.{key}" if field else str(key)
        if isinstance(key, str) and "\0" in key:
            raise UserError(f"{source}: field {where!r}: a name holds a NUL byte")
        if isinstance(value, str) and "\0" in value:
            raise UserError(
                f"{source}: field {where!r}: holds a NUL byte, which no path, command, name or "
                "environment value can hold"
            )
        _refuse_nul(value, source, where)


def _looks_like_nni(raw: dict[str, Any]) -> bool:
    return any(
        key in raw
        for key in (
            "trialCommand",
            "trialConcurrency",
            "searchSpaceFile",
            "searchSpace",
            "trainingService",
            "experimentName",
            "trainingServicePlatform",
        )
    )


def _check_fixed_params(config: ExperimentConfig, source: str) -> None:
    """A fixed parameter must not also be searched: the trial would get one of the two values silently."""
    both = sorted(set(config.fixed_params) & set(config.search_space or {}))
    if both:
        raise UserError(
            f"{source}: field 'fixed_params': {', '.join(both)} also in the search space; "
            "a parameter is either fixed or searched"
        )


def _check_command(config: ExperimentConfig, source: str, environment: Mapping[str, str]) -> None:
    """The program exists (on the PATH its trials will have) and so does a Python script it is given."""
    argv = config.argv()
    if argv[0] == "/bin/sh":
        return
    program = argv[0]
    if os.sep in program:
        if not (config.working_dir / program).exists():
            raise UserError(f"{source}: field 'command': program {program} not found in {config.working_dir}")
    elif shutil.which(program, path={**environment, **config.env}.get("PATH", os.defpath)) is None:
        raise UserError(f"{source}: field 'command': program {program!r} not found on PATH")
    scripts = [a for a in argv[1:] if a.endswith(".py") and not a.startswith("-")]
    if scripts and Path(program).name.startswith("python"):
        script = config.working_dir / scripts[0]
        if not script.is_file():
            raise UserError(f"{source}: field 'command': script {script} does not exist")


def _uses_shell_syntax(command: str) -> bool:
    try:
        lexer = shlex.shlex(command, posix=True, punctuation_chars=True)
        tokens = list(lexer)
    except ValueError:
        return True
    return any(t and all(c in "();<>|&" for c in t) for t in tokens) or any(c in command for c in "$`*?~")


def _format_validation_error(source: str, error: ValidationError) -> str:
    lines = [f"{source}: invalid config"]
    for item in error.errors():
        field = ".".join(str(p) for p in item["loc"]) or "(top level)"
        if item["type"] == "extra_forbidden":
            parent = item["loc"][:-1]
            allowed = _allowed_fields(parent)
            close = close_match(str(item["loc"][-1]), allowed)
            hint = f"did you mean '{close}'? " if close else ""
            lines.append(f"  field '{field}': unknown field; {hint}allowed here: {', '.join(allowed)}")
        elif item["type"] == "missing":
            lines.append(f"  field '{field}': required")
        else:
            message = item["msg"].removeprefix("Value error, ")
            got = item.get("input")
            said = isinstance(got, dict) or repr(got) in message
            shown = "" if said else f" (got {_shortened(repr(got))})"
            lines.append(f"  field '{field}': {message}{shown}")
    return "\n".join(lines)


def _shortened(text: str, limit: int = 200) -> str:
    """A value as shown in a message: at most `limit` characters."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text):,} characters)"


def _allowed_fields(loc: tuple[Any, ...]) -> list[str]:
    model: type[BaseModel] = ExperimentConfig
    for part in loc:
        annotation = model.model_fields[str(part)].annotation
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return list(model.model_fields)
