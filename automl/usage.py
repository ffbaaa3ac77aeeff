"""What a trial used and what it cost: GPU-seconds, energy, CPU-seconds, peak memory, money.

The one definition of the usage figures: the store's columns, the JSON views, the CLI and the dashboard all take
their names from `USAGE_FIELDS`, the fields of `TrialUsage`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .config.model import CostPolicy

JOULES_PER_KWH = 3.6e6


@dataclass
class TrialUsage:
    """One trial's resource use so far. GPU-seconds count the share of each GPU it was given for as long as it
    ran; energy is its part of its GPUs' energy counters; memory figures are peaks."""

    gpu_seconds: float = 0.0
    energy_j: float = 0.0
    cpu_seconds: float = 0.0
    peak_rss_mib: float = 0.0
    gpu_memory_mib: float = 0.0
    cost: float = 0.0

    def priced(self, prices: CostPolicy) -> TrialUsage:
        """The same usage with its cost: kWh x price per kWh + GPU-hours x price per GPU-hour."""
        self.cost = (
            self.energy_j / JOULES_PER_KWH * prices.price_per_kwh + self.gpu_seconds / 3600 * prices.price_per_gpu_hour
        )
        return self

    def as_dict(self) -> dict[str, float]:
        """The figures by name, rounded for storage and display."""
        return {k: round(v, 6) for k, v in asdict(self).items()}


USAGE_FIELDS = tuple(f.name for f in fields(TrialUsage))


def totals(trials: list[Any], currency: str) -> dict[str, Any]:
    """An experiment's cost: the sums over its trials (objects with the usage fields, None counting as 0)."""
    sums = {
        name: round(sum(getattr(t, name) or 0.0 for t in trials), 6)
        for name in ("gpu_seconds", "energy_j", "cpu_seconds", "cost")
    }
    return {
        "gpu_hours": round(sums["gpu_seconds"] / 3600, 6),
        "kwh": round(sums["energy_j"] / JOULES_PER_KWH, 9),
        **sums,
        "currency": currency,
    }
