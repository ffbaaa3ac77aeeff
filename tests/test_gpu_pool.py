"""GPU slots: whole GPUs, packed fractions, sharing between experiments, fairness, CPU fallback."""

from automl.gpu_pool import GpuPool


def _slots(pool, gpus, per_gpu=1, indices=None, running=0):
    slots = pool.slots(indices, gpus, per_gpu)
    slots.bind(running=lambda: running, wake=lambda: None)
    return slots


def test_whole_gpus_are_never_shared_unless_allowed():
    pool = GpuPool(2)
    slots = _slots(pool, 1)
    assert [slots.acquire(), slots.acquire(), slots.acquire()] == [[0], [1], None]
    slots.release([0])
    assert slots.acquire() == [0]
    shared = _slots(GpuPool(1), 1, per_gpu=2)
    assert [shared.acquire(), shared.acquire(), shared.acquire()] == [[0], [0], None]


def test_fractions_pack_and_multi_gpu_trials_take_several():
    pool = GpuPool(2)
    half = _slots(pool, 0.5)
    assert [half.acquire() for _ in range(5)] == [[0], [1], [0], [1], None]
    assert _slots(GpuPool(4), 2).acquire() == [0, 1]
    assert _slots(GpuPool(4), 2, indices=[1, 3]).acquire() == [1, 3]


def test_experiments_share_one_pool_and_the_one_running_fewer_trials_goes_first():
    pool = GpuPool(1)
    woken = []
    busy = pool.slots(None, 1, 1)
    busy.bind(running=lambda: 3, wake=lambda: woken.append("busy"))
    idle = pool.slots(None, 1, 1)
    idle.bind(running=lambda: 0, wake=lambda: woken.append("idle"))
    assert busy.acquire() == [0]
    assert idle.acquire() is None
    busy.release([0])
    assert "idle" in woken
    assert busy.acquire() is None, "the experiment running fewer trials waits, so it gets the GPU first"
    assert idle.acquire() == [0]


def test_without_gpus_trials_run_on_cpu(caplog):
    assert _slots(GpuPool(0), 1).acquire() == []
    assert "trials run on the CPU" in caplog.text
    assert _slots(GpuPool(2), 0).acquire() == []
    assert _slots(GpuPool(1), 2).acquire() == []


def test_a_paused_or_ended_experiment_no_longer_holds_others_back():
    pool = GpuPool(1)
    gone = _slots(pool, 1, running=0)
    busy = _slots(pool, 1, running=2)
    assert busy.acquire() == [0]
    assert gone.acquire() is None
    busy.release([0])
    gone.withdraw()
    assert busy.acquire() == [0]


def test_only_waiters_that_could_use_the_free_gpu_are_deferred_to():
    pool = GpuPool(2)
    elsewhere = _slots(pool, 1, indices=[1], running=0)
    here = _slots(pool, 1, indices=[0], running=5)
    taker = _slots(pool, 1, indices=[1], running=0)
    assert taker.acquire() == [1]
    assert elsewhere.acquire() is None
    assert here.acquire() == [0], "the waiter wants GPU 1, which is not the one free"
