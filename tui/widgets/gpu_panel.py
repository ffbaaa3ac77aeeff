"""The GPU panel: per GPU its load, memory and power now and lately, and whose processes use it; grouped by node
when some are a cluster node's."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from rich.text import Text
from textual import events
from textual.widgets import Static

from .. import format as fmt
from ..state import GpuState


class GpuPanel(Static):
    """Every GPU in three lines: bars, history sparklines, processes (ours by experiment and trial)."""

    DEFAULT_CSS = "GpuPanel { height: auto; text-wrap: nowrap; text-overflow: ellipsis; }"

    _shown: (
        tuple[
            Mapping[int, GpuState], Mapping[str, str], Mapping[int, int], int | None, Mapping[tuple[str, int], GpuState]
        ]
        | None
    ) = None

    def show(
        self,
        gpus: Mapping[int, GpuState],
        names: Mapping[str, str],
        trial_pids: Mapping[int, int],
        gpu_count: int | None,
        node_gpus: Mapping[tuple[str, int], GpuState] | None = None,
    ) -> None:
        """Draw the panel: this machine's `gpus`, then the cluster nodes' `node_gpus`; `names` maps experiment ids
        to names, `trial_pids` the pids of the open experiment's trials on this machine to trial ids."""
        self._shown = (gpus, names, trial_pids, gpu_count, node_gpus or {})
        self._draw()

    def on_resize(self, event: events.Resize) -> None:
        """Fit the bars and sparklines to the new width."""
        self._draw()

    def _draw(self) -> None:
        if self._shown is not None:
            gpus, names, trial_pids, gpu_count, node_gpus = self._shown
            width = self.content_region.width or self.app.size.width - 4
            self.update(gpu_text(gpus, names, trial_pids, gpu_count, width, node_gpus))


def gpu_text(
    gpus: Mapping[int, GpuState],
    names: Mapping[str, str],
    trial_pids: Mapping[int, int],
    gpu_count: int | None,
    width: int,
    node_gpus: Mapping[tuple[str, int], GpuState] | None = None,
) -> Text:
    """The panel's text for `width` cells: this machine's GPUs, then, under a heading per node, the cluster
    nodes' (this machine's under a heading of its own then)."""
    if not node_gpus:
        if not gpus:
            if gpu_count == 0:
                return Text("No GPUs on this machine: trials run on the CPU.", style="dim")
            return Text("Waiting for the first GPU sample…", style="dim")
        return _gpu_blocks([gpus[i] for i in sorted(gpus)], names, trial_pids, width)
    text = Text(no_wrap=True, overflow="ellipsis")
    local = [gpus[i] for i in sorted(gpus)]
    _heading(text, "this machine", local)
    text.append_text(_gpu_blocks(local, names, trial_pids, width) if local else Text("no GPUs", style="dim"))
    for node, group in _by_node(node_gpus.values()):
        text.append("\n")
        address, name = group[0].node_address, fmt.node_name(node)
        _heading(text, f"node {address} · {name}" if address else f"node {name}", group)
        text.append_text(_gpu_blocks(group, names, {}, width))  # the pids of this machine mean nothing there
    return text


def _by_node(gpus: Iterable[GpuState]) -> list[tuple[str, list[GpuState]]]:
    """The cluster nodes' GPUs grouped by node, nodes and GPUs in order."""
    nodes: dict[str, list[GpuState]] = {}
    for gpu in sorted(gpus, key=lambda gpu: (gpu.node or "", gpu.index)):
        nodes.setdefault(gpu.node or "", []).append(gpu)
    return list(nodes.items())


def _heading(text: Text, title: str, gpus: list[GpuState]) -> None:
    text.append(f"▸ {title}", style="bold")
    text.append(f"  {len(gpus)} GPU{'' if len(gpus) == 1 else 's'}\n", style="bright_black")


def _gpu_blocks(gpus: list[GpuState], names: Mapping[str, str], trial_pids: Mapping[int, int], width: int) -> Text:
    """Three lines per GPU."""
    text = Text(no_wrap=True, overflow="ellipsis")
    for n, gpu in enumerate(gpus):
        if n:
            text.append("\n")
        _gpu_block(text, gpu, names, trial_pids, width)
    return text


def _gpu_block(text: Text, gpu: GpuState, names: Mapping[str, str], trial_pids: Mapping[int, int], width: int) -> None:
    util = gpu.utilization[-1] if gpu.utilization else None
    mem_pct = gpu.memory[-1] if gpu.memory else None
    bar_width = 10 if width >= 76 else 6
    name_width = max(4, width - 2 * bar_width - 41)
    name = gpu.name.removeprefix("NVIDIA ")
    text.append(f"GPU{gpu.index:<2}", style="bold")
    text.append(f"{name[:name_width]:<{name_width}} ", style="bright_black")
    _bar(text, "util", util, bar_width, f"{fmt.number(util, 3) if util is not None else '—':>3}%")
    text.append("  ")
    memory = f"{fmt.mib(gpu.memory_used_mib)}/{fmt.mib(gpu.memory_total_mib)}"
    _bar(text, "mem", mem_pct, bar_width, f"{memory:>11}")
    text.append(f" {'—' if gpu.power_w is None else f'{gpu.power_w:.0f}W':>5}", style="bright_black")
    spark = max(4, (width - 22) // 3)
    text.append("\n     ")
    for label, history, top in (
        ("util", gpu.utilization, 100.0),
        ("mem", gpu.memory, 100.0),
        ("pwr", gpu.power, max(gpu.power, default=0.0) or 1.0),
    ):
        text.append(f"{label} ", style="bright_black")
        cells = fmt.sparkline(list(history), spark, top)
        for char, style in cells:
            text.append(char, style=style)
        text.append(" " * (spark - len(cells) + 1))
    text.append("\n     ")
    _processes(text, gpu, names, trial_pids)


def _bar(text: Text, label: str, percent: float | None, width: int, figure: str) -> None:
    filled, empty = fmt.bar(None if percent is None else percent / 100, width)
    text.append(f"{label} ", style="bright_black")
    text.append(filled, style=fmt.load_style(percent))
    text.append(empty, style="bright_black")
    text.append(f" {figure}")


def _processes(text: Text, gpu: GpuState, names: Mapping[str, str], trial_pids: Mapping[int, int]) -> None:
    ours, others = [], []
    for process in gpu.processes:
        label = _owner(process, names, trial_pids)
        (ours if label is not None else others).append((label, process))
    if not ours and not others:
        text.append("idle", style="green")
    for n, (label, process) in enumerate(ours):
        text.append(", " if n else "", style="bright_black")
        text.append(str(label), style="bold cyan")
        text.append(f" {fmt.mib(process.get('memory_mib'))}")
    if others:
        memory = sum(float(p.get("memory_mib") or 0) for _, p in others)
        text.append(" · " if ours else "", style="bright_black")
        word = "process" if len(others) == 1 else "processes"
        text.append(f"other users: {len(others)} {word} {fmt.mib(memory)}", style="magenta")
    if gpu.takes_trial is False and gpu.reason and not ours:  # with ours on it, the reason is plain to see
        text.append(" · ", style="bright_black")
        text.append(f"takes no trial: {gpu.reason}", style="yellow")


def _owner(process: dict[str, Any], names: Mapping[str, str], trial_pids: Mapping[int, int]) -> str | None:
    """'experiment#trial' for a process of ours, None for another user's."""
    if "owner" in process:
        owner = process.get("owner")
        if not isinstance(owner, dict):
            return None
        exp_id = str(owner.get("experiment") or "")
        return f"{names.get(exp_id, exp_id[:8])}#{owner.get('trial')}"
    trial = trial_pids.get(process.get("pid"))
    return None if trial is None else f"#{trial}"
