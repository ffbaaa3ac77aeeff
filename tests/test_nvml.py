"""The simulated GPU fleet: the documented format, other users' processes on a clock, clear errors."""

import json

import pytest

from automl.errors import UserError
from automl.gpu.probe import SimulatedProbe, open_probe
from tests.helpers import FakeClock


def test_foreign_processes_come_and_go_on_the_clock(tmp_path):
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text(
        "gpus:\n- memory_mib: 24576\n  foreign:\n  - {memory_mib: 20000, utilization: 95, start_s: 0, "
        "end_s: null}\n  - {memory_mib: 1000, utilization: 30, start_s: 5, end_s: 10}\n"
        "- {memory_mib: 16384}\n"
    )
    clock = FakeClock()
    probe = SimulatedProbe(fleet, clock)
    assert probe.count() == 2
    first, second = probe.sample()
    assert (first.memory_used_mib, first.utilization, len(first.processes)) == (20000, 95, 1)
    assert (second.memory_used_mib, second.utilization, second.processes) == (0, 0, ())
    clock.now = 7
    assert (probe.sample()[0].memory_used_mib, probe.sample()[0].utilization) == (21000, 100)
    clock.now = 10
    assert probe.sample()[0].memory_used_mib == 20000


def test_the_environment_variable_selects_the_fleet(tmp_path, monkeypatch):
    fleet = tmp_path / "fleet.json"
    fleet.write_text(json.dumps({"gpus": [{"memory_mib": 1}] * 3}))
    monkeypatch.setenv("AUTOML_SIM_GPUS", str(fleet))
    assert open_probe().count() == 3


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{}", 'expected {"gpus"'),
        ('{"gpus": [{"memory_mib": 0}]}', "gpus[0]: needs memory_mib > 0"),
        ('{"gpus": [{"memory_mib": 8, "foreign": [{"memory_mib": 1, "start_s": 5, "end_s": 2}]}]}', "start_s < end_s"),
        ('{"gpus": [{"memory_mib": 8, "foreign": [{"memory_mib": 1, "utilization": 150}]}]}', "utilization"),
        ("{", "cannot read"),
    ],
)
@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_bad_fleet_files_are_clear_errors(tmp_path, text, message, suffix):
    fleet = tmp_path / f"fleet{suffix}"
    fleet.write_text(text)
    with pytest.raises(UserError, match="AUTOML_SIM_GPUS") as e:
        SimulatedProbe(fleet)
    assert message in str(e.value)
