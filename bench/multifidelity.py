"""Multi-fidelity benchmark: best value found against epochs spent, for our tuners and stoppers and for Optuna.

Problems: mf-prior-bench's synthetic multi-fidelity Hartmann functions (no
download; the fidelity is the epoch, 1..100) and the digits MLP trained for
real, one epoch at a time (bench/digits_curve.py, 27 epochs). Each of our
methods runs through the real experiment loop with simulated trials on a
virtual clock (`automl.launchers.simulated`); the peers, Optuna's TPE with its
successive-halving or its Hyperband pruner and DEHB, run as ask/tell loops over
the same number of workers, one epoch per tick. `automl default` is the set-up
docs/config.md recommends; the bench compares it with the strongest peer and
Random when they are among the methods. Every run stops once its trials have
spent the epoch budget. A
configuration counts as found once it has been evaluated for all the epochs;
the score is its regret, the value minus the problem's optimum (for the digits
MLP, the validation error), lower is better. On the Hartmann problems, where a
configuration's full-fidelity value costs nothing to look up, it also reports
the best configuration each method proposed early enough to run all its
epochs by each checkpoint: what a clairvoyant stopper could have found from
the same proposals, so a shortfall can be put on the sampler or the stopper.
With Random among the methods, it says when each other method's median first
reaches Random's final median, as a share of the budget.

    python bench/multifidelity.py                          # 10 seeds, all problems
    python bench/multifidelity.py --seeds 2 --problems mfh3_good   # a quick look
    python bench/multifidelity.py --seeds 4 --problems mfh3_good mfh3_bad mfh6_good mfh6_bad \
        --methods "TPE + ASHA" "Optuna TPE + SHA pruner" --min-resource 1 \
        --traces /tmp/ladder.json --plot /tmp/ladder.png    # another ladder, kept apart from the results

    python bench/multifidelity.py --seeds 10 --first-seed 10 --problems mfh3_terrible \
        --methods "automl default" Random --traces /tmp/unseen.json --plot /tmp/unseen.png   # other seeds

Needs the `bench` extra and mf-prior-bench (`make bench-multifidelity` installs both and runs it);
matplotlib draws the plot (docs/multifidelity.png). DEHB needs the `dehb` package, which requires
numpy < 2: run it from an environment of its own and join its traces with --add-traces.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import statistics
import sys
import tempfile
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DIGITS = "digits_mlp"
PROBLEMS = ("mfh3_good", "mfh3_bad", "mfh6_good", "mfh6_bad", DIGITS)
WORKERS = 4
CHECKPOINTS = (0.1, 0.2, 0.5, 1.0)
# The same ladder for ASHA, Hyperband, BOHB and Optuna's pruner; max_resource is the problem's epochs. Rungs below 3
# epochs judge the Hartmann problems on curves whose order is mostly noise (see docs/benchmarks.md).
_RESOURCES = {"min_resource": 3, "reduction_factor": 3}
METHODS: dict[str, tuple[str, dict[str, Any] | None]] = {
    "Random": ("Random", None),
    "TPE": ("TPE", None),
    "TPE + Medianstop": ("TPE", {"name": "Medianstop", "args": {"start_step": 5}}),
    "TPE + ASHA": ("TPE", {"name": "ASHA", "args": _RESOURCES}),
    "Hyperband": ("Random", {"name": "Hyperband", "args": _RESOURCES}),
    "BOHB": ("TPE", {"name": "Hyperband", "args": _RESOURCES}),
}
AUTOML_DEFAULT = "automl default"
_DEFAULT_ASHA: dict[str, Any] = {"brackets": 2}
METHODS[AUTOML_DEFAULT] = ("TPE", {"name": "ASHA", "args": _DEFAULT_ASHA, "learn_from": "rung"})
"""The tuner and stopper docs/config.md recommends for early stopping, on the same ladder."""
OPTUNA = "Optuna TPE + SHA pruner"
OPTUNA_HYPERBAND = "Optuna TPE + Hyperband pruner"
DEHB = "DEHB"
PEERS = (OPTUNA, OPTUNA_HYPERBAND, DEHB)
"""Other libraries' methods, each driven over the same workers, ladder and epoch budget."""
DEFAULT_METHODS = [*(m for m in METHODS if m != AUTOML_DEFAULT), OPTUNA]
"""What a run without --methods compares: the main table of docs/benchmarks.md."""
_TPE_ARGS: dict[str, Any] = {}
"""NNI's tpe_args for our TPE methods; empty for automl's defaults."""

Trace = list[tuple[int, float]]
"""(epochs spent, regret of the best full-fidelity configuration so far), one point per improvement."""


def main() -> None:
    args = _arguments()
    _configure_methods(args)
    saved = json.loads(args.traces.read_text()) if args.replot else _run_and_save(args)
    added = [run for path in args.add_traces for run in json.loads(path.read_text())["runs"]]
    results, proposals, budgets = _collect(
        [
            run
            for run in saved["runs"] + added
            if run["problem"] in (args.problems or [run["problem"]])
            and run["method"] in (args.methods or [run["method"]])
        ]
    )
    _report(args, saved, results, proposals, budgets)


def _arguments() -> argparse.Namespace:
    """The command line, parsed."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--first-seed", type=int, default=0, help="seeds run: first-seed .. first-seed + seeds - 1")
    parser.add_argument("--trials", type=int, default=1000, help="most trials one run may start")
    parser.add_argument("--budget", type=float, default=50, help="epochs one run may spend, in full trials' epochs")
    parser.add_argument(
        "--problems",
        nargs="+",
        type=_problem_name,
        help=f"{DIGITS} or any mf-prior-bench Hartmann problem (mfh3_*, mfh6_*: good, moderate, bad, terrible); "
        f"default: {' '.join(PROBLEMS)}, or with --replot every problem in the traces",
    )
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="runs at once (processes)")
    parser.add_argument("--plot", type=Path, default=ROOT / "docs" / "multifidelity.png")
    parser.add_argument(
        "--traces",
        type=Path,
        default=ROOT / "bench" / "results" / "multifidelity.json",
        help="where every run's trace is written (read, with --replot)",
    )
    parser.add_argument("--replot", action="store_true", help="print the tables and draw the plot from --traces")
    parser.add_argument(
        "--add-traces",
        nargs="+",
        type=Path,
        default=[],
        metavar="PATH",
        help="other runs' traces (same budget), reported with these, e.g. DEHB's, run in its own environment",
    )
    parser.add_argument(
        "--methods",
        nargs="+",
        choices=[*METHODS, *PEERS],
        help=f"default: {', '.join(DEFAULT_METHODS)}, or with --replot every method in the traces",
    )
    parser.add_argument(
        "--min-resource",
        type=int,
        default=_RESOURCES["min_resource"],
        help="the ladder's first rung, for every method that has one",
    )
    parser.add_argument("--reduction-factor", type=int, default=_RESOURCES["reduction_factor"])
    parser.add_argument(
        "--brackets",
        type=int,
        default=_DEFAULT_ASHA["brackets"],
        help=f"ASHA's brackets in {AUTOML_DEFAULT!r}",
    )
    parser.add_argument(
        "--learn-from",
        choices=("last", "best", "rung", "none"),
        help=f"what the tuner learns from a trial that a stopper ended, for every method (default: last, and rung "
        f"for {AUTOML_DEFAULT!r}, as docs/config.md recommends)",
    )
    parser.add_argument(
        "--tpe-args",
        type=json.loads,
        default={},
        metavar="JSON",
        help='NNI\'s tpe_args for our TPE methods, e.g. \'{"constant_liar_type": "best"}\'',
    )
    parser.add_argument(
        "--compare",
        nargs=2,
        metavar="METHOD",
        help="also say, per checkpoint, how sure the difference between two methods' medians is (any two methods "
        "in the traces, such as the named variants in bench/results/multifidelity_tried*.json)",
    )
    args = parser.parse_args()
    if not args.replot and DEHB in (args.methods or []) and importlib.util.find_spec("dehb") is None:
        parser.error(
            "DEHB needs the dehb package, which pins numpy<2: run DEHB from an environment of its own "
            "(make bench-multifidelity makes one) and report its traces with the others' through --add-traces"
        )
    return args


def _problem_name(name: str) -> str:
    """`name` if the bench can run it: the digits MLP or one of mf-prior-bench's Hartmann problems."""
    if name == DIGITS:
        return name
    try:
        from mfpbench.get import _mapping
    except ImportError as exc:
        raise argparse.ArgumentTypeError(f"{name}: mf-prior-bench is not installed ({exc})") from exc
    hartmann = sorted(key for key in _mapping if key.startswith(("mfh3", "mfh6")))
    if name not in hartmann:
        raise argparse.ArgumentTypeError(f"unknown problem {name!r}: use {DIGITS} or one of {', '.join(hartmann)}")
    return name


def _configure_methods(args: argparse.Namespace) -> None:
    """The ladder, TPE arguments and what stoppers' tuners learn from, set before the worker processes fork, so
    that they inherit them."""
    _RESOURCES.update(min_resource=args.min_resource, reduction_factor=args.reduction_factor)
    _DEFAULT_ASHA.update(_RESOURCES, brackets=args.brackets)
    _TPE_ARGS.update(args.tpe_args)
    for _tuner, stopper in METHODS.values():
        if stopper is not None:
            stopper["learn_from"] = args.learn_from or stopper.get("learn_from", "last")


def _run_and_save(args: argparse.Namespace) -> dict[str, Any]:
    """Every (problem, method, seed) run, in parallel; their traces, also written to --traces."""
    runs = [
        (problem, method, seed)
        for problem in args.problems or PROBLEMS
        for method in args.methods or DEFAULT_METHODS
        for seed in range(args.first_seed, args.first_seed + args.seeds)
    ]
    with ProcessPoolExecutor(args.jobs) as pool:
        done = list(pool.map(_run, runs, [args.trials] * len(runs), [args.budget] * len(runs)))
    saved = {
        "seeds": args.seeds,
        "trials": args.trials,
        "budget": args.budget,
        "runs": [
            {
                "problem": name,
                "method": method,
                "seed": seed,
                "epochs": epochs,
                "trace": trace,
                "proposed": proposed,
            }
            for (name, method, seed), (epochs, trace, proposed) in zip(runs, done, strict=True)
        ],
    }
    args.traces.parent.mkdir(parents=True, exist_ok=True)
    args.traces.write_text(json.dumps(saved) + "\n")
    return saved


def _collect(
    runs: list[dict[str, Any]],
) -> tuple[dict[tuple[str, str], list[Trace]], dict[tuple[str, str], list[Trace]], dict[str, int]]:
    """The saved runs grouped by (problem, method): their traces, their proposals' traces, and each problem's
    epoch budget."""
    results: dict[tuple[str, str], list[Trace]] = {}
    proposals: dict[tuple[str, str], list[Trace]] = {}
    budgets: dict[str, int] = {}
    for run in runs:
        results.setdefault((run["problem"], run["method"]), []).append([tuple(point) for point in run["trace"]])
        if run.get("proposed") is not None:
            proposals.setdefault((run["problem"], run["method"]), []).append(
                [tuple(point) for point in run["proposed"]]
            )
        budgets[run["problem"]] = run["epochs"]
    return results, proposals, budgets


def _report(
    args: argparse.Namespace,
    saved: dict[str, Any],
    results: dict[tuple[str, str], list[Trace]],
    proposals: dict[tuple[str, str], list[Trace]],
    budgets: dict[str, int],
) -> None:
    """Print the tables (found, proposed in time, reaching Random, the comparison) and draw the plot."""
    problems = list(budgets)
    print(
        f"Median regret of the best configuration evaluated at full fidelity (lower is better; for {DIGITS}, "
        f"the validation error), {saved['seeds']} seeds, {WORKERS} workers, at most {saved['trials']} trials, "
        f"a budget of {saved['budget']:g} full trials' epochs.\n"
    )
    for name in problems:
        print(_table(name, {m: runs for (p, m), runs in results.items() if p == name}, budgets[name]))
    _print_proposals(problems, proposals, budgets, saved["budget"])
    if any(m == "Random" for _p, m in results):
        print(_reaches_random(problems, results, budgets))
    if args.compare:
        missing = [m for m in args.compare if not any(method == m for _p, method in results)]
        if missing:
            known = sorted({method for _p, method in results})
            sys.exit(f"--compare: no runs of {', '.join(missing)} in these traces; they hold {', '.join(known)}")
        print(_comparison(args.compare, problems, results, budgets))
    if any(m == AUTOML_DEFAULT for _p, m in results):
        print(_against_the_peers(problems, results, budgets))
    _plot(args.plot, problems, results, budgets)


def _print_proposals(
    problems: list[str], proposals: dict[tuple[str, str], list[Trace]], budgets: dict[str, int], budget: float
) -> None:
    """The tables of what a clairvoyant stopper could have found from each method's proposals, if there are any."""
    if proposals:
        print(
            f"Median regret of the best configuration each method proposed early enough to run all its epochs "
            f"by the checkpoint, that is {WORKERS} x a full trial's epochs before it (with every worker busy, "
            f"that is when it would end): what a clairvoyant stopper could have found from the same proposals.\n"
        )
    for name in problems:
        rows = {
            m: [_in_time(t, round(budgets[name] / budget)) for t in runs]
            for (p, m), runs in proposals.items()
            if p == name
        }
        if rows:
            print(_table(name, rows, budgets[name]))


@dataclass
class Problem:
    """A search space, the epochs of a full trial, the learning curve and the best value there is."""

    space: dict[str, Any]
    epochs: int
    curve: Callable[[dict[str, Any], int], float]
    optimum: float


def problem(name: str, seed: int) -> Problem:
    """One of PROBLEMS; the seed picks mf-prior-bench's noise, or the digits MLP's weights and batch order."""
    if name == DIGITS:
        from digits_curve import EPOCHS, SPACE, DigitsCurve

        return Problem(SPACE, EPOCHS, DigitsCurve(seed), 0.0)
    import mfpbench

    bench = mfpbench.get(name, seed=seed)

    def curve(params: dict[str, Any], epoch: int) -> float:
        return float(bench.query(params, at=epoch).value.value)

    return Problem(nni_space(bench.space), bench.fidelity_range[1], curve, bench.metric_optimums["value"].value)


def _run(run: tuple[str, str, int], trials: int, budget: float) -> tuple[int, Trace, Trace | None]:
    """One method on one problem with one seed: the epochs it could spend, its trace, and its proposals' trace
    (None for the digits MLP, whose full-fidelity value costs a whole training)."""
    name, method, seed = run
    task = problem(name, seed)
    proposals = None if name == DIGITS else Proposals(task)
    if proposals is not None:
        task = replace(task, curve=proposals)
    epochs = int(budget * task.epochs)
    if method in (OPTUNA, OPTUNA_HYPERBAND):
        trace = _run_optuna(task, method, trials, epochs, seed)
    elif method == DEHB:
        trace = _run_dehb(task, name, trials, epochs, seed)
    else:
        trace = _run_automl(task, METHODS[method], trials, epochs, seed)
    return (
        epochs,
        [(spent, value - task.optimum) for spent, value in trace],
        None if proposals is None else proposals.trace,
    )


class Proposals:
    """A problem's curve that also notes each configuration it starts: the epochs spent before it began, and its
    regret at full fidelity. `trace` keeps the improvements. Both runners call the curve once per epoch run, epoch 1
    first, so the calls count the epochs spent."""

    def __init__(self, task: Problem) -> None:
        self.task = task
        self.spent = 0
        self.trace: Trace = []

    def __call__(self, params: dict[str, Any], epoch: int) -> float:
        if epoch == 1:
            _improve(self.trace, self.spent, self.task.curve(params, self.task.epochs) - self.task.optimum)
        self.spent += 1
        return self.task.curve(params, epoch)


def _in_time(proposed: Trace, epochs: int) -> Trace:
    """`proposed` moved to when each configuration would have run all `epochs`, WORKERS busy all along."""
    return [(spent + WORKERS * epochs, regret) for spent, regret in proposed]


def _run_automl(task: Problem, method: tuple[str, dict[str, Any] | None], trials: int, epochs: int, seed: int) -> Trace:
    from automl.config.model import build_config
    from automl.launchers.simulated import SimulatedLauncher, simulate
    from automl.tuners import create_tuner

    tuner_name, stopper = method
    if stopper is not None and stopper["name"] in ("ASHA", "Hyperband"):
        stopper = {**stopper, "args": {**stopper["args"], "max_resource": task.epochs}}
    with tempfile.TemporaryDirectory() as tmp:
        raw = {
            "name": "multifidelity",
            "command": "true",
            "concurrency": WORKERS,
            "max_trials": trials,
            "search_space": task.space,
            "objective": {"mode": "minimize"},
            "tuner": {"name": tuner_name, "args": {"seed": seed, **_tuner_args(tuner_name)}},
            "stopper": stopper,
        }
        config = build_config(raw, Path(tmp), "multifidelity")
        tuner = create_tuner(config.tuner.name, config.tuner.args, config.search_space, config.objective.mode)
        launcher = SimulatedLauncher(task.curve, epochs=task.epochs)
        trace: Trace = []

        def follow(event: str, data: dict[str, Any]) -> None:
            if event == "trial_metric" and data["kind"] == "intermediate" and data["step"] == task.epochs:
                _improve(trace, launcher.epochs_run, data["value"])

        sim = simulate(Path(tmp) / "home", config, tuner, launcher, listeners=(follow,), max_epochs=epochs)
        sim.store.close()
    return trace


def _tuner_args(tuner_name: str) -> dict[str, Any]:
    return {"tpe_args": _TPE_ARGS} if tuner_name == "TPE" and _TPE_ARGS else {}


def _run_optuna(task: Problem, method: str, trials: int, epochs: int, seed: int) -> Trace:
    """WORKERS trials at a time, each advancing one epoch per tick; a pruned or finished one makes room."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if method == OPTUNA:
        pruner = optuna.pruners.SuccessiveHalvingPruner(**_RESOURCES)
    else:
        pruner = optuna.pruners.HyperbandPruner(max_resource=task.epochs, **_RESOURCES)
    study = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(seed=seed), pruner=pruner)
    distributions = {name: _optuna_distribution(optuna, spec) for name, spec in task.space.items()}
    trace: Trace = []
    running: list[tuple[Any, int]] = []
    started = spent = 0
    while spent < epochs and (running or started < trials):
        while len(running) < WORKERS and started < trials:
            running.append((study.ask(distributions), 0))
            started += 1
        still = []
        for trial, done in running:
            epoch = done + 1
            value = task.curve(trial.params, epoch)
            spent += 1
            trial.report(value, epoch)
            if epoch == task.epochs:
                study.tell(trial, value)
                _improve(trace, spent, value)
            elif trial.should_prune():
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            else:
                still.append((trial, epoch))
        running = still
    return trace


def _run_dehb(task: Problem, name: str, trials: int, epochs: int, seed: int) -> Trace:
    """DEHB's ask/tell loop over WORKERS workers: a job at fidelity b trains a fresh configuration for b epochs
    (rounded), one epoch per tick, and tells DEHB the value at the last one. Its fidelities are max_resource / eta^k
    down to min_resource, for the same min_resource, max_resource and eta as the ladder."""
    import mfpbench
    from dehb import DEHB as Dehb

    with tempfile.TemporaryDirectory() as tmp:
        optimizer = Dehb(
            cs=mfpbench.get(name, seed=seed).space,
            min_fidelity=_RESOURCES["min_resource"],
            max_fidelity=task.epochs,
            eta=_RESOURCES["reduction_factor"],
            n_workers=1,
            seed=seed,
            output_path=tmp,
            save_freq="end",
            log_level="ERROR",
        )
        trace: Trace = []
        running: list[tuple[dict[str, Any], dict[str, Any], int, int]] = []  # job, params, epochs to run, done
        started = spent = 0
        while spent < epochs and (running or started < trials):
            while len(running) < WORKERS and started < trials:
                job = optimizer.ask()
                params = dict(job["config"])
                running.append((job, params, round(job["fidelity"]), 0))
                started += 1
            still = []
            for job, params, target, done in running:
                value = task.curve(params, done + 1)
                spent += 1
                if done + 1 < target:
                    still.append((job, params, target, done + 1))
                    continue
                optimizer.tell(job, {"fitness": value, "cost": target})
                if target == task.epochs:
                    _improve(trace, spent, value)
            running = still
    return trace


def nni_space(config_space: Any) -> dict[str, Any]:
    """An NNI search space for a ConfigSpace space without conditions (floats, integers, categoricals)."""
    import ConfigSpace as CS

    space: dict[str, Any] = {}
    for hp in config_space.values():
        if isinstance(hp, CS.UniformFloatHyperparameter):
            space[hp.name] = {"_type": "loguniform" if hp.log else "uniform", "_value": [hp.lower, hp.upper]}
        elif isinstance(hp, CS.UniformIntegerHyperparameter) and not hp.log:
            space[hp.name] = {"_type": "randint", "_value": [hp.lower, hp.upper + 1]}
        elif isinstance(hp, CS.CategoricalHyperparameter):
            space[hp.name] = {"_type": "choice", "_value": list(hp.choices)}
        else:
            raise ValueError(f"{hp.name}: {type(hp).__name__} has no NNI equivalent here")
    return space


def _optuna_distribution(optuna: Any, spec: dict[str, Any]) -> Any:
    kind, values = spec["_type"], spec["_value"]
    if kind in ("uniform", "loguniform"):
        return optuna.distributions.FloatDistribution(values[0], values[1], log=kind == "loguniform")
    if kind == "randint":
        return optuna.distributions.IntDistribution(values[0], values[1] - 1)
    return optuna.distributions.CategoricalDistribution(values)


def _improve(trace: Trace, spent: int, value: float) -> None:
    if not trace or value < trace[-1][1]:
        trace.append((spent, value))


def best_at(trace: Trace, spent: float) -> float:
    """The best regret reached within `spent` epochs (infinite before the first full-fidelity result)."""
    best = math.inf
    for at, value in trace:
        if at > spent:
            break
        best = value
    return best


def _reaches_random(problems: list[str], results: dict[tuple[str, str], list[Trace]], budgets: dict[str, int]) -> str:
    """Per problem and method, the first share of the budget (to 0.1%) at which the method's median is at or below
    Random's median at the end of the budget."""
    lines = [
        "Share of the budget at which each method's median first reaches Random's final median (- for never)\n",
        "| problem | method | reaches Random's final at |",
        "|---|---|---|",
    ]
    for problem in problems:
        if (problem, "Random") not in results:
            continue
        epochs = budgets[problem]
        target = statistics.median(best_at(t, epochs) for t in results[(problem, "Random")])
        for (p, method), runs in results.items():
            if p != problem or method == "Random":
                continue
            share = next(
                (
                    i / 1000
                    for i in range(1, 1001)
                    if statistics.median(best_at(t, i / 1000 * epochs) for t in runs) <= target
                ),
                None,
            )
            lines.append(f"| {problem} | {method} | {'-' if share is None else f'{share:.1%}'} |")
    return "\n".join(lines) + "\n"


def _against_the_peers(
    problems: list[str], results: dict[tuple[str, str], list[Trace]], budgets: dict[str, int]
) -> str:
    """`automl default` against the strongest peer (the one whose median is the best of the peers in the most
    (problem, checkpoint from 20%) cases) and Random: the medians and the two-sided Mann-Whitney U p-value at
    each checkpoint, and how often automl default's median is ahead of the peer's from 20% on."""
    from scipy.stats import mannwhitneyu

    def values(problem: str, method: str, fraction: float) -> list[float]:
        return [best_at(t, fraction * budgets[problem]) for t in results[(problem, method)]]

    problems = [p for p in problems if (p, AUTOML_DEFAULT) in results]
    peers = [m for m in PEERS if all((p, m) in results for p in problems)]
    later = [(p, f) for p in problems for f in CHECKPOINTS if f >= 0.2]
    wins = {
        m: sum(min(peers, key=lambda peer: statistics.median(values(p, peer, f))) == m for p, f in later) for m in peers
    }
    strongest = max(peers, key=lambda m: wins[m]) if peers else None
    others = [m for m in (strongest, "Random") if m is not None and all((p, m) in results for p in problems)]
    lines = [
        f"{AUTOML_DEFAULT} against " + " and ".join(others) + f" (the strongest peer: best of the peers in {wins}"
        " cases from 20%): medians and two-sided Mann-Whitney p (< 0.05: a significant difference)\n",
        "| problem | budget | " + AUTOML_DEFAULT + " | " + " | ".join(f"{m} | p" for m in others) + " |",
        "|---|---|---|" + "---|---|" * len(others),
    ]
    ahead = 0
    for problem in problems:
        for fraction in CHECKPOINTS:
            ours = values(problem, AUTOML_DEFAULT, fraction)
            cells = [f"{statistics.median(ours):.3f}"]
            for other in others:
                theirs = values(problem, other, fraction)
                finite = not any(math.isinf(v) for v in ours + theirs)
                p = mannwhitneyu(ours, theirs, alternative="two-sided").pvalue if finite else math.nan
                cells += [f"{statistics.median(theirs):.3f}", f"{p:.2f}{_significance(p, ours, theirs)}"]
            if strongest is not None and fraction >= 0.2:
                ahead += statistics.median(ours) < statistics.median(values(problem, strongest, fraction))
            lines.append(f"| {problem} | {int(fraction * 100)}% | " + " | ".join(cells) + " |")
    if strongest is not None:
        low, high = _ahead_interval(problems, results, budgets, strongest)
        lines.append(
            f"\n{AUTOML_DEFAULT}'s median is ahead of {strongest}'s in {ahead} of {len(later)} cases from 20% "
            f"(90% of seed resamples: {low} to {high})."
        )
    return "\n".join(lines) + "\n"


def _ahead_interval(
    problems: list[str], results: dict[tuple[str, str], list[Trace]], budgets: dict[str, int], peer: str
) -> tuple[int, int]:
    """How far the count of cases from 20% where automl default's median is ahead of `peer`'s moves with the
    seeds: its 5th and 95th percentiles over 1,000 draws of each method's runs on each problem, with
    replacement."""
    import random

    rng = random.Random(0)
    counts = []
    for _ in range(1000):
        count = 0
        for problem in problems:
            ours, theirs = results[(problem, AUTOML_DEFAULT)], results[(problem, peer)]
            ours, theirs = rng.choices(ours, k=len(ours)), rng.choices(theirs, k=len(theirs))
            for fraction in (f for f in CHECKPOINTS if f >= 0.2):
                at = fraction * budgets[problem]
                count += statistics.median(best_at(t, at) for t in ours) < statistics.median(
                    best_at(t, at) for t in theirs
                )
        counts.append(count)
    counts.sort()
    return counts[50], counts[949]


def _significance(p: float, ours: list[float], theirs: list[float]) -> str:
    """' (ahead)' or ' (behind)' when p < 0.05, by which median is lower; else nothing."""
    if not p < 0.05:
        return ""
    return " (ahead)" if statistics.median(ours) < statistics.median(theirs) else " (behind)"


def _comparison(
    methods: list[str], problems: list[str], results: dict[tuple[str, str], list[Trace]], budgets: dict[str, int]
) -> str:
    """Per problem and checkpoint: both medians, a bootstrap 95% interval for their difference (2,000 resamples
    of each method's seeds) and the two-sided Mann-Whitney U p-value."""
    import random

    from scipy.stats import mannwhitneyu

    first, second = methods
    rng = random.Random(0)
    lines = [
        f"{first} minus {second}: median regret, and how sure the difference is (a 95% interval that "
        "holds 0, or a large p, means the seeds cannot tell them apart)\n",
        "| problem | budget | " + first + " | " + second + " | difference, 95% interval | p |",
        "|---|---|---|---|---|---|",
    ]
    for problem in problems:
        if (problem, first) not in results or (problem, second) not in results:
            continue
        a_runs, b_runs = results[(problem, first)], results[(problem, second)]
        for fraction in CHECKPOINTS:
            at = fraction * budgets[problem]
            a = [best_at(t, at) for t in a_runs]
            b = [best_at(t, at) for t in b_runs]
            if any(math.isinf(v) for v in a + b):
                continue  # a run without a full-fidelity result yet: no difference to speak of
            differences = sorted(
                statistics.median(rng.choices(a, k=len(a))) - statistics.median(rng.choices(b, k=len(b)))
                for _ in range(2000)
            )
            p = mannwhitneyu(a, b, alternative="two-sided").pvalue
            lines.append(
                f"| {problem} | {int(fraction * 100)}% | {statistics.median(a):.3f} | "
                f"{statistics.median(b):.3f} | [{differences[50]:.3f}, {differences[1949]:.3f}] | {p:.2f} |"
            )
    return "\n".join(lines) + "\n"


def _table(problem: str, traces: dict[str, list[Trace]], epochs: int) -> str:
    header = "| " + problem + " | " + " | ".join(f"{int(f * 100)}% ({int(f * epochs)} ep)" for f in CHECKPOINTS) + " |"
    lines = [header, "|" + "---|" * (len(CHECKPOINTS) + 1)]
    for method, runs in traces.items():
        cells = [statistics.median(best_at(t, f * epochs) for t in runs) for f in CHECKPOINTS]
        lines.append(f"| {method} | " + " | ".join("-" if math.isinf(c) else f"{c:.4f}" for c in cells) + " |")
    return "\n".join(lines) + "\n"


def _plot(
    path: Path, problems: list[str], results: dict[tuple[str, str], list[Trace]], budgets: dict[str, int]
) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot written")
        return
    columns = 3
    rows = -(-(len(problems) + 1) // columns)  # a free cell for the legend
    figure, axes = plt.subplots(rows, columns, figsize=(5 * columns, 4 * rows), squeeze=False)
    cells = [ax for row in axes for ax in row]
    for ax, problem in zip(cells[: len(problems)], problems, strict=True):
        grid = [budgets[problem] * (i + 1) / 200 for i in range(200)]
        for (p, method), runs in results.items():
            if p == problem:
                ax.plot(grid, [statistics.median(best_at(t, x) for t in runs) for x in grid], label=method)
        ax.set(
            title=problem,
            xlabel="epochs spent",
            yscale="log",
            ylabel="median validation error" if problem == DIGITS else "median regret",
        )
    for ax in cells[len(problems) :]:
        ax.axis("off")
    cells[-1].legend(*cells[0].get_legend_handles_labels(), loc="center")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    print(f"plot written to {path}")


if __name__ == "__main__":
    main()
