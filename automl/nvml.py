"""GPU probes: the one module that talks to NVML (package nvidia-ml-py), and its simulated twin.

Everything else sees `GpuSnapshot`s. `AUTOML_SIM_GPUS` names a fleet file
(YAML or JSON) to simulate GPUs shared with other users' processes, so tests
and benchmarks run the same code without a GPU:

    {"gpus": [{"memory_mib": 24576,
               "foreign": [{"memory_mib": 20000, "utilization": 95, "start_s": 0, "end_s": null}]}]}

GPUs are listed in index order; each foreign process runs from `start_s` to
`end_s` seconds after the probe opened (null: never ends).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import yaml

from .errors import UserError

SIM_ENV = "AUTOML_SIM_GPUS"
_SIM_PID_BASE = 4_000_000  # above Linux's pid_max, so a simulated pid never names a real process


@dataclass(frozen=True)
class GpuProcess:
    """A process using a GPU and its memory."""

    pid: int
    memory_mib: float


@dataclass(frozen=True)
class GpuSnapshot:
    """One GPU at one moment: load, memory, power, the energy counter, and the processes on it."""

    index: int
    name: str
    utilization: float
    memory_used_mib: float
    memory_total_mib: float
    power_w: float | None
    energy_j: float | None
    processes: tuple[GpuProcess, ...]


class Probe(Protocol):
    """Where GPU snapshots come from."""

    def count(self) -> int:
        """How many GPUs there are."""
        ...

    def sample(self) -> list[GpuSnapshot]:
        """Every GPU, now."""
        ...


def open_probe() -> Probe | None:
    """The simulated fleet when AUTOML_SIM_GPUS is set, else real NVML; None without a driver or GPUs."""
    fleet = os.environ.get(SIM_ENV)
    if fleet:
        return SimulatedProbe(Path(fleet))
    try:
        return NvmlProbe()
    except Exception:
        return None


def gpu_count() -> int:
    """How many GPUs this machine (or the simulated fleet) has."""
    probe = open_probe()
    return 0 if probe is None else probe.count()


class NvmlProbe:
    """Real GPUs through NVML."""

    def __init__(self) -> None:
        import pynvml

        pynvml.nvmlInit()
        self._nvml = pynvml
        self._handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]

    def count(self) -> int:
        """How many GPUs NVML sees."""
        return len(self._handles)

    def sample(self) -> list[GpuSnapshot]:
        """Every GPU now; a reading the driver does not offer is None (or 0 for utilization)."""
        return [self._snapshot(i, h) for i, h in enumerate(self._handles)]

    def _snapshot(self, index: int, handle: Any) -> GpuSnapshot:
        nvml = self._nvml
        memory = nvml.nvmlDeviceGetMemoryInfo(handle)
        utilization = self._read(lambda: nvml.nvmlDeviceGetUtilizationRates(handle).gpu)
        power = self._read(lambda: nvml.nvmlDeviceGetPowerUsage(handle) / 1000)
        energy = self._read(lambda: nvml.nvmlDeviceGetTotalEnergyConsumption(handle) / 1000)
        processes = self._read(lambda: nvml.nvmlDeviceGetComputeRunningProcesses(handle)) or []
        name = nvml.nvmlDeviceGetName(handle)
        return GpuSnapshot(index, name.decode() if isinstance(name, bytes) else name, float(utilization or 0),
                           memory.used / 2**20, memory.total / 2**20, power, energy,
                           tuple(GpuProcess(p.pid, (p.usedGpuMemory or 0) / 2**20) for p in processes))

    def _read(self, reading: Any) -> Any:
        try:
            return reading()
        except self._nvml.NVMLError:
            return None


class SimulatedProbe:
    """A fleet of GPUs from a fleet file, with other users' processes coming and going on a clock."""

    def __init__(self, path: Path, clock: Any = time.monotonic):
        self.gpus = _read_fleet(path)
        self._clock = clock
        self._opened = clock()

    def count(self) -> int:
        """How many GPUs the fleet has."""
        return len(self.gpus)

    def sample(self) -> list[GpuSnapshot]:
        """Every simulated GPU now: the foreign processes active at this second, their memory and load."""
        now = self._clock() - self._opened
        snapshots = []
        for index, gpu in enumerate(self.gpus):
            active = [(n, p) for n, p in enumerate(gpu["foreign"])
                      if p["start_s"] <= now and (p["end_s"] is None or now < p["end_s"])]
            utilization = min(100.0, sum(p["utilization"] for _, p in active))
            used = sum(p["memory_mib"] for _, p in active)
            processes = tuple(GpuProcess(_SIM_PID_BASE + 1000 * index + n, p["memory_mib"]) for n, p in active)
            power = 60 + 2.4 * utilization
            snapshots.append(GpuSnapshot(index, "Simulated GPU", utilization, used, gpu["memory_mib"], power,
                                         power * now, processes))
        return snapshots


def _read_fleet(path: Path) -> list[dict[str, Any]]:
    where = f"{SIM_ENV}={path}"
    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (OSError, ValueError, yaml.YAMLError) as e:
        raise UserError(f"{where}: cannot read the simulated GPU fleet ({e})") from None
    gpus = data.get("gpus") if isinstance(data, dict) else None
    if not isinstance(gpus, list):
        raise UserError(f"{where}: expected {{\"gpus\": [{{\"memory_mib\": ..., \"foreign\": [...]}}, ...]}}")
    return [_fleet_gpu(gpu, f"{where}: gpus[{i}]") for i, gpu in enumerate(gpus)]


def _fleet_gpu(gpu: Any, where: str) -> dict[str, Any]:
    if not isinstance(gpu, dict) or not _positive(gpu.get("memory_mib")):
        raise UserError(f"{where}: needs memory_mib > 0")
    foreign = gpu.get("foreign") or []
    if not isinstance(foreign, list):
        raise UserError(f"{where}.foreign: must be a list of processes")
    processes = []
    for n, p in enumerate(foreign):
        at = f"{where}.foreign[{n}]"
        if not isinstance(p, dict) or not _positive(p.get("memory_mib"), zero=True):
            raise UserError(f"{at}: needs memory_mib >= 0")
        start, end = p.get("start_s", 0), p.get("end_s")
        if not _positive(start, zero=True) or (end is not None and (not _positive(end) or end <= start)):
            raise UserError(f"{at}: needs 0 <= start_s < end_s (end_s null: never ends)")
        utilization = p.get("utilization", 0)
        if not _positive(utilization, zero=True) or utilization > 100:
            raise UserError(f"{at}: utilization must be 0..100")
        processes.append({"memory_mib": p["memory_mib"], "utilization": utilization, "start_s": start, "end_s": end})
    return {"memory_mib": gpu["memory_mib"], "foreign": processes}


def _positive(value: Any, zero: bool = False) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return value >= 0 if zero else value > 0
