"""The commands that talk to the daemon: submit, pause, resume, stop, kill, update, logs, and `daemon ...`."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from ..errors import DaemonError, UserError
from ..paths import home


def add_commands(sub: Any) -> None:
    """Register the daemon commands on the main parser's subcommands."""
    submit = sub.add_parser("submit", help="hand an experiment to the daemon (starting it if needed)")
    submit.add_argument("config", help="experiment config (YAML or JSON; NNI v2 config.yml files work too)")
    submit.set_defaults(handler=_cmd_submit)

    for name, text in (
        ("pause", "start no new trials (running ones go on)"),
        ("resume", "continue after pause; an orphaned experiment (its automl run was killed) is handed to the daemon"),
        ("stop", "end an experiment: its running trials are terminated (an orphaned one's too)"),
    ):
        cmd = sub.add_parser(name, help=text)
        cmd.add_argument("experiment", help="experiment id, unique id prefix, or name")
        cmd.set_defaults(handler=_cmd_control, op=name)

    kill = sub.add_parser("kill", help="terminate one running trial; the experiment goes on")
    kill.add_argument("experiment")
    kill.add_argument("trial", type=int)
    kill.set_defaults(handler=_cmd_control, op="kill")

    update = sub.add_parser("update", help="change a running experiment's limits")
    update.add_argument("experiment")
    update.add_argument("--concurrency", type=int)
    update.add_argument("--max-trials", type=int)
    update.add_argument("--max-duration", help="seconds or a duration such as 90m, 12h")
    update.set_defaults(handler=_cmd_control, op="update")

    logs = sub.add_parser("logs", help="a trial's output")
    logs.add_argument("experiment")
    logs.add_argument("trial", type=int)
    logs.add_argument("-f", "--follow", action="store_true", help="keep printing until the trial ends")
    logs.add_argument("--stderr", action="store_true", help="its stderr instead of its stdout")
    logs.set_defaults(handler=_cmd_logs)
    _add_daemon_command(sub)


def _add_daemon_command(sub: Any) -> None:
    """`automl daemon start|stop|restart|status|install`."""
    daemon = sub.add_parser("daemon", help="start, stop or inspect the background daemon")
    actions = daemon.add_subparsers(dest="action", required=True, metavar="ACTION")
    start = actions.add_parser("start", help="start the daemon in the background")
    start.add_argument("--foreground", action="store_true", help="run in this process (for service managers)")
    start.add_argument(
        "--ray", metavar="HOST:PORT", help="run every experiment without a launcher of its own on this Ray cluster"
    )
    start.set_defaults(handler=_cmd_daemon_start)
    actions.add_parser("stop", help="stop the daemon; running trials keep running").set_defaults(
        handler=_cmd_daemon_stop
    )
    actions.add_parser("restart", help="stop, then start the daemon").set_defaults(handler=_cmd_daemon_restart)
    status = actions.add_parser("status", help="whether the daemon runs, and what it hosts")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.set_defaults(handler=_cmd_daemon_status)
    actions.add_parser("install", help="write a systemd user unit for the daemon").set_defaults(
        handler=_cmd_daemon_install
    )


def _client() -> Any:
    from ..control.client import Client
    from ..paths import socket_path

    return Client(socket_path(home()))


def _request(op: str, **args: Any) -> Any:
    from ..control.client import DaemonNotRunning, RemoteError

    try:
        with _client() as client:
            return client.request(op, **args)
    except DaemonNotRunning:
        raise UserError(
            "the daemon is not running; start it with `automl daemon start` (or submit an experiment, which starts it)"
        ) from None
    except RemoteError as e:
        if e.code == "user_error":
            raise UserError(e.message) from None
        raise DaemonError(f"the daemon answered: {e.message} (see {home() / 'daemon.log'})") from None


def _cmd_submit(args: argparse.Namespace) -> int:
    path = Path(args.config).resolve()
    if not path.exists():
        raise UserError(f"{args.config}: config file not found")
    _ensure_daemon()
    result = _request("submit", config=str(path), environment=dict(os.environ))  # its trials run with ours
    for warning in result["warnings"]:
        print(f"automl: warning: {warning}", file=sys.stderr)
    print(result["id"])
    return 0


def _ensure_daemon() -> None:
    """Start the daemon unless it runs."""
    from ..daemon import daemon_pid, start_detached

    if daemon_pid(home()) is None:
        pid = start_detached(home())
        print(f"daemon started (pid {pid})", file=sys.stderr)


def _orphan(ref: str) -> Any:
    """The experiment `ref` if its foreground `automl run` is gone, else None (the daemon answers for it)."""
    from ..store import Store
    from ..views import is_orphaned

    store = Store.open_for_reading(home())
    if store is None:
        return None
    try:
        experiment = store.find_experiment(ref)
    finally:
        store.close()
    return experiment if is_orphaned(experiment) else None


def _cmd_control(args: argparse.Namespace) -> int:
    if args.op in ("stop", "resume") and (orphan := _orphan(args.experiment)) is not None:
        if args.op == "stop":
            from .commands import stop_orphan

            return stop_orphan(orphan)
        _ensure_daemon()
        _request("resume", experiment=orphan.id, environment=dict(os.environ))  # its trials run with ours
        print(f"resume: experiment {orphan.id} adopted by the daemon (its automl run had gone)")
        return 0
    fields: dict[str, Any] = {"experiment": args.experiment}
    if args.op == "kill":
        fields["trial"] = args.trial
    if args.op == "update":
        fields.update(concurrency=args.concurrency, max_trials=args.max_trials, max_duration=args.max_duration)
        if all(v is None for v in (args.concurrency, args.max_trials, args.max_duration)):
            raise UserError("update needs at least one of --concurrency, --max-trials, --max-duration")
    before = _limits(args.experiment) if args.op == "update" else {}
    result = _request(args.op, **fields)
    line = f"{args.op}: experiment {result['experiment']}" + (f" trial {args.trial}" if args.op == "kill" else "")
    if args.op == "update":
        asked = {"concurrency": args.concurrency, "max_trials": args.max_trials, "max_duration": args.max_duration}
        line += ": " + ", ".join(
            f"{name} {before.get(name, '?')} -> {value}" for name, value in asked.items() if value is not None
        )
    print(line)
    return 0


def _limits(ref: str) -> dict[str, Any]:
    """An experiment's limits as stored now (`update` prints them beside the new ones); unlimited ones as `none`."""
    from ..store import Store

    store = Store.open_for_reading(home())
    if store is None:
        return {}
    try:
        config = store.find_experiment(ref).config
    except UserError:
        return {}
    finally:
        store.close()
    return {
        name: "none" if config.get(name) is None else config[name]
        for name in ("concurrency", "max_trials", "max_duration")
    }


def _cmd_logs(args: argparse.Namespace) -> int:
    from ..launchers.base import STDERR_FILE
    from ..launchers.local import printed_output
    from ..store import Store

    store = Store.open_for_reading(home())
    if store is None:
        raise UserError(f"no experiment {args.experiment!r}: no experiments exist yet under {home()}")
    experiment = store.find_experiment(args.experiment)
    trial_dir = home() / "experiments" / experiment.id / "trials" / str(args.trial)
    if not any(t.id == args.trial for t in store.trials(experiment.id)):
        raise UserError(f"experiment {experiment.id} has no trial {args.trial}")

    def files() -> list[Path]:
        return [trial_dir / STDERR_FILE] if args.stderr else printed_output(trial_dir)

    output = _Output(files()[0])
    output.print_new(files())
    while args.follow and _trial_runs(store, experiment.id, args.trial):
        time.sleep(0.2)
        output.print_new(files())
    output.print_new(files())
    return 0


def _cmd_daemon_start(args: argparse.Namespace) -> int:
    from ..daemon import serve_foreground, start_detached

    if args.ray:
        from ..launchers.ray_address import address_problem

        problem = address_problem(args.ray)
        if problem:
            raise UserError(f"--ray: {problem}")
    if args.foreground:
        serve_foreground(home(), args.ray)
        return 0
    pid = start_detached(home(), ray_address=args.ray)
    print(f"daemon started (pid {pid}); socket {home() / 'daemon.sock'}")
    return 0


def _cmd_daemon_stop(args: argparse.Namespace) -> int:
    from ..daemon import stop

    pid = stop(home())
    print("the daemon is not running" if pid is None else f"daemon {pid} stopped")
    return 0


def _cmd_daemon_restart(args: argparse.Namespace) -> int:
    from ..daemon import start_detached, stop

    stop(home())
    print(f"daemon started (pid {start_detached(home())})")
    return 0


def _cmd_daemon_status(args: argparse.Namespace) -> int:
    from ..control.client import DaemonNotRunning
    from ..paths import socket_path

    try:
        with _client() as client:
            status = client.request("status")
    except DaemonNotRunning:
        status = {"running": False, "pid": None, "socket": str(socket_path(home())), "experiments": []}
    if args.json:
        print(json.dumps(status, indent=2))
    elif status["running"]:
        print(
            f"running: pid {status['pid']}, socket {status['socket']}, "
            f"{len(status['experiments'])} experiment(s): {' '.join(status['experiments']) or '-'}"
        )
        lag = status.get("loop_lag_ms")
        if lag:
            print(
                f"memory {status['rss_mib']:.0f} MiB; event-loop lag over the last {lag['samples']} wake-ups: "
                f"p50 {lag['p50']:.1f} ms, p99 {lag['p99']:.1f} ms, max {lag['max']:.1f} ms"
            )
        fault = status.get("store_fault")
        if fault:
            print(
                f"store fault: {fault['error']} for {time.time() - fault['since']:.0f} s ({fault['failures']} "
                f"failed writes, next try in {fault['retry_in']:.1f} s); trials go on, metrics wait in their files"
            )
    else:
        print(f"not running (socket {status['socket']})")
    return 0


def _cmd_daemon_install(args: argparse.Namespace) -> int:
    from ..daemon import systemd_unit

    folder = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "systemd" / "user"
    folder.mkdir(parents=True, exist_ok=True)
    unit = folder / "automl.service"
    unit.write_text(systemd_unit(home()))
    print(
        f"wrote {unit}\n"
        "enable it:   systemctl --user daemon-reload && systemctl --user enable --now automl\n"
        f"keep it running after you log out:   loginctl enable-linger {os.environ.get('USER', '$USER')}"
    )
    return 0


class _Output:
    """Prints what a trial's output files gained since the last look; a line on stderr names the file whenever
    the text shown comes from another file than before (NNI scripts print to trial.log, not stdout)."""

    def __init__(self, first: Path):
        self.offsets: dict[Path, int] = {}
        self.shown = first

    def print_new(self, paths: list[Path]) -> None:
        """Print each file's new text."""
        for path in paths:
            data = _read_from(path, self.offsets.get(path, 0))
            if not data:
                continue
            if path != self.shown:
                sys.stdout.flush()
                print(f"automl: ==> {path} <==", file=sys.stderr, flush=True)
                self.shown = path
            self.offsets[path] = self.offsets.get(path, 0) + len(data)
            sys.stdout.write(data.decode(errors="replace"))
            sys.stdout.flush()


def _read_from(path: Path, offset: int) -> bytes:
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            return f.read()
    except FileNotFoundError:
        return b""


def _trial_runs(store: Any, exp_id: str, trial_id: int) -> bool:
    """Whether the trial is still to write output: it exists and has not finished."""
    return any(t.id == trial_id and not t.status.is_finished() for t in store.trials(exp_id))
