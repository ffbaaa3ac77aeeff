"""`automl tui [EXP]`: the command that opens the dashboard (Textual is imported only when it runs)."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def add_command(sub: Any) -> None:
    """Register `tui` on the main parser's subcommands."""
    tui = sub.add_parser("tui", help="the live dashboard: experiments, trials, curves, GPUs, cost")
    tui.add_argument("experiment", nargs="?", help="open this experiment (id, unique id prefix, or name)")
    tui.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Attach the dashboard to the daemon, or show the store read-only while none runs; exit code 2 when EXP is
    unknown."""
    from automl.control.client import Client, DaemonNotRunning
    from automl.errors import UserError
    from automl.paths import home, socket_path
    from automl.store import Store

    data = home()
    try:
        with Client(socket_path(data), timeout=5) as client:
            client.request("ping")
    except DaemonNotRunning:
        pass  # read-only until a daemon appears
    except (OSError, ConnectionError) as e:
        print(f"automl: error: cannot reach the daemon on {socket_path(data)}: {e}", file=sys.stderr)
        return 1
    experiment = None
    if args.experiment:
        store = Store.open_for_reading(data)
        try:
            if store is None:
                raise UserError(f"no experiment {args.experiment!r}: no experiments exist yet under {data}")
            experiment = store.find_experiment(args.experiment).id
        except UserError as e:
            print(f"automl: error: {e}", file=sys.stderr)
            return 2
        finally:
            if store is not None:
                store.close()

    from .app import DashboardApp

    return DashboardApp(data, experiment=experiment).run() or 0
