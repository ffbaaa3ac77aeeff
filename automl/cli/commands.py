"""The `automl` command line: run, ls, show, export.

Exit codes: 0 success, 2 a user error (bad config, unknown experiment),
130 interrupted with Ctrl-C, 1 anything else.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import signal
import sqlite3
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from tui.cli import add_command as add_tui_command

from .. import __version__
from ..errors import DaemonError, UserError, close_match
from ..export import FORMATS, format_for
from ..logs import log_to
from ..paths import home, secure_home, write_atomically
from ..states import ExperimentStatus, TrialStatus
from .convert import add_command as add_convert_command
from .daemon import add_commands as add_daemon_commands
from .gpus import add_command as add_gpus_command
from .remove import add_command as add_remove_command

log = logging.getLogger("automl")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    args = _parser().parse_args(argv)
    _log_warnings_to_stderr()
    try:
        return args.handler(args)
    except (UserError, DaemonError) as e:
        print(f"automl: error: {e}", file=sys.stderr)
        return e.exit_code
    except sqlite3.DatabaseError as e:
        from ..store import DB_NAME, damaged_message

        print(f"automl: error: {damaged_message(home() / DB_NAME, e)}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        return 1


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="automl", description="Hyperparameter search over PyTorch trial scripts.")
    parser.add_argument("--version", action="version", version=f"automl {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run an experiment in the foreground, with live progress")
    run.add_argument("config", help="experiment config (YAML or JSON; NNI config.yml files, v2 or v1, work too)")
    run.set_defaults(handler=_cmd_run)

    ls = sub.add_parser("ls", help="list experiments")
    ls.add_argument("--json", action="store_true", help="machine-readable output")
    ls.set_defaults(handler=_cmd_ls)

    show = sub.add_parser("show", help="one experiment: status, best trial, every trial; or one trial in full")
    show.add_argument("experiment", help="experiment id, unique id prefix, or name")
    show.add_argument("trial", nargs="?", type=int, help="one trial: its whole curve, params, usage and log files")
    show.add_argument("--json", action="store_true", help="machine-readable output")
    show.add_argument("--top", type=_positive_int, metavar="K", help="only the K first trials of the table")
    show.add_argument("--wide", action="store_true", help="every column, params in full, trials by id")
    show.add_argument("--importance", action="store_true", help="each parameter's share of importance, as bars")
    show.set_defaults(handler=_cmd_show)

    export = sub.add_parser("export", help="export the best configs")
    export.add_argument("experiment", help="experiment id, unique id prefix, or name")
    which = export.add_mutually_exclusive_group(required=True)
    which.add_argument("--best", action="store_true", help="the best trial's params")
    which.add_argument("--top", type=_positive_int, metavar="K", help="the K best trials")
    which.add_argument("--all", action="store_true", help="every trial")
    export.add_argument("--format", choices=FORMATS, help="default: from -o's suffix, else yaml")
    export.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of standard output")
    export.set_defaults(handler=_cmd_export)

    add_daemon_commands(sub)
    add_gpus_command(sub)
    add_convert_command(sub)
    add_remove_command(sub)
    add_tui_command(sub)
    return parser


class _Parser(argparse.ArgumentParser):
    """argparse, saying which command or choice was probably meant when one is misspelled."""

    def error(self, message: str) -> NoReturn:
        """Exit 2 with `message`, plus 'did you mean' for an invalid choice close to a valid one."""
        invalid = re.match(r"argument (.*?): invalid choice: '(.*)' \(choose from (.*)\)$", message)
        if invalid:
            choices = re.findall(r"'([^']*)'", invalid[3])
            what = "command" if invalid[1] == "COMMAND" else f"choice for {invalid[1]}"
            close = close_match(invalid[2], choices)
            hint = f"; did you mean '{close}'?" if close else ""
            message = f"unknown {what} '{invalid[2]}'{hint} (choose from {', '.join(choices)})"
        super().error(message)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


# run


def _cmd_run(args: argparse.Namespace) -> int:
    import asyncio

    from ..config.model import load_config, resolve_launcher
    from ..engine.experiment import DETACHED
    from ..notify import notify_end
    from ..store import LOOP_WRITE_WAIT, Store
    from ..tuners import tuner_for

    config, warnings = load_config(args.config)
    resolve_launcher(config, args.config, None)
    for warning in warnings:
        print(f"automl: warning: {warning}", file=sys.stderr)
    tuner = tuner_for(config)
    store = Store(secure_home())
    experiment_id = store.create_experiment(
        config.name, config.model_dump(mode="json"), str(Path(args.config).resolve())
    )
    tuner.use_folder(store.home / "experiments" / experiment_id)
    experiment = store.find_experiment(experiment_id)
    store.set_write_wait(LOOP_WRITE_WAIT)  # from here on a lock must not stall the loop: it retries instead
    log_to(store.home / "experiments" / experiment_id / "experiment.log")
    print(
        f"experiment {config.name} [{experiment_id}]: {config.max_trials or 'unlimited'} trials, "
        f"tuner {config.tuner.name}, {config.concurrency} at a time",
        flush=True,
    )
    try:
        status, interrupted, best = asyncio.run(_run_loop(store, experiment, config, tuner))
        ended = store.find_experiment(experiment_id)
    finally:
        store.close()
    if status != "detached":
        asyncio.run(notify_end(config, ended, status, best))
    if best is not None:
        print(f"best: trial {best.id}, {config.objective.metric}={best.value:.6g}, params {json.dumps(best.params)}")
        print(f"export it: automl export {experiment_id} --best -o best.yaml")
    why = ended.error or ended.note
    print(f"experiment {experiment_id} {status}" + (f": {why}" if why and status != DETACHED else ""))
    if interrupted:
        return 130
    return 0 if status == ExperimentStatus.DONE else 1


def stop_orphan(experiment: Any) -> int:
    """`automl stop` of an experiment whose `automl run` is gone: host it here just long enough to end its
    leftover trials (SIGTERM, then SIGKILL after the grace period) and record it stopped."""
    import asyncio

    from ..config.model import config_from_store
    from ..store import Store
    from ..tuners import tuner_for

    store = Store(home())
    try:
        if not store.claim_experiment(experiment, "foreground", experiment.environment):
            raise UserError(f"experiment {experiment.id} was taken up by another process meanwhile")
        store.decide_stop(experiment.id, "stopped by user")
        config = config_from_store(experiment.config)
        tuner = tuner_for(config)
        tuner.use_folder(store.home / "experiments" / experiment.id)
        status, _, _ = asyncio.run(_run_loop(store, store.find_experiment(experiment.id), config, tuner))
    finally:
        store.close()
    print(f"stop: experiment {experiment.id} {status} (its automl run had gone)")
    return 0 if status == ExperimentStatus.STOPPED else 1


async def _run_loop(store: Any, experiment: Any, config: Any, tuner: Any) -> tuple[str, bool, Any]:
    import asyncio

    from ..engine.experiment import ExperimentLoop
    from ..gpu.pool import GpuPool
    from ..gpu.probe import open_probe
    from ..launchers.choose import launcher_for
    from .progress import Progress

    local_gpus = 0 if config.launcher.name == "ray" else config.resources.gpus  # Ray assigns a cluster's GPUs
    pool = GpuPool(open_probe() if local_gpus > 0 else None)
    slots = pool.slots(experiment.id, config.gpu, local_gpus)
    loop = ExperimentLoop(store, experiment, config, tuner, slots, launcher=launcher_for(config, None))
    progress = Progress(loop)
    loop.listeners.append(progress)
    interrupts = 0

    def on_signal() -> None:
        nonlocal interrupts
        interrupts += 1
        if interrupts == 1:
            progress.finish()
            print(
                f"stopping: ending {loop.running} running trial(s); Ctrl-C again to kill them at once",
                file=sys.stderr,
                flush=True,
            )
            loop.stop()
        else:
            loop.kill_now()

    aio = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        aio.add_signal_handler(sig, on_signal)
    ticker = aio.create_task(progress.tick())
    sampler = aio.create_task(pool.run()) if pool.count else None
    try:
        status = await loop.run()
    finally:
        ticker.cancel()
        if sampler is not None:
            sampler.cancel()
        progress.finish()
    return status, interrupts > 0, loop.best


def _log_warnings_to_stderr() -> None:
    handler = logging.StreamHandler()
    handler.setLevel(logging.WARNING)
    handler.setFormatter(logging.Formatter("automl: %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.WARNING)
    log.propagate = False


# reading the store


def _open_store() -> Any:
    from ..store import Store

    return Store.open_for_reading(home())


def _cmd_ls(args: argparse.Namespace) -> int:
    from ..views import experiment_summary, listing_key

    store = _open_store()
    rows = [] if store is None else [experiment_summary(e, store.trials(e.id)) for e in store.experiments()]
    rows.sort(key=lambda r: listing_key(r["status"], r["created"]))
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("no experiments yet; start one with `automl run CONFIG`")
        return 0
    print(f"{'ID':<10} {'NAME':<24} {'STATUS':<8} {'TRIALS':>8} {'BEST':>12}  CREATED")
    for r in rows:
        total = f"{r['trials']}/{r['max_trials'] or '-'}"
        best = "-" if r["best_value"] is None else f"{r['best_value']:.6g}"
        created = time.strftime("%Y-%m-%d %H:%M", time.localtime(r["created"]))
        print(f"{r['id']:<10} {r['name'][:24]:<24} {r['status']:<8} {total:>8} {best:>12}  {created}")
    return 0


def _find(ref: str) -> tuple[Any, Any]:
    store = _open_store()
    if store is None:
        raise UserError(f"no experiment {ref!r}: no experiments exist yet under {home()}")
    return store, store.find_experiment(ref)


def _cmd_show(args: argparse.Namespace) -> int:
    from ..export import flatten
    from ..importance import MIN_TRIALS
    from ..views import experiment_view
    from .table import cut, importance_lines, params_words, terminal_width, trial_lines

    store, experiment = _find(args.experiment)
    if args.trial is not None:
        return _show_trial(store, experiment, args.trial, args.json)
    view = experiment_view(store, experiment)
    if args.json:
        print(json.dumps(view, indent=2))
        return 0
    print(f"experiment {view['name']} [{view['id']}]  status {view['status']}")
    print(f"config     {view['config_path']}")
    print(f"tuner      {view['tuner']['name']}  objective: {view['objective']['mode']} {view['objective']['metric']}")
    if view["objective"].get("mode_from"):
        print(f"direction: {view['objective']['mode']} (from {view['objective']['mode_from']})")
    if view["error"]:
        print(f"error      {view['error']}")
    if view["note"]:
        print(f"note       {view['note']}")
    best = view["best"]
    best_text = (
        _no_best(view["status"], view["trials"])
        if best is None
        else f"trial {best['id']}: {best['value']:.6g}  {params_words(best['params'])}"
    )
    print(cut(f"best       {best_text}", terminal_width()))
    cost = view["cost"]
    print(
        f"cost       {cost['gpu_hours']:.3f} GPU-hours, {cost['kwh']:.3f} kWh, {cost['cpu_seconds']:.0f} CPU-seconds"
        f": {cost['cost']:.2f} {cost['currency']}"
    )
    if args.importance:
        print()
        counted = sum(t["status"] == TrialStatus.SUCCEEDED and t["value"] is not None for t in view["trials"])
        print("\n".join(importance_lines(view["importance"], counted, MIN_TRIALS)))
    print()
    if args.wide:
        _print_wide_table(view["trials"])
        return 0
    for trial in view["trials"]:
        trial["flat"] = flatten(trial["params"])
    maximize = view["objective"]["mode"] == "maximize"
    print("\n".join(trial_lines(view["trials"], view["importance"], maximize, args.top, time.time())))
    return 0


def _no_best(status: str, trials: list[dict[str, Any]]) -> str:
    """What stands for the best trial of an experiment none of whose trials succeeded, in words that fit it."""
    if ExperimentStatus(status).is_active():
        return "- (no trial has succeeded yet)"
    if not trials:
        return "none: no trial ran"
    return f"none: no trial succeeded ({len(trials)} ran)"


def _print_wide_table(trials: list[dict[str, Any]]) -> None:
    """Every trial by id with every column, params in full JSON and errors at the end of the line."""
    on_nodes = any(t["node"] for t in trials)  # a cluster's trials: which node each ran on
    node_head = f"{'NODE':<12} " if on_nodes else ""
    print(
        f"{'TRIAL':>5} {'STATUS':<13} {node_head}{'VALUE':>10} {'STEPS':>5} {'TIME':>7} {'GPU':>4} {'GPU-S':>7} "
        f"{'ENERGY':>8} {'CPU-S':>7} {'RSS':>7} {'COST':>7}  PARAMS / ERROR"
    )
    now = time.time()
    for t in trials:
        value = "-" if t["value"] is None else f"{t['value']:.6g}"
        took = "-" if not t["started"] else f"{(t['ended'] or now) - t['started']:.1f}s"
        detail = json.dumps(t["params"]) if not t["error"] else f"{json.dumps(t['params'])}  ! {t['error']}"
        gpus = ",".join(map(str, t["gpus"])) or "-"
        node = f"{(t['node'] or '-')[:12]:<12} " if on_nodes else ""
        print(
            f"{t['id']:>5} {t['status']:<13} {node}{value:>10} {t['steps']:>5} {took:>7} {gpus:>4} "
            f"{_figure(t['gpu_seconds'], '.0f')} {_figure(t['energy_j'], '.0f', 'J', 8)} "
            f"{_figure(t['cpu_seconds'], '.1f')} {_figure(t['peak_rss_mib'], '.0f', 'M')} "
            f"{_figure(t['cost'], '.3f')}  {detail}"
        )


def _show_trial(store: Any, experiment: Any, trial_id: int, as_json: bool) -> int:
    from ..views import trial_detail_view

    view = trial_detail_view(store, experiment, trial_id)
    if as_json:
        print(json.dumps(view, indent=2))
        return 0
    value = "-" if view["value"] is None else f"{view['value']:.6g}"
    print(
        f"trial {view['id']} of {experiment.name} [{experiment.id}]  status {view['status']}  "
        f"{experiment.config['objective']['metric']} {value}"
    )
    for name, param in view["params"].items():
        print(f"  {name} = {json.dumps(param)}")
    print(
        f"started    {_when(view['started'])}   ended {_when(view['ended'])}"
        + ("" if not (view["started"] and view["ended"]) else f"   ({view['ended'] - view['started']:.1f} s)")
    )
    if view["retry_of"] is not None:
        print(f"retry      attempt {view['attempt'] + 1}, of trial {view['retry_of']}")
    if view["exit_code"] is not None:
        print(f"exit code  {view['exit_code']}")
    if view["error"]:
        print(f"error      {view['error']}")
    print(
        f"usage      GPUs {','.join(map(str, view['gpus'])) or '-'}: {_figure(view['gpu_seconds'], '.0f', width=0)} "
        f"GPU-s, {_figure(view['energy_j'], '.0f', width=0)} J, GPU memory "
        f"{_figure(view['gpu_memory_mib'], '.0f', width=0)} MiB; {_figure(view['cpu_seconds'], '.1f', width=0)} "
        f"CPU-s, peak RSS {_figure(view['peak_rss_mib'], '.0f', width=0)} MiB; cost "
        f"{_figure(view['cost'], '.4f', width=0)}"
    )
    print(f"folder     {view['files']['folder']}")
    for name, path in view["files"].items():
        if name != "folder":
            print(f"  {name:<9}{path}")
    curve = view["curve"]
    print(f"curve      {len(curve)} report(s)" + (":" if curve else ""))
    if curve:
        print(f"  {'STEP':>6} {'VALUE':>12} {'AT':>9}  KIND")
    for point in curve:
        shown = "-" if point["value"] is None else f"{point['value']:.6g}"
        at = "-" if view["started"] is None else f"+{point['time'] - view['started']:.1f}s"
        print(f"  {'-' if point['step'] is None else point['step']:>6} {shown:>12} {at:>9}  {point['kind']}")
    return 0


def _when(stamp: float | None) -> str:
    return "-" if stamp is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stamp))


def _figure(value: float | None, fmt: str, unit: str = "", width: int = 7) -> str:
    text = "-" if value is None else f"{value:{fmt}}{unit}"
    return f"{text:>{width}}"


def _cmd_export(args: argparse.Namespace) -> int:
    from ..export import param_columns, ranked, render_best, render_many

    fmt = args.format or format_for(args.output)
    store, experiment = _find(args.experiment)
    trials = store.trials(experiment.id)
    order = ranked(trials, experiment.config["objective"]["mode"])
    if (args.best or args.top) and not order:
        yet = " yet" if experiment.status.is_active() else ""
        print(f"automl: experiment {experiment.id} has no succeeded trial{yet}", file=sys.stderr)
        return 1
    columns = param_columns(trials)
    if args.best:
        text = render_best(order[0], fmt)
    elif args.top:
        text = render_many(order[: args.top], fmt, columns=columns)
    else:
        text = render_many(trials, fmt, with_status=True, columns=columns)
    if args.output is None:
        sys.stdout.write(text)
        return 0
    write_atomically(Path(args.output), text)
    print(f"wrote {args.output}", file=sys.stderr)
    return 0
