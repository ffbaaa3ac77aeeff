"""The `notify` hook: a command of the user's, run when an experiment ends, to tell them (mail, a chat message).

It gets the experiment's id, name, status and best value in its environment. It runs detached from the host's
work: a command that fails, hangs (it is killed after NOTIFY_TIMEOUT seconds) or cannot start is logged, and
changes nothing else.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

log = logging.getLogger("automl")

NOTIFY_TIMEOUT = 60.0
"""Seconds a notify command may run before it is killed."""


def notify_environment(experiment: Any, status: str, best: Any, metric: str) -> dict[str, str]:
    """The command's environment: the submitting shell's (or the host's) plus `AUTOML_EXPERIMENT_ID`, `..._NAME`,
    `..._STATUS`, `AUTOML_BEST_VALUE` and `AUTOML_BEST_TRIAL` (empty without a succeeded trial), `AUTOML_METRIC`."""
    return {
        **(experiment.environment or os.environ),
        "AUTOML_EXPERIMENT_ID": experiment.id,
        "AUTOML_EXPERIMENT_NAME": experiment.name,
        "AUTOML_EXPERIMENT_STATUS": str(status),
        "AUTOML_BEST_VALUE": "" if best is None else repr(best.value),
        "AUTOML_BEST_TRIAL": "" if best is None else str(best.id),
        "AUTOML_METRIC": metric,
    }


async def notify_end(config: Any, experiment: Any, status: str, best: Any) -> None:
    """Run the experiment's `notify.command`, if it has one, and log how it went; never raises."""
    if config.notify is None:
        return
    command = config.notify.command
    environment = notify_environment(experiment, status, best, config.objective.metric)
    try:
        process = await asyncio.create_subprocess_exec(
            *command,
            env=environment,
            cwd=config.working_dir,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
    except OSError as e:
        log.warning("experiment %s: notify command %s could not start: %s", experiment.id, command[0], e)
        return
    try:
        _, stderr = await asyncio.wait_for(process.communicate(), NOTIFY_TIMEOUT)
    except asyncio.TimeoutError:
        process.kill()
        await process.wait()
        log.warning("experiment %s: notify command killed after %.0f s", experiment.id, NOTIFY_TIMEOUT)
        return
    if process.returncode != 0:
        said = stderr.decode(errors="replace").strip().splitlines()[-1:] if stderr else []
        log.warning(
            "experiment %s: notify command exited with code %s%s",
            experiment.id,
            process.returncode,
            f": {said[0][:300]}" if said else "",
        )
    else:
        log.info("experiment %s: notify command done", experiment.id)
