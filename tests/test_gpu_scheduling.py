"""GPU scheduling and cost accounting end to end: a real daemon on a simulated fleet whose other users come and go,
real trial processes, and what `show --json` and `automl gpus` report."""

from __future__ import annotations

import json

import pytest

from tests.helpers import automl, show, submit, wait_for_status, wait_until, write_config, write_trial

FOREIGN_UNTIL = 6.0  # seconds after the daemon starts


def _overlapping(trials, t):
    return [o for o in trials if o["gpus"] == t["gpus"] and o["started"] < t["ended"] and t["started"] < o["ended"]]


@pytest.fixture
def fleet(tmp_path, home, monkeypatch):
    path = tmp_path / "fleet.json"
    path.write_text(
        json.dumps(
            {
                "gpus": [
                    {
                        "memory_mib": 24576,
                        "foreign": [{"memory_mib": 20000, "utilization": 95, "start_s": 0, "end_s": FOREIGN_UNTIL}],
                    },
                    {"memory_mib": 16384},
                ]
            }
        )
    )
    monkeypatch.setenv("AUTOML_SIM_GPUS", str(path))
    automl("daemon", "start", check=True)
    yield home
    automl("daemon", "stop")


def test_trials_avoid_a_gpu_while_someone_else_uses_it_and_cost_is_accounted(tmp_path, fleet):
    from automl.control.client import Client

    started = json.loads(automl("daemon", "status", "--json", check=True).stdout)
    assert started["gpus"] == 2
    with Client(fleet / "daemon.sock", timeout=30) as client:
        since = client.request("status")["started"]
        sample = next(client.subscribe(events=["gpu_sample"]))
    gpus = sample["data"]["gpus"]
    assert [(g["index"], g["memory_total_mib"]) for g in gpus] == [(0, 24576), (1, 16384)]
    assert gpus[0]["processes"][0]["owner"] is None and gpus[0]["foreign_utilization"] == 95

    write_trial(tmp_path, "import os\ntime.sleep(1.5)\ntrial.report_final(float(os.environ['CUDA_VISIBLE_DEVICES']))\n")
    config = write_config(
        tmp_path,
        max_trials=6,
        concurrency=2,
        resources={"gpus": 1},
        gpu={"simulated_load": {"memory_mib": 3000, "utilization": 50}},
        cost={"price_per_kwh": 0.5, "price_per_gpu_hour": 2.0, "currency": "EUR"},
    )
    exp_id = submit(config)
    wait_until(lambda: any(t["status"] == "running" for t in show(exp_id)["trials"]), "a running trial")
    report = json.loads(automl("gpus", "--json", check=True).stdout)
    ours = [p["owner"] for g in report["gpus"] for p in g["processes"] if p["owner"]]
    assert ours and all(o["experiment"] == exp_id for o in ours)
    assert report["gpus"][1]["verdicts"][exp_id].startswith("full: 1 trial(s) of ours")
    view = wait_for_status(exp_id, "done")

    trials = view["trials"]
    assert all(t["status"] == "succeeded" and t["gpus"] == [int(t["value"])] for t in trials)
    early = [t for t in trials if t["started"] < since + FOREIGN_UNTIL - 1]
    assert early and all(t["gpus"] == [1] for t in early), "GPU 0 takes no trial while the other user is there"
    assert any(t["gpus"] == [0] for t in trials), "once they left, GPU 0 takes trials again"
    assert all(_overlapping(trials, t) == [t] for t in trials), "never two whole-GPU trials on one GPU"
    for t in trials:
        assert t["gpu_memory_mib"] == 3000
        assert t["gpu_seconds"] == pytest.approx(t["ended"] - t["started"], abs=0.2)
        assert t["energy_j"] > 0
        assert t["cost"] == pytest.approx(t["energy_j"] / 3.6e6 * 0.5 + t["gpu_seconds"] / 3600 * 2.0, abs=1e-5)
    cost = view["cost"]
    assert cost["currency"] == "EUR"
    assert cost["gpu_seconds"] == pytest.approx(sum(t["gpu_seconds"] for t in trials), abs=1e-4)
    assert cost["energy_j"] == pytest.approx(sum(t["energy_j"] for t in trials), abs=1e-4)
    text = automl("show", exp_id, check=True).stdout
    assert "GPU-hours" in text and "EUR" in text


def test_a_trials_cpu_time_and_peak_memory_are_measured(tmp_path, home):
    write_trial(
        tmp_path,
        """
        block = bytearray(200 * 2**20)
        for i in range(0, len(block), 4096):
            block[i] = 1
        deadline = time.process_time() + 1.0
        while time.process_time() < deadline:
            pass
        time.sleep(1.5)
        trial.report_final(1.0)
    """,
    )
    config = write_config(tmp_path, max_trials=1, concurrency=1)
    automl("run", str(config), check=True)
    (t,) = show("test")["trials"]
    assert t["cpu_seconds"] >= 1.0, "the busy second, from the wrapper's record of the whole tree"
    assert t["peak_rss_mib"] >= 200
    assert t["gpus"] == [] and t["gpu_seconds"] == 0 and t["energy_j"] == 0


def test_gpus_without_a_daemon_measures_the_fleet_itself(tmp_path, home, monkeypatch):
    path = tmp_path / "fleet.yaml"
    path.write_text("gpus:\n- memory_mib: 8192\n  foreign: [{memory_mib: 7000, utilization: 20}]\n")
    monkeypatch.setenv("AUTOML_SIM_GPUS", str(path))
    report = json.loads(automl("gpus", "--json", check=True).stdout)
    (gpu,) = report["gpus"]
    assert "no daemon" in report["source"]
    assert gpu["takes_trial"] is False and "other users' processes" in gpu["reason"]
    text = automl("gpus", check=True).stdout
    assert "another user" in text and "7000" in text
