import random

from netsleuth.probes.schedule import Schedule


def test_slots_follow_a_fixed_grid_and_jitter_never_accumulates() -> None:
    sched = Schedule(start_ns=1_000_000_000, rate=20.0, jitter=0.1, rng=random.Random(1))
    dues = [sched.next_due() for _ in range(10_000)]
    interval = 50_000_000
    for k, due in enumerate(dues):
        assert abs(due - (1_000_000_000 + k * interval)) <= 0.05 * interval + 1
    # jitter really moves the attempts, and the last is still on the grid
    assert len({(d - 1_000_000_000) % interval for d in dues}) > 100


def test_without_jitter_slots_are_exact() -> None:
    sched = Schedule(start_ns=0, rate=4.0, jitter=0.0)
    assert [sched.next_due() for _ in range(4)] == [0, 250_000_000, 500_000_000, 750_000_000]
