"""CounterDiff: only what rose becomes an event; a counter that went down
starts over; gauges are never subtracted, kept beside conntrack rises and
near the table's limit (pure)."""

from __future__ import annotations

from netsleuth.events.counters import PRESSURE, PRESSURE_EVERY, CounterDiff
from netsleuth.model import CounterSample

BASE = {"snmp.Udp.NoPorts": 10, "ct.insert_failed": 5, "link.eth0.rx_dropped": 0}


def test_first_reading_is_the_baseline() -> None:
    assert CounterDiff().update(BASE, 1.0) is None


def test_nothing_changed_writes_nothing() -> None:
    diff = CounterDiff()
    diff.update(BASE, 0.0)
    assert all(diff.update(BASE, 1.0) is None for _ in range(30))


def test_only_what_rose_and_by_how_much() -> None:
    diff = CounterDiff()
    diff.update(BASE, 0.0)
    sample = diff.update({**BASE, "snmp.Udp.NoPorts": 13, "link.eth0.rx_dropped": 2}, 1.02)
    assert sample == CounterSample(1.02, {"snmp.Udp.NoPorts": 3, "link.eth0.rx_dropped": 2}, {})
    # Measured from the previous reading, not from the first.
    sample = diff.update({**BASE, "snmp.Udp.NoPorts": 14, "link.eth0.rx_dropped": 2}, 1.0)
    assert sample is not None and sample.deltas == {"snmp.Udp.NoPorts": 1}


def test_a_counter_going_down_starts_over() -> None:
    diff = CounterDiff()
    diff.update({"snmp.Udp.NoPorts": 1000}, 0.0)
    assert diff.update({"snmp.Udp.NoPorts": 4}, 1.0) is None  # re-created: no negative delta
    sample = diff.update({"snmp.Udp.NoPorts": 6}, 1.0)
    assert sample is not None and sample.deltas == {"snmp.Udp.NoPorts": 2}


def test_a_new_counter_is_a_baseline_not_a_rise() -> None:
    diff = CounterDiff()
    diff.update(BASE, 0.0)
    assert diff.update({**BASE, "link.veth9.rx_dropped": 50}, 1.0) is None  # a link appeared
    sample = diff.update({**BASE, "link.veth9.rx_dropped": 51}, 1.0)
    assert sample is not None and sample.deltas == {"link.veth9.rx_dropped": 1}
    # A counter that disappears (the link went) is not a fall of anything else.
    assert diff.update(BASE, 1.0) is None


def test_gauges_are_not_deltas() -> None:
    diff = CounterDiff()
    diff.update({**BASE, "ct.count": 100, "ct.max": 1000, "arp.entries": 3}, 0.0)
    # The table filling up (below the pressure level) is not a rise of anything.
    assert diff.update({**BASE, "ct.count": 400, "ct.max": 1000, "arp.entries": 9}, 1.0) is None


def test_a_conntrack_rise_keeps_the_table_level_beside_it() -> None:
    diff = CounterDiff()
    diff.update({**BASE, "ct.count": 100, "ct.max": 1000}, 0.0)
    sample = diff.update({**BASE, "ct.insert_failed": 7, "ct.count": 120, "ct.max": 1000}, 1.0)
    assert sample == CounterSample(1.0, {"ct.insert_failed": 2}, {"ct.count": 120, "ct.max": 1000})
    # A rise elsewhere does not carry the conntrack level.
    sample = diff.update(
        {**BASE, "ct.insert_failed": 7, "ct.count": 120, "ct.max": 1000, "snmp.Udp.NoPorts": 11},
        1.0,
    )
    assert sample is not None and sample.levels == {}


def test_an_arp_rise_keeps_the_entries() -> None:
    diff = CounterDiff()
    diff.update({"arp.table_fulls": 0, "arp.entries": 1020}, 0.0)
    sample = diff.update({"arp.table_fulls": 4, "arp.entries": 1024}, 1.0)
    assert sample == CounterSample(1.0, {"arp.table_fulls": 4}, {"arp.entries": 1024})


def test_a_full_table_is_written_without_a_rise_but_not_every_second() -> None:
    limit = 1000
    high = int(PRESSURE * limit) + 5
    diff = CounterDiff()
    diff.update({"ct.count": high, "ct.max": limit, "ct.drop": 0}, 0.0)
    written = []
    for i in range(3 * PRESSURE_EVERY):
        sample = diff.update({"ct.count": high, "ct.max": limit, "ct.drop": 0}, 1.0)
        if sample is not None:
            assert sample.deltas == {}
            assert sample.levels == {"ct.count": high, "ct.max": limit}
            written.append(i)
    # Right away (near the limit), then once per PRESSURE_EVERY samples.
    assert written == [0, PRESSURE_EVERY, 2 * PRESSURE_EVERY]


def test_a_full_table_moving_is_written_at_once() -> None:
    limit = 1000
    diff = CounterDiff()
    diff.update({"ct.count": 950, "ct.max": limit}, 0.0)
    assert diff.update({"ct.count": 950, "ct.max": limit}, 1.0) is not None
    assert diff.update({"ct.count": 952, "ct.max": limit}, 1.0) is None  # < 1 % of the limit
    sample = diff.update({"ct.count": 990, "ct.max": limit}, 1.0)  # moved by 4 %
    assert sample is not None and sample.levels == {"ct.count": 990, "ct.max": limit}


def test_below_the_pressure_level_a_level_alone_is_never_written() -> None:
    diff = CounterDiff()
    low = int(PRESSURE * 1000) - 10
    diff.update({"ct.count": low, "ct.max": 1000}, 0.0)
    assert all(
        diff.update({"ct.count": low + (i % 2) * 5, "ct.max": 1000}, 1.0) is None
        for i in range(3 * PRESSURE_EVERY)
    )
