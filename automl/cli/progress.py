"""The live progress display of `automl run`: a line per finished trial and, on a terminal, a status line."""

from __future__ import annotations

import asyncio
import sys
from typing import Any, TextIO

from ..engine.experiment import ExperimentLoop
from ..states import EventKind, TrialStatus


class Progress:
    """Listens to an experiment loop and prints what a person watching wants to know."""

    def __init__(self, loop: ExperimentLoop, stream: TextIO = sys.stdout):
        self.loop, self.stream = loop, stream
        self.live = stream.isatty()
        self.failed = 0

    def __call__(self, kind: EventKind, data: dict[str, Any]) -> None:
        if kind == EventKind.TRIAL_ENDED:
            self.failed += data["status"] == TrialStatus.FAILED
            value = "" if data["value"] is None else f" {self.loop.config.objective.metric}={data['value']:.6g}"
            error = f" ({data['error']})" if data["error"] else ""
            self._print(f"trial {data['trial']:>3} {data['status']}{value}{error}")
        elif kind == EventKind.EXPERIMENT_NOTE:
            self._print(data["note"])
        elif kind == EventKind.TRIAL_STARTED and not self.live:
            return
        self._redraw()

    async def tick(self, every: float = 1.0) -> None:
        """Keep the status line's clock moving."""
        while True:
            await asyncio.sleep(every)
            self._redraw()

    def summary_line(self) -> str:
        """Trials done/total, running, failed, best so far and elapsed time."""
        loop = self.loop
        total = loop.config.max_trials if loop.config.max_trials is not None else "∞"
        best = "-" if loop.best is None else f"{loop.best.value:.6g} (trial {loop.best.id})"
        elapsed = int(loop.elapsed)
        return (
            f"{loop.experiment.name} [{loop.experiment.id}]  trials {loop.configs_ended}/{total}  "
            f"running {loop.running}  failed {self.failed}  best {best}  "
            f"elapsed {elapsed // 3600}:{elapsed // 60 % 60:02d}:{elapsed % 60:02d}"
        )

    def finish(self) -> None:
        """Leave the terminal on a clean line."""
        if self.live:
            self.stream.write("\r\x1b[K")
            self.stream.flush()

    def _print(self, line: str) -> None:
        prefix = "\r\x1b[K" if self.live else ""
        self.stream.write(f"{prefix}{line}\n")
        self.stream.flush()

    def _redraw(self) -> None:
        if self.live:
            self.stream.write(f"\r\x1b[K{self.summary_line()}")
            self.stream.flush()
