"""GPU placement on a shared fleet: automl's scheduler against NNI's rule and blind one-trial-per-GPU placement.

A simulated fleet of 8 GPUs (4 x 24 GiB, 4 x 48 GiB) whose other users come and go (light, medium and
heavy jobs), and 300 trials of three experiments with different memory needs, on a virtual clock. automl's
placement is the real `GpuPool` (the daemon's code) over the simulated NVML, sampled every second as the
daemon does; the memory estimate is learned from the trials' peaks, never given. The two baselines place
with the same trials and fleet:
- NNI's rule (useActiveGpu false): skip any GPU with another process, one trial per GPU;
- blind: one trial per GPU, nothing else looked at.

Measured per policy: memory over-commits caused by a placement (our trials' needs plus everyone's memory
above the GPU's total), placements on a GPU over the thresholds (other users' load over 30% or too little
free memory for the trial), the share of GPU time a usable GPU sat idle while trials waited, time to
finish all trials, and the time of one placement decision.

Run: .venv/bin/python bench/gpu_scheduling.py [--seeds 5] [--trials 300]
"""

from __future__ import annotations

import argparse
import heapq
import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from automl.config.model import GpuPolicy
from automl.gpu.pool import GpuPool
from automl.gpu.probe import SimulatedProbe

MEMORY = [24576] * 4 + [49152] * 4
EXPERIMENTS = [("small", 3000), ("medium", 8000), ("large", 14000)]  # base memory need per trial, MiB
MAX_UTILIZATION = 30.0
MIN_FREE_MIB = 1024.0
TICK = 1.0  # the daemon samples the GPUs every second
FOREIGN_PIDS = 4_000_000  # the simulated fleet numbers other users' processes from here
FOREIGN_KINDS = [(2000, 15), (6000, 45), (18000, 95)]  # other users' jobs: (memory MiB, utilization %)


class Clock:
    """Virtual time, moved by the simulation."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Trial:
    experiment: int
    need_mib: float
    duration: float
    utilization: float
    pid: int
    gpus: list[int] = field(default_factory=list)
    placement: Any = None


def fleet(seed: int, horizon: float) -> dict[str, Any]:
    """8 GPUs, each alternating between free spells and another user's job, over the horizon."""
    rng = random.Random(seed)
    gpus = []
    for memory in MEMORY:
        foreign, t = [], rng.uniform(0, 1800)
        while t < horizon:
            length = rng.expovariate(1 / 2400)
            mib, utilization = rng.choice(FOREIGN_KINDS)
            foreign.append(
                {"memory_mib": mib, "utilization": utilization, "start_s": round(t, 1), "end_s": round(t + length, 1)}
            )
            t += length + rng.expovariate(1 / 2400)
        gpus.append({"memory_mib": memory, "foreign": foreign})
    return {"gpus": gpus}


def trials(seed: int, count: int) -> list[Trial]:
    """`count` trials, a third per experiment, each needing its experiment's memory within 5%."""
    rng = random.Random(seed + 1000)
    made = []
    for n in range(count):
        experiment = n % len(EXPERIMENTS)
        base = EXPERIMENTS[experiment][1]
        made.append(
            Trial(
                experiment,
                round(base * rng.uniform(0.95, 1.05)),
                rng.uniform(300, 1800),
                rng.choice([60, 80, 95]),
                100_000 + n,
            )
        )
    return made


class Truth:
    """What is really on each GPU (the simulated fleet plus our trials' true needs), for judging placements."""

    def __init__(self, probe: SimulatedProbe):
        self.probe = probe
        self.gpus: list[tuple[float, float, float, int]] = []

    def look(self) -> None:
        """Read every GPU now: (memory used, total, other users' utilization, other users' processes)."""
        self.gpus = []
        for snap in self.probe.sample():
            foreign = [p for p in snap.processes if p.pid >= FOREIGN_PIDS]
            self.gpus.append(
                (snap.memory_used_mib, snap.memory_total_mib, sum(p.utilization or 0 for p in foreign), len(foreign))
            )


class Policy:
    """Where a trial goes: a function from (trial, now) to GPUs or None; plus what it does when trials end."""

    name = ""

    def place(self, trial: Trial) -> list[int] | None:
        raise NotImplementedError

    def release(self, trial: Trial) -> None:
        raise NotImplementedError


class Ours(Policy):
    """automl's GpuPool, one GpuSlots per experiment, exactly as the daemon uses them."""

    def __init__(self, probe: SimulatedProbe, clock: Clock, per_gpu: int):
        self.name = f"automl (max_trials_per_gpu {per_gpu})"
        self.pool = GpuPool(probe, clock=clock)
        self.running = [0] * len(EXPERIMENTS)
        self.slots = []
        for n in range(len(EXPERIMENTS)):
            slots = self.pool.slots(
                f"exp{n}",
                GpuPolicy(
                    use_active_gpu=True,
                    max_utilization=MAX_UTILIZATION,
                    min_free_memory_mib=MIN_FREE_MIB,
                    max_trials_per_gpu=per_gpu,
                ),
                1,
            )
            slots.bind(running=lambda n=n: self.running[n], wake=lambda: None)
            self.slots.append(slots)
        self.decisions: list[float] = []

    def place(self, trial: Trial) -> list[int] | None:
        slots = self.slots[trial.experiment]
        start = time.perf_counter()
        placement = slots.acquire()
        self.decisions.append(time.perf_counter() - start)
        if placement is None:
            return None
        slots.started(placement, (f"exp{trial.experiment}", trial.pid), trial.pid)
        # the simulated trial loads its GPUs with its true need, as a real process would
        self.pool.probe.place(trial.pid, placement.gpus, trial.need_mib, trial.utilization)  # type: ignore[union-attr]
        trial.placement = placement
        self.running[trial.experiment] += 1
        return placement.gpus

    def release(self, trial: Trial) -> None:
        self.slots[trial.experiment].release(trial.placement)
        self.running[trial.experiment] -= 1

    def tick(self) -> None:
        self.pool.sample()


class Baseline(Policy):
    """NNI's rule or blind placement: one trial per GPU, the first eligible GPU in index order."""

    def __init__(self, probe: SimulatedProbe, truth: Truth, skip_busy: bool):
        self.name = "NNI's rule (skip GPUs with a process)" if skip_busy else "blind, one trial per GPU"
        self.probe, self.truth, self.skip_busy = probe, truth, skip_busy
        self.taken: set[int] = set()

    def place(self, trial: Trial) -> list[int] | None:
        for index in range(len(MEMORY)):
            if index in self.taken or (self.skip_busy and self.truth.gpus[index][3]):
                continue
            self.taken.add(index)
            self.probe.place(trial.pid, [index], trial.need_mib, trial.utilization)
            return [index]
        return None

    def release(self, trial: Trial) -> None:
        self.taken.discard(trial.gpus[0])
        self.probe.remove(trial.pid)

    def tick(self) -> None:
        """Baselines look at the GPUs when they place, nothing to do between."""


def simulate(seed: int, count: int, make: Callable[[SimulatedProbe, Clock, Truth], Policy]) -> dict[str, Any]:
    clock = Clock()
    probe = SimulatedProbe(fleet=fleet(seed, horizon=200_000), clock=clock)
    truth = Truth(probe)
    policy = make(probe, clock, truth)
    queue = trials(seed, count)
    ending: list[tuple[float, int, Trial]] = []
    overcommits = over_threshold = 0
    idle = waiting_gpu_time = 0.0
    while queue or ending:
        while ending and ending[0][0] <= clock.now:
            _, _, done = heapq.heappop(ending)
            policy.release(done)
        policy.tick()
        truth.look()
        waiting, blocked = [], set()
        for trial in queue:
            gpus = None if trial.experiment in blocked else policy.place(trial)
            if gpus is None:
                waiting.append(trial)
                blocked.update([trial.experiment] if isinstance(policy, Ours) else range(len(EXPERIMENTS)))
                continue
            trial.gpus = gpus
            for index in gpus:
                used, total, foreign_load, _ = truth.gpus[index]
                overcommits += used + trial.need_mib > total
                over_threshold += foreign_load > MAX_UTILIZATION or total - used < max(trial.need_mib, MIN_FREE_MIB)
            heapq.heappush(ending, (clock.now + trial.duration, trial.pid, trial))
            truth.look()
        queue = waiting
        if queue:
            smallest = min(t.need_mib for t in queue)
            ours = {i for _, _, t in ending for i in t.gpus}
            usable_idle = 0
            for index in range(len(MEMORY)):
                used, total, foreign_load, _ = truth.gpus[index]
                usable_idle += (
                    index not in ours
                    and foreign_load <= MAX_UTILIZATION
                    and total - used >= max(smallest, MIN_FREE_MIB)
                )
            idle += usable_idle * TICK
            waiting_gpu_time += len(MEMORY) * TICK
        clock.now += TICK
    result = {
        "policy": policy.name,
        "overcommits": overcommits,
        "over_threshold": over_threshold,
        "idle_while_waiting": idle / waiting_gpu_time if waiting_gpu_time else 0.0,
        "makespan_h": clock.now / 3600,
    }
    if isinstance(policy, Ours):
        result["decisions"] = policy.decisions
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--trials", type=int, default=300)
    args = parser.parse_args()
    policies: list[Callable[[SimulatedProbe, Clock, Truth], Policy]] = [
        lambda probe, clock, truth: Ours(probe, clock, 1),
        lambda probe, clock, truth: Ours(probe, clock, 2),
        lambda probe, clock, truth: Baseline(probe, truth, skip_busy=True),
        lambda probe, clock, truth: Baseline(probe, truth, skip_busy=False),
    ]
    print(f"{args.trials} trials on 8 simulated GPUs, other users coming and going; {args.seeds} seeds (mean)\n")
    print(
        "| placement | memory over-commits | placements over the thresholds | usable GPU idle while trials "
        "wait | all trials done after |"
    )
    print("| --- | --- | --- | --- | --- |")
    decisions: list[float] = []
    for make in policies:
        runs = [simulate(seed, args.trials, make) for seed in range(args.seeds)]
        decisions += [d for r in runs for d in r.get("decisions", [])]
        print(
            f"| {runs[0]['policy']} | {statistics.mean(r['overcommits'] for r in runs):.1f} "
            f"| {statistics.mean(r['over_threshold'] for r in runs):.1f} "
            f"| {100 * statistics.mean(r['idle_while_waiting'] for r in runs):.2f}% "
            f"| {statistics.mean(r['makespan_h'] for r in runs):.1f} h |"
        )
    decisions.sort()
    p99 = decisions[int(0.99 * len(decisions))]
    print(
        f"\nautoml placement decision (GpuSlots.acquire, n={len(decisions)}): median "
        f"{1e6 * statistics.median(decisions):.0f} us, p99 {1e6 * p99:.0f} us, max {1e6 * decisions[-1]:.0f} us"
    )


if __name__ == "__main__":
    main()
