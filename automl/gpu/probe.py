"""GPU probes: the one module that talks to NVML (package nvidia-ml-py), and its simulated twin.

Everything else sees `GpuSnapshot`s. `AUTOML_SIM_GPUS` names a fleet file
(YAML or JSON) to simulate GPUs shared with other users' processes, so tests
and benchmarks run the same code without a GPU:

    {"gpus": [{"memory_mib": 24576,
               "foreign": [{"memory_mib": 20000, "utilization": 95, "start_s": 0, "end_s": null}]}]}

GPUs are listed in index order; each foreign process runs from `start_s` to
`end_s` seconds after the probe opened (null: never ends). Our own trials
load a simulated GPU too, with the memory and utilization their config's
`gpu.simulated_load` gives, from the moment they start until they end.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import yaml

from ..errors import UserError

SIM_ENV = "AUTOML_SIM_GPUS"
_SIM_PID_BASE = 4_000_000  # above Linux's pid_max, so a simulated pid never names a real process


@dataclass(frozen=True)
class GpuProcess:
    """A process using a GPU: its memory, and its share of the GPU's load when the driver reports it."""

    pid: int
    memory_mib: float
    utilization: float | None = None


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

    def place(self, pid: int, gpus: list[int], memory_mib: float, utilization: float) -> None:
        """A trial of ours started on `gpus` (only a simulated fleet needs telling)."""
        ...

    def remove(self, pid: int) -> None:
        """A trial of ours ended."""
        ...


def gpu_source() -> str:
    """Which GPUs `open_probe` reads here, the same on every process that reads the same ones: this machine's boot
    id with the simulated fleet's file, or with NVML's (a daemon whose machine is also a Ray node lists its GPUs
    once)."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        boot = os.uname().nodename
    fleet = os.environ.get(SIM_ENV)
    return f"{boot}:{Path(fleet).resolve() if fleet else 'nvml'}"


def open_probe() -> Probe | None:
    """The simulated fleet when AUTOML_SIM_GPUS is set, else real NVML; None without a driver or GPUs."""
    fleet = os.environ.get(SIM_ENV)
    if fleet:
        return SimulatedProbe(Path(fleet))
    try:
        return NvmlProbe()
    except Exception:  # noqa: BLE001 - no library, no driver or no GPU: each means no GPU to use
        return None


class NvmlProbe:
    """Real GPUs through NVML."""

    def __init__(self) -> None:
        import pynvml

        pynvml.nvmlInit()
        self._nvml = pynvml
        self._handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]
        self._seen = [0] * len(self._handles)  # per GPU: the newest per-process utilization sample read (µs)

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
        memory_by_pid: dict[int, float] = {}
        for listing in (nvml.nvmlDeviceGetComputeRunningProcesses, nvml.nvmlDeviceGetGraphicsRunningProcesses):
            for p in self._read(lambda listing=listing: listing(handle)) or []:
                memory_by_pid[p.pid] = memory_by_pid.get(p.pid, 0.0) + (p.usedGpuMemory or 0) / 2**20
        shares = self._process_utilization(index, handle)
        name = nvml.nvmlDeviceGetName(handle)
        return GpuSnapshot(
            index,
            name.decode() if isinstance(name, bytes) else name,
            float(utilization or 0),
            memory.used / 2**20,
            memory.total / 2**20,
            power,
            energy,
            tuple(
                GpuProcess(pid, mib, shares.get(pid, 0.0) if shares is not None else None)
                for pid, mib in sorted(memory_by_pid.items())
            ),
        )

    def place(self, pid: int, gpus: list[int], memory_mib: float, utilization: float) -> None:
        """Nothing to do: a real GPU sees the trial's process by itself."""

    def remove(self, pid: int) -> None:
        """Nothing to do: a real GPU sees the trial's process end by itself."""

    def _process_utilization(self, index: int, handle: Any) -> dict[int, float] | None:
        """Each process's mean SM utilization since the last sample, or None where the driver does not say."""
        try:
            samples = self._nvml.nvmlDeviceGetProcessUtilization(handle, self._seen[index])
        except self._nvml.NVMLError_NotFound:
            return {}  # no process used the GPU since the last sample
        except self._nvml.NVMLError:
            return None
        by_pid: dict[int, list[float]] = {}
        for sample in samples:
            by_pid.setdefault(sample.pid, []).append(float(sample.smUtil))
            self._seen[index] = max(self._seen[index], sample.timeStamp)
        return {pid: sum(values) / len(values) for pid, values in by_pid.items()}

    def _read(self, reading: Any) -> Any:
        try:
            return reading()
        except self._nvml.NVMLError:
            return None


class SimulatedProbe:
    """A fleet of GPUs from a fleet file, with other users' processes coming and going on a clock."""

    def __init__(self, path: Path | None = None, clock: Any = time.monotonic, fleet: Any = None):
        self.gpus = _read_fleet(path) if path is not None else _fleet_gpus(fleet, "simulated fleet")
        self._clock = clock
        self._opened = clock()
        self._trials: dict[int, tuple[list[int], float, float]] = {}  # pid -> (gpus, memory_mib, utilization)
        self._energy = [0.0] * len(self.gpus)
        self._last = 0.0

    def count(self) -> int:
        """How many GPUs the fleet has."""
        return len(self.gpus)

    def place(self, pid: int, gpus: list[int], memory_mib: float, utilization: float) -> None:
        """Our trial `pid` loads `gpus` with this memory and utilization until `remove`."""
        self._trials[pid] = (list(gpus), memory_mib, utilization)

    def remove(self, pid: int) -> None:
        """Our trial `pid` no longer loads its GPUs."""
        self._trials.pop(pid, None)

    def sample(self) -> list[GpuSnapshot]:
        """Every simulated GPU now: the foreign processes active at this second and our trials, their memory
        and load; the energy counter integrates power since the last sample."""
        now = self._clock() - self._opened
        elapsed, self._last = max(0.0, now - self._last), now
        snapshots = []
        for index, gpu in enumerate(self.gpus):
            processes = [
                GpuProcess(_SIM_PID_BASE + 1000 * index + n, p["memory_mib"], p["utilization"])
                for n, p in enumerate(gpu["foreign"])
                if p["start_s"] <= now and (p["end_s"] is None or now < p["end_s"])
            ]
            processes += [
                GpuProcess(pid, memory, utilization)
                for pid, (gpus, memory, utilization) in self._trials.items()
                if index in gpus
            ]
            utilization = min(100.0, sum(p.utilization or 0 for p in processes))
            power = 60 + 2.4 * utilization
            self._energy[index] += power * elapsed
            snapshots.append(
                GpuSnapshot(
                    index,
                    "Simulated GPU",
                    utilization,
                    sum(p.memory_mib for p in processes),
                    gpu["memory_mib"],
                    power,
                    self._energy[index],
                    tuple(processes),
                )
            )
        return snapshots


def _read_fleet(path: Path) -> list[dict[str, Any]]:
    where = f"{SIM_ENV}={path}"
    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (OSError, ValueError, yaml.YAMLError) as e:
        raise UserError(f"{where}: cannot read the simulated GPU fleet ({e})") from None
    return _fleet_gpus(data, where)


def _fleet_gpus(data: Any, where: str) -> list[dict[str, Any]]:
    gpus = data.get("gpus") if isinstance(data, dict) else None
    if not isinstance(gpus, list):
        raise UserError(f'{where}: expected {{"gpus": [{{"memory_mib": ..., "foreign": [...]}}, ...]}}')
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
