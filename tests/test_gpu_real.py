"""On a real NVIDIA GPU: a PyTorch trial placed through NVML, its memory learned, its energy and cost accounted.
Skipped where NVML finds no GPU."""

from __future__ import annotations

import json
import os

import pytest

from tests.helpers import automl, show, submit, wait_for_status, write_config, write_trial

pytestmark = pytest.mark.gpu

TORCH_TRIAL = """
import os
import torch

x = torch.randn(params['mib'] * 2**18, device='cuda')  # params['mib'] MiB of float32
a = torch.randn(2048, 2048, device='cuda')
deadline = time.time() + params['seconds']
while time.time() < deadline:
    a = (a @ a).tanh()
torch.cuda.synchronize()
trial.report_final(float(a.sum().item() == a.sum().item()))
with open(os.path.join(trial.trial_dir(), 'visible.json'), 'w') as f:
    json.dump({'visible': os.environ['CUDA_VISIBLE_DEVICES'], 'devices': torch.cuda.device_count()}, f)
"""


def _gpu_count() -> int:
    if os.environ.get("AUTOML_SIM_GPUS"):
        return 0
    from automl.gpu.probe import open_probe

    probe = open_probe()
    return 0 if probe is None else probe.count()


@pytest.fixture
def gpu_daemon(home):
    if not _gpu_count():
        pytest.skip("no NVIDIA GPU (NVML finds none)")
    pytest.importorskip("torch")
    import torch

    if not torch.cuda.is_available():
        pytest.skip("this torch build has no CUDA")
    automl("daemon", "start", check=True)
    yield home
    automl("daemon", "stop")


def test_a_pytorch_trial_on_a_real_gpu_is_placed_learned_and_costed(tmp_path, gpu_daemon):
    write_trial(tmp_path, "import json\n" + TORCH_TRIAL)
    config = write_config(
        tmp_path,
        max_trials=3,
        concurrency=2,
        resources={"gpus": 1},
        search_space={
            "mib": {"_type": "choice", "_value": [1024]},
            "seconds": {"_type": "choice", "_value": [6]},
            "seed": {"_type": "uniform", "_value": [0, 1]},
        },
        gpu={"indices": [0], "max_trials_per_gpu": 2, "use_active_gpu": True, "max_utilization": 100},
        cost={"price_per_kwh": 0.3, "price_per_gpu_hour": 2.5},
    )
    exp_id = submit(config)
    view = wait_for_status(exp_id, "done", "failed", timeout=300)
    trials = view["trials"]
    assert [t["status"] for t in trials] == ["succeeded"] * 3, [t["error"] for t in trials]
    for t in trials:
        visible = json.loads(
            (gpu_daemon / "experiments" / exp_id / "trials" / str(t["id"]) / "visible.json").read_text()
        )
        assert visible == {"visible": "0", "devices": 1} and t["gpus"] == [0]
        assert t["gpu_memory_mib"] >= 1024, "the 1 GiB tensor is in the trial's measured peak"
        assert t["energy_j"] > 0 and t["gpu_seconds"] > 0
        assert t["cost"] == pytest.approx(t["energy_j"] / 3.6e6 * 0.3 + t["gpu_seconds"] / 3600 * 2.5, abs=1e-5)
    first, second, third = trials
    assert second["started"] >= first["ended"], "until the first trial's memory is known, a trial gets its own GPU"
    assert second["started"] < third["ended"] and third["started"] < second["ended"], (
        "with the need learned, two trials share the GPU (max_trials_per_gpu 2)"
    )
    assert view["cost"]["kwh"] > 0
    assert show(exp_id)["cost"]["gpu_seconds"] == pytest.approx(sum(t["gpu_seconds"] for t in trials), abs=1e-3)


def test_gpus_reports_the_real_devices(gpu_daemon):
    report = json.loads(automl("gpus", "--json", check=True).stdout)
    assert len(report["gpus"]) == _gpu_count()
    for gpu in report["gpus"]:
        assert gpu["memory_total_mib"] > 0 and gpu["name"]
        assert gpu["energy_j"] is None or gpu["energy_j"] > 0
