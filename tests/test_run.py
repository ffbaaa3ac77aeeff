"""`automl run` end to end: real CLI, real trial subprocesses, real SQLite."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import psutil
import pytest

from automl.store import Store
from tests.helpers import REPO, automl, run_experiment_id, show, wait_until, write_config, write_trial

BEHAVIOURS = {
    "ok": "trial.report(0.5)\ntrial.report_final(1.0)",
    "exit3": "sys.exit(3)",
    "raise": "raise ValueError('boom')",
    "signal": "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)",
    "hang": "time.sleep(60)",
    "nofinal": "trial.report(1.0)",
    "nan": "trial.report(float('nan'))\ntime.sleep(60)",
    "string": "import os\nopen(os.environ['AUTOML_METRICS_FILE'], 'a')"
    '.write(\'{"kind": "final", "value": "abc"}\\n\')\ntime.sleep(60)',
    "nokey": "trial.report_final({'loss': 2.0})",
}
REASONS = {
    "ok": None,
    "exit3": "exited with code 3",
    "raise": "exited with code 1: ValueError: boom",
    "signal": "killed by signal SIGKILL",
    "hang": "timed out after 2 s",
    "nofinal": "exited without reporting a final result",
    "nan": "step 1: metric is nan",
    "string": "final result: non-numeric metric 'abc'",
    "nokey": "reported metrics ['loss'] lack the objective 'default'",
}


def test_plain_python_trials_run_and_everything_is_stored(tmp_path, home):
    write_trial(
        tmp_path,
        """
        import json, os
        json.dump({k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "CUDA_VISIBLE_DEVICES", "AUTOML_TRIAL_DIR")},
                  open(os.path.join(trial.trial_dir(), "env.json"), "w"))
        for step in range(3):
            trial.report({"default": params["x"] * step, "k": params["k"]})
        print("hello from", trial.trial_id())
        trial.report_final(params["x"])
    """,
    )
    result = automl("run", str(write_config(tmp_path, max_trials=5, concurrency=2, resources={"cpus": 3})))
    assert result.returncode == 0, result.stderr
    exp_id = run_experiment_id(result.stdout)
    view = show(exp_id)
    assert view["status"] == "done"
    assert [t["status"] for t in view["trials"]] == ["succeeded"] * 5
    assert len({json.dumps(t["params"], sort_keys=True) for t in view["trials"]}) == 5
    for t in view["trials"]:
        assert t["value"] == t["params"]["x"] and t["steps"] == 3 and t["gpus"] == []
        assert t["started"] <= t["ended"]
    assert view["best"]["value"] == max(t["value"] for t in view["trials"])
    trial_dir = home / "experiments" / exp_id / "trials" / "1"
    assert sorted(p.name for p in trial_dir.iterdir()) == [
        "cpu_times",
        "env.json",
        "exit_code",
        "metrics.jsonl",
        "params.json",
        "stderr.log",
        "stdout.log",
    ]
    assert json.loads((trial_dir / "env.json").read_text()) == {
        "OMP_NUM_THREADS": "3",
        "CUDA_VISIBLE_DEVICES": "",
        "AUTOML_TRIAL_DIR": str(trial_dir),
    }
    assert (trial_dir / "stdout.log").read_text() == "hello from 1\n"
    assert (trial_dir / "exit_code").read_text() == "0\n"
    store = Store(home, readonly=True)
    assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    metrics = store.metrics(exp_id, 1)
    assert [(m.kind, m.step) for m in metrics] == [
        ("intermediate", 1),
        ("intermediate", 2),
        ("intermediate", 3),
        ("final", None),
    ]
    assert metrics[-1].value == view["trials"][0]["params"]["x"]


def test_every_way_a_trial_fails_is_recorded_and_the_experiment_goes_on(tmp_path, home):
    body = "behaviour = params['b']\n" + "".join(
        f"if behaviour == {name!r}:\n" + "".join(f"    {line}\n" for line in code.splitlines())
        for name, code in BEHAVIOURS.items()
    )
    write_trial(tmp_path, body)
    config = write_config(
        tmp_path,
        search_space={"b": {"_type": "choice", "_value": list(BEHAVIOURS)}},
        tuner={"name": "GridSearch"},
        max_trials=20,
        concurrency=3,
        trial_timeout=2,
    )
    result = automl("run", str(config))
    assert result.returncode == 0, result.stderr
    view = show(run_experiment_id(result.stdout))
    assert view["status"] == "done"
    outcome = {t["params"]["b"]: (t["status"], t["error"]) for t in view["trials"]}
    assert set(outcome) == set(BEHAVIOURS)
    for name, reason in REASONS.items():
        status, error = outcome[name]
        if reason is None:
            assert (status, error) == ("succeeded", None)
        else:
            assert status == "failed" and error is not None and reason in error, (name, error)
    nan_trial = next(t for t in view["trials"] if t["params"]["b"] == "nan")
    assert nan_trial["ended"] - nan_trial["started"] < 30, "a NaN metric ends the trial at once"


def test_failed_trials_are_retried_with_the_same_params(tmp_path, home):
    write_trial(
        tmp_path,
        """
        from pathlib import Path
        marker = Path(f"attempted-{params['k']}")
        if not marker.exists():
            marker.touch()
            sys.exit(1)
        trial.report_final(params['k'])
    """,
    )
    config = write_config(
        tmp_path,
        search_space={"k": {"_type": "choice", "_value": [1, 2]}},
        tuner={"name": "GridSearch"},
        max_trials=2,
        concurrency=1,
        retries=1,
    )
    result = automl("run", str(config))
    assert result.returncode == 0, result.stderr
    trials = show(run_experiment_id(result.stdout))["trials"]
    assert [(t["status"], t["attempt"], t["retry_of"]) for t in trials] == [
        ("failed", 0, None),
        ("succeeded", 1, 1),
        ("failed", 0, None),
        ("succeeded", 1, 3),
    ]
    assert trials[0]["params"] == trials[1]["params"] and trials[2]["params"] == trials[3]["params"]


def test_grid_search_ends_the_experiment_when_the_grid_is_exhausted(tmp_path, home):
    write_trial(tmp_path, "trial.report_final(params['k'])\n")
    config = write_config(
        tmp_path,
        search_space={"k": {"_type": "choice", "_value": [1, 2, 3]}},
        tuner={"name": "GridSearch"},
        max_trials=10,
    )
    result = automl("run", str(config))
    assert result.returncode == 0, result.stderr
    view = show(run_experiment_id(result.stdout))
    assert view["status"] == "done"
    assert sorted(t["params"]["k"] for t in view["trials"]) == [1, 2, 3]


def test_max_duration_ends_the_experiment_and_kills_running_trials(tmp_path, home):
    write_trial(tmp_path, "time.sleep(60)\n")
    result = automl("run", str(write_config(tmp_path, max_trials=10, max_duration=2)))
    assert result.returncode == 0, result.stderr
    view = show(run_experiment_id(result.stdout))
    assert view["status"] == "done"
    assert [(t["status"], t["error"]) for t in view["trials"]] == [("killed", "max_duration reached")] * 2


def test_ctrl_c_ends_every_trial_process_tree_and_leaves_the_store_consistent(tmp_path, home):
    write_trial(
        tmp_path,
        """
        import os, subprocess
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
        open(os.path.join(trial.trial_dir(), "child.pid"), "w").write(str(child.pid))
        trial.report(0.1)
        time.sleep(120)
    """,
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "automl", "run", str(write_config(tmp_path, max_trials=4))],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    exp_dir = wait_until(
        lambda: next((home / "experiments").glob("*"), None) if (home / "experiments").exists() else None,
        "the experiment's folder",
        timeout=60,
    )
    pid_files = wait_until(
        lambda: (lambda f: f if len(f) == 2 else None)(list(exp_dir.glob("trials/*/child.pid"))),
        "both trials' child.pid",
        timeout=60,
    )
    wait_until(
        lambda: all(t["steps"] == 1 for t in show(exp_dir.name)["trials"]) or None, "a step of each trial", timeout=60
    )
    pids = [int(f.read_text()) for f in pid_files]
    trial_pids = [t.pid for t in Store(home, readonly=True).trials(exp_dir.name)]
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "stopping: ending 2 running trial(s)" in err
    view = show(exp_dir.name)
    assert view["status"] == "stopped"
    assert [(t["status"], t["error"], t["steps"]) for t in view["trials"]] == [("killed", "stopped by user", 1)] * 2
    for pid in pids + trial_pids:
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_an_unmodified_nni_trial_script_runs_from_an_nni_config(tmp_path, home):
    (tmp_path / "nni_trial.py").write_text(
        "import nni\n"
        "params = {'lr': 0.1}\n"
        "params.update(nni.get_next_parameter())\n"
        "for epoch in range(4):\n"
        "    nni.report_intermediate_result({'default': params['lr'] * epoch, 'loss': 1.0 / (epoch + 1)})\n"
        "nni.report_final_result(params['lr'])\n"
    )
    (tmp_path / "search_space.json").write_text(json.dumps({"lr": {"_type": "loguniform", "_value": [1e-3, 1]}}))
    (tmp_path / "config.yml").write_text(
        "experimentName: nni-migrated\nsearchSpaceFile: search_space.json\ntrialCommand: python3 nni_trial.py\n"
        "trialCodeDirectory: .\ntrialConcurrency: 2\nmaxTrialNumber: 3\n"
        "tuner:\n  name: TPE\n  classArgs:\n    optimize_mode: maximize\ntrainingService:\n  platform: local\n"
    )
    result = automl("run", str(tmp_path / "config.yml"))
    assert result.returncode == 0, result.stderr
    view = show("nni-migrated")
    assert [t["status"] for t in view["trials"]] == ["succeeded"] * 3, view["trials"]
    for t in view["trials"]:
        assert t["steps"] == 4 and t["value"] == pytest.approx(t["params"]["lr"])
    steps = [m.step for m in Store(home, readonly=True).metrics(view["id"], 1) if m.kind == "intermediate"]
    assert steps == [1, 2, 3, 4]


@pytest.mark.slow
def test_a_pytorch_trial_trains_and_reports_every_epoch(tmp_path, home):
    config = write_config(
        tmp_path,
        command=[sys.executable, str(REPO / "trials" / "digits_mlp.py")],
        search_space={
            "epochs": {"_type": "choice", "_value": [3]},
            "lr": {"_type": "loguniform", "_value": [1e-3, 1e-2]},
        },
        max_trials=2,
        concurrency=2,
        objective={"metric": "default", "mode": "maximize"},
    )
    result = automl("run", str(config))
    assert result.returncode == 0, result.stderr
    view = show(run_experiment_id(result.stdout))
    assert [t["status"] for t in view["trials"]] == ["succeeded"] * 2, view["trials"]
    for t in view["trials"]:
        assert t["steps"] == 3 and 0.5 < t["value"] <= 1.0


def test_show_and_ls_on_unknown_or_missing_experiments(home):
    assert automl("ls").stdout.startswith("no experiments yet")
    assert json.loads(automl("ls", "--json").stdout) == []
    result = automl("show", "nope")
    assert result.returncode == 2 and "no experiment 'nope'" in result.stderr
    assert not home.exists()
