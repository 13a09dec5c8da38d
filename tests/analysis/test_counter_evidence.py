"""Counter rises against outages (pure): rises during every outage give a
small p-value, rises unrelated to them (or everywhere) do not; link counters
are weighed per counter across links; outages of several targets at once
count once."""

from __future__ import annotations

import pytest

from netsleuth.analysis.counters import (
    SAME_OUTAGE_NS,
    TOLERANCE_NS,
    CounterRise,
    counter_evidence,
    counter_rises,
    family_of,
    weigh,
)
from netsleuth.analysis.episodes import Episode
from netsleuth.model import CounterSample, EventKind, MacChange, NetEvent

S = 1_000_000_000
T0 = 1_700_000_000 * S
SPAN = 100 * S
OUTAGE_STARTS = (10, 30, 50, 70, 90)  # seconds after T0, 2 s each


def outages(target: str = "netns:c0", starts: tuple[float, ...] = OUTAGE_STARTS) -> list[Episode]:
    return [
        Episode(target, T0 + int(s * S), T0 + int((s + 2) * S), 20, 20, T0 + int((s + 2.1) * S))
        for s in starts
    ]


def rise(at_s: float, counter: str = "ct.insert_failed", *, netns: str = "host", delta: int = 3,
         window_s: float = 1.0, levels: dict[str, int] | None = None) -> CounterRise:  # fmt: skip
    """A rise in the sample window that ends ``at_s`` seconds after T0."""
    end = T0 + int(at_s * S)
    return CounterRise(netns, counter, end - int(window_s * S), end, delta, levels or {})


def counters_event(at_s: float, netns: str, deltas: dict[str, int], seconds: float = 1.0,
                   levels: dict[str, int] | None = None) -> NetEvent:  # fmt: skip
    wall = T0 + int(at_s * S)
    sample = CounterSample(seconds, deltas, levels or {})
    return NetEvent(wall, wall, netns, EventKind.COUNTERS, "", "", sample)


def test_a_rise_during_every_outage_is_unlikely_by_accident() -> None:
    rises = [rise(s + 1.5) for s in OUTAGE_STARTS]
    ev = weigh("ct.insert_failed", rises, outages(), SPAN)
    assert (ev.outages, ev.met) == (5, 5)
    assert ev.p_value is not None and ev.p_value < 0.001
    assert ev.total == 15
    assert ev.where == ("host",)


def test_rises_between_outages_meet_none() -> None:
    rises = [rise(s) for s in (20, 40, 60, 80)]
    ev = weigh("ct.insert_failed", rises, outages(), SPAN)
    assert (ev.outages, ev.met, ev.p_value) == (5, 0, 1.0)


def test_a_counter_rising_all_the_time_meets_every_outage_and_proves_nothing() -> None:
    rises = [rise(s) for s in range(1, 101)]
    ev = weigh("snmp.Udp.NoPorts", rises, outages(), SPAN)
    assert ev.met == 5
    assert ev.p_value is not None and ev.p_value > 0.5


def test_some_outages_met_lie_between() -> None:
    all_met = weigh("x", [rise(s + 1.5) for s in OUTAGE_STARTS], outages(), SPAN).p_value
    two_met = weigh("x", [rise(s + 1.5) for s in OUTAGE_STARTS[:2]], outages(), SPAN)
    assert two_met.met == 2
    assert all_met is not None and two_met.p_value is not None
    assert all_met < two_met.p_value < 1.0


def test_tolerance_on_either_side_of_the_sample_window() -> None:
    ep = outages(starts=(50,))
    start_s = 50.0
    slack = TOLERANCE_NS / S
    just_before = rise(start_s - slack + 0.05)  # window ends just inside the slack
    too_early = rise(start_s - slack - 0.05)
    recovered_s = 52.1
    just_after = rise(recovered_s + 1 + slack - 0.05)  # window starts within slack of recovery
    too_late = rise(recovered_s + 1 + slack + 0.05)
    assert weigh("x", [just_before], ep, SPAN).met == 1
    assert weigh("x", [too_early], ep, SPAN).met == 0
    assert weigh("x", [just_after], ep, SPAN).met == 1
    assert weigh("x", [too_late], ep, SPAN).met == 0


def test_outages_of_several_targets_at_once_count_once() -> None:
    together = outages("netns:c0") + [
        Episode(e.target.replace("c0", "c1"), e.start_ns + SAME_OUTAGE_NS // 2,
                e.end_ns, 5, 5, e.recovered_ns)
        for e in outages("netns:c0")
    ]  # fmt: skip
    ev = weigh("x", [rise(s + 1.5) for s in OUTAGE_STARTS], together, SPAN)
    assert (ev.outages, ev.met) == (5, 5)
    # A rise meeting only the second target's outage still meets that outage.
    late = [
        Episode("netns:c1", T0 + 70 * S + SAME_OUTAGE_NS // 2, T0 + 75 * S, 5, 5, T0 + 76 * S),
        *outages("netns:c0", (70,)),
    ]
    assert weigh("x", [rise(74.5)], late, SPAN).met == 1


def test_no_outage_or_no_rise_has_no_p_value() -> None:
    assert weigh("x", [rise(5)], [], SPAN).p_value is None
    ev = weigh("x", [], outages(), SPAN)
    assert (ev.outages, ev.met, ev.p_value) == (5, 0, None)


def test_an_outage_still_failing_at_the_end_is_weighed_to_its_last_failure() -> None:
    open_ended = [Episode("netns:c0", T0 + 90 * S, T0 + 99 * S, 90, 90, None)]
    assert weigh("x", [rise(98)], open_ended, SPAN).met == 1


def test_link_counters_are_grouped_by_family_across_links_and_namespaces() -> None:
    events = [
        counters_event(10, "host", {"link.veth1.rx_otherhost_dropped": 4, "ct.drop": 1}),
        counters_event(11, "netns:c0", {"link.eth0.rx_otherhost_dropped": 9}, seconds=0.5),
        counters_event(12, "host", {"link.veth2.rx_otherhost_dropped": 1}),
        counters_event(13, "host", {"link.veth1.rx_dropped": 2, "link.eth0.100.rx_dropped": 5}),
        NetEvent(T0, T0, "host", EventKind.MAC_CHANGED, "br0", "br0", MacChange("a", "b")),
    ]
    rises = counter_rises(events)
    assert set(rises) == {"link.rx_otherhost_dropped", "link.rx_dropped", "ct.drop"}
    other = rises["link.rx_otherhost_dropped"]
    assert [r.counter for r in other] == [
        "link.veth1.rx_otherhost_dropped",
        "link.eth0.rx_otherhost_dropped",
        "link.veth2.rx_otherhost_dropped",
    ]
    assert other[1].start_ns == T0 + 10 * S + S // 2  # its own window: 0.5 s back
    ev = weigh("link.rx_otherhost_dropped", other, outages(starts=(10,)), SPAN)
    assert ev.total == 14
    assert ev.where == ("netns:c0 eth0", "host veth1", "host veth2")  # by total
    assert ev.met == 1
    assert ev.to_json()["where"] == ["netns:c0 eth0", "host veth1", "host veth2"]
    dropped = weigh("link.rx_dropped", rises["link.rx_dropped"], outages(), SPAN)
    assert dropped.where == ("host eth0.100", "host veth1")  # a VLAN link keeps its dot


def test_counter_evidence_weighs_every_family_that_rose() -> None:
    events = [counters_event(s + 1.5, "host", {"ct.insert_failed": 2}) for s in OUTAGE_STARTS]
    events += [counters_event(s, "host", {"snmp.Udp.NoPorts": 1}) for s in (20, 40, 60)]
    got = counter_evidence(events, outages(), SPAN)
    assert set(got) == {"ct.insert_failed", "snmp.Udp.NoPorts"}
    assert got["ct.insert_failed"].met == 5
    assert got["ct.insert_failed"].p_value is not None
    assert got["ct.insert_failed"].p_value < 0.001
    assert got["snmp.Udp.NoPorts"].met == 0


def test_fill_of_the_conntrack_table_beside_a_rise() -> None:
    rises = [
        rise(10, levels={"ct.count": 500, "ct.max": 1000}),
        rise(20, levels={"ct.count": 990, "ct.max": 1000}),
        rise(30),
    ]
    ev = weigh("ct.insert_failed", rises, outages(), SPAN)
    assert ev.max_fill() == 0.99
    assert weigh("ct.drop", [rise(30)], outages(), SPAN).max_fill() is None


def test_family_of() -> None:
    assert family_of("link.eth0.rx_dropped") == "link.rx_dropped"
    assert family_of("link.br-ci.1.rx_dropped") == "link.rx_dropped"  # a name with a dot
    assert family_of("snmp.Udp.RcvbufErrors") == "snmp.Udp.RcvbufErrors"
    assert family_of("ct.insert_failed") == "ct.insert_failed"


def test_a_long_tail_is_bounded_by_the_binomial_with_the_largest_chance() -> None:
    from scipy.stats import binom

    from netsleuth.analysis.counters import EXACT_TAIL_MAX, tail

    qs = [0.01 + 0.0001 * i for i in range(EXACT_TAIL_MAX + 100)]
    bound = tail(qs, 20)
    assert bound == pytest.approx(float(binom.sf(19, len(qs), max(qs))))
    assert bound >= tail(qs[:EXACT_TAIL_MAX], 20)  # more trials, larger chances: never smaller
