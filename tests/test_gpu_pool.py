"""GPU placement: shares, packing, fairness between experiments, other users' load and memory, learned estimates,
energy split. Runs on a simulated fleet with a hand-driven clock: the scheduler code is the one used on real GPUs."""

import pytest

from automl.config.model import GpuPolicy
from automl.gpu.pool import GpuPool, report
from automl.gpu.probe import SimulatedProbe
from tests.helpers import FakeClock


def _pool(*gpus, clock=None):
    """A pool over simulated GPUs; each argument is a GPU's memory or a (memory, [foreign processes]) pair."""
    clock = clock or FakeClock()
    fleet = {
        "gpus": [{"memory_mib": g} if not isinstance(g, tuple) else {"memory_mib": g[0], "foreign": g[1]} for g in gpus]
    }
    return GpuPool(SimulatedProbe(fleet=fleet, clock=clock), clock=clock), clock


def _slots(pool, gpus=1, running=0, wake=None, **policy):
    policy.setdefault("trial_memory_mib", 1000)
    slots = pool.slots("exp", GpuPolicy(**policy), gpus)
    slots.bind(running=lambda: running, wake=wake or (lambda: None))
    return slots


def _gpus(placement):
    return None if placement is None else placement.gpus


def _run(slots, placement, pid, trial=1):
    """Start a trial on its placement as process `pid` (the simulated fleet then shows its load)."""
    slots.started(placement, ("exp", trial), pid)
    return placement


def test_whole_gpus_are_never_shared_unless_allowed():
    pool, _ = _pool(24576, 24576)
    slots = _slots(pool)
    first, second = slots.acquire(), slots.acquire()
    assert [_gpus(first), _gpus(second), _gpus(slots.acquire())] == [[0], [1], None]
    slots.release(first)
    assert _gpus(slots.acquire()) == [0]
    shared = _slots(_pool(24576)[0], max_trials_per_gpu=2)
    assert [_gpus(shared.acquire()) for _ in range(3)] == [[0], [0], None]


def test_fractions_pack_and_multi_gpu_trials_take_several():
    half = _slots(_pool(24576, 24576)[0], gpus=0.5)
    assert [_gpus(half.acquire()) for _ in range(5)] == [[0], [1], [0], [1], None]
    assert _gpus(_slots(_pool(*[24576] * 4)[0], gpus=2).acquire()) == [0, 1]
    assert _gpus(_slots(_pool(*[24576] * 4)[0], gpus=2, indices=[1, 3]).acquire()) == [1, 3]


def test_experiments_share_one_pool_and_the_one_running_fewer_trials_goes_first():
    pool, _ = _pool(24576)
    woken = []
    busy = _slots(pool, running=3, wake=lambda: woken.append("busy"))
    idle = _slots(pool, running=0, wake=lambda: woken.append("idle"))
    placement = busy.acquire()
    assert _gpus(placement) == [0]
    assert idle.acquire() is None
    busy.release(placement)
    assert "idle" in woken
    assert busy.acquire() is None, "the experiment running fewer trials waits, so it gets the GPU first"
    assert _gpus(idle.acquire()) == [0]


def test_without_gpus_trials_run_on_cpu_and_the_log_says_so_once(caplog):
    pool = GpuPool(None)
    assert _gpus(_slots(pool).acquire()) == []
    assert _gpus(_slots(pool).acquire()) == []
    assert caplog.text.count("trials run on the CPU") == 1
    assert _gpus(_slots(_pool(24576, 24576)[0], gpus=0).acquire()) == []
    assert _gpus(_slots(_pool(24576)[0], gpus=2).acquire()) == []


def test_a_paused_or_ended_experiment_no_longer_holds_others_back():
    pool, _ = _pool(24576)
    gone = _slots(pool, running=0)
    busy = _slots(pool, running=2)
    placement = busy.acquire()
    assert gone.acquire() is None
    busy.release(placement)
    gone.withdraw()
    assert _gpus(busy.acquire()) == [0]


def test_only_waiters_that_could_use_the_free_gpu_are_deferred_to():
    pool, _ = _pool(24576, 24576)
    elsewhere = _slots(pool, indices=[1], running=0)
    here = _slots(pool, indices=[0], running=5)
    taker = _slots(pool, indices=[1], running=0)
    assert _gpus(taker.acquire()) == [1]
    assert elsewhere.acquire() is None
    assert _gpus(here.acquire()) == [0], "the waiter wants GPU 1, which is not the one free"


def test_a_gpu_someone_else_uses_takes_no_trial_until_they_leave():
    pool, clock = _pool((24576, [{"memory_mib": 2000, "utilization": 10, "start_s": 5, "end_s": 20}]), 24576)
    slots = _slots(pool)
    assert _gpus(slots.acquire()) == [0], "GPU 0 is free before the other user arrives"
    slots.release(pool.placements[0])
    clock.now = 6
    assert "other users' processes run on it" in slots.verdicts()[0]
    assert _gpus(slots.acquire()) == [1]
    assert slots.acquire() is None
    clock.now = 20
    pool.sample()
    assert slots.verdicts()[0] is None, "their process ended: the GPU is free at the next sample"
    assert _gpus(slots.acquire()) == [0]


def test_other_users_load_is_averaged_over_the_window():
    foreign = [
        {"memory_mib": 500, "utilization": 0, "start_s": 0, "end_s": None},
        {"memory_mib": 500, "utilization": 90, "start_s": 0, "end_s": 5},
    ]
    pool, clock = _pool((24576, foreign))
    slots = _slots(pool, use_active_gpu=True, max_utilization=30)
    for second in range(7):
        clock.now = second
        pool.sample()
    assert "busy: other users' load" in slots.verdicts()[0], "a quiet second does not make a busy GPU free"
    for second in range(7, 17):
        clock.now = second
        pool.sample()
    assert slots.verdicts()[0] is None, "once the window has passed, the light user no longer blocks it"
    assert _gpus(slots.acquire()) == [0]


def test_free_memory_counts_other_users_and_what_our_trials_reserved():
    pool, _ = _pool((24576, [{"memory_mib": 8000, "utilization": 0}]))
    slots = _slots(pool, use_active_gpu=True, max_trials_per_gpu=4, trial_memory_mib=7000, min_free_memory_mib=0)
    placed = [slots.acquire(), slots.acquire()]
    assert [p.gpus for p in placed] == [[0], [0]]
    assert slots.acquire() is None, "24576 - 8000 - 2 x 7000 leaves 2576 MiB: no room, though nothing allocated yet"
    assert "not enough free memory: 2576 MiB free, 7000 MiB needed" in slots.verdicts()[0]


def test_the_memory_estimate_is_learned_from_earlier_trials_peaks():
    pool, _ = _pool(24576)
    slots = _slots(pool, trial_memory_mib=None, max_trials_per_gpu=4, simulated_load={"memory_mib": 5000})
    first = _run(slots, slots.acquire(), pid=4242)
    assert slots.acquire() is None
    assert "memory need is not known yet" in slots.verdicts()[0]
    pool.sample()
    assert slots.release(first)[1] == 5000
    assert slots.estimate.value == 5500
    placed = [slots.acquire() for _ in range(5)]
    assert [_gpus(p) for p in placed] == [[0], [0], [0], [0], None], "4 x 5500 MiB fit in 24576 MiB"


def test_a_restarted_experiment_keeps_its_reservations():
    pool, _ = _pool(24576)
    slots = _slots(pool, max_trials_per_gpu=2, trial_memory_mib=None)
    slots.estimate.observe(15000)
    slots.claim([0], 15000)
    assert slots.acquire() is None
    assert "not enough free memory" in slots.verdicts()[0]


def test_energy_is_split_by_utilization_and_cost_fields_come_back():
    pool, clock = _pool(24576)
    slots = _slots(pool, max_trials_per_gpu=2)
    busy = _run(slots, slots.acquire(), pid=4001, trial=1)
    light = _run(slots, slots.acquire(), pid=4002, trial=2)
    pool.probe.place(4001, [0], 2000, 60)
    pool.probe.place(4002, [0], 1000, 20)
    pool.sample()
    clock.now = 10
    pool.sample()
    energy_busy, peak_busy = slots.release(busy)
    energy_light, peak_light = slots.release(light)
    assert energy_busy == pytest.approx(3 * energy_light)
    assert energy_busy + energy_light == pytest.approx((60 + 2.4 * 80) * 10)
    assert (peak_busy, peak_light) == (2000, 1000)


def test_report_says_why_each_gpu_would_or_would_not_take_a_trial():
    pool, _ = _pool((24576, [{"memory_mib": 20000, "utilization": 95}]), 8192)
    ours = _slots(pool)
    _run(ours, ours.acquire(), pid=4100)
    pool.sample()
    gpus = report(pool, {"default": _slots(pool)})
    assert [g["takes_trial"] for g in gpus] == [False, False]
    assert "other users' processes" in gpus[0]["reason"]
    assert gpus[1]["reason"].startswith("full: 1 trial(s) of ours")
    owners = [p["owner"] for p in gpus[0]["processes"] + gpus[1]["processes"]]
    assert owners == [None, {"experiment": "exp", "trial": 1}]
