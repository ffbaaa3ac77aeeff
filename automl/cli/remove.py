"""`automl rm EXP...`: delete experiments, after a confirmation; running ones only with --force, which stops them
first."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from typing import Any

from ..errors import UserError
from ..paths import home

STOP_WAIT = 60.0
"""Seconds `rm --force` waits for a stopped experiment to end (its trials get 5 s before SIGKILL)."""


def add_command(sub: Any) -> None:
    """Register `rm` on the main parser's subcommands."""
    rm = sub.add_parser("rm", help="delete experiments: their trials, metrics and folders")
    rm.add_argument("experiments", nargs="+", metavar="EXP", help="experiment id, unique id prefix, or name")
    rm.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")
    rm.add_argument("--force", action="store_true", help="stop running or paused experiments first")
    rm.set_defaults(handler=_cmd_rm)


def _cmd_rm(args: argparse.Namespace) -> int:
    from ..removal import removable, remove
    from ..store import Store

    store = Store.open_for_reading(home())
    if store is None:
        raise UserError(f"no experiment {args.experiments[0]!r}: no experiments exist yet under {home()}")
    try:
        found = {e.id: e for e in (store.find_experiment(ref) for ref in args.experiments)}
        counts = {exp_id: len(store.trials(exp_id)) for exp_id in found}
    finally:
        store.close()
    active = [e for e in found.values() if removable(e) is not None]
    if active and not args.force:
        raise UserError("; ".join(removable(e) or "" for e in active))
    if not args.yes and not _confirmed(found.values(), counts, active):
        print("rm: nothing deleted", file=sys.stderr)
        return 1
    for experiment in active:
        _stop(experiment)
    for experiment in found.values():
        remove(home(), experiment.id)
        print(f"rm: deleted experiment {experiment.name} [{experiment.id}] ({counts[experiment.id]} trials)")
    return 0


def _confirmed(experiments: Any, counts: dict[str, int], active: list[Any]) -> bool:
    """Ask on the terminal; without one, --yes is needed."""
    if not sys.stdin.isatty():
        raise UserError("rm deletes for good and asks first; without a terminal to ask on, pass --yes")
    for e in experiments:
        stopping = " (stopped first)" if e in active else ""
        print(f"  {e.id}  {e.name}  {e.status}{stopping}, {counts[e.id]} trials")
    answer = input(f"Delete these {len(counts)} experiment(s), their trials, metrics and folders? [y/N] ")
    return answer.strip().lower() in ("y", "yes")


def _stop(experiment: Any) -> None:
    """Stop a running, paused or orphaned experiment and wait until it has ended."""
    from ..processes import is_alive
    from ..views import is_orphaned
    from .commands import stop_orphan
    from .daemon import _ensure_daemon, _request

    if is_orphaned(experiment):
        stop_orphan(experiment)
    elif (
        experiment.host == "foreground"
        and experiment.host_pid
        and is_alive(experiment.host_pid, experiment.host_started)
    ):
        os.kill(experiment.host_pid, signal.SIGTERM)  # as Ctrl-C: its trials are ended, it records `stopped`
    else:
        _ensure_daemon()
        _request("stop", experiment=experiment.id)
    _wait_ended(experiment.id)


def _wait_ended(exp_id: str) -> None:
    from ..removal import removable
    from ..store import Store

    deadline = time.monotonic() + STOP_WAIT
    while time.monotonic() < deadline:
        store = Store.open_for_reading(home())
        try:
            if store is None or removable(store.find_experiment(exp_id)) is None:
                return
        finally:
            if store is not None:
                store.close()
        time.sleep(0.2)
    raise UserError(f"experiment {exp_id} did not end within {STOP_WAIT:.0f} s of being stopped; nothing deleted")
