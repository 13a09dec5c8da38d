"""The journey matcher and classifier: pure logic over synthetic packets."""

from __future__ import annotations

import socket

import pytest

from netsleuth.model import EventDetail, EventKind, MacChange, NetEvent, PortDetail
from netsleuth.packets.journey import (
    JourneyMatcher,
    bridge_history,
    escaped_nat_finding,
    match,
    stale_gateway_finding,
)
from netsleuth.packets.model import ArpPacket, DnsPacket, Fate, Interface, Journey
from netsleuth_testing.frames import qname_wire

CLIENT, CLIENT2, GW, NAT, SERVER = (
    "198.18.0.10",
    "198.18.0.11",
    "198.18.0.1",
    "198.18.255.1",
    "198.18.255.2",
)
CMAC = bytes.fromhex("02aa00000010")
OLD = bytes.fromhex("020000000001")  # the departed port's MAC, the bridge's for a while
BASE = bytes.fromhex("be0000000001")  # the bridge's MAC from its container port
T0 = 1_800_000_000_000_000_000
MS = 1_000_000

PORT, BRIDGE, UPLINK = 0, 1, 2
IFACES = [
    Interface(0, "vc0", "h", "client"),
    Interface(1, "labbr0", "h", "bridge"),
    Interface(2, "uplink0", "h", "uplink"),
]
NO_ROLES = [Interface(i.number, i.name) for i in IFACES]


def ip(text: str) -> bytes:
    return socket.inet_aton(text)


def q(
    t: int,
    iface: int,
    dns_id: int,
    *,
    src: str = CLIENT,
    sport: int = 4000,
    dmac: bytes = BASE,
    name: str = "www.lab.test",
) -> DnsPacket:
    return DnsPacket(
        T0 + t,
        iface,
        CMAC,
        dmac,
        ip(src),
        ip(SERVER),
        sport,
        53,
        dns_id,
        0x0100,
        qname_wire(name)[:-1],
        1,
    )


def r(
    t: int,
    iface: int,
    dns_id: int,
    *,
    dst: str = CLIENT,
    dport: int = 4000,
    rcode: int = 0,
    name: str = "www.lab.test",
) -> DnsPacket:
    return DnsPacket(
        T0 + t,
        iface,
        BASE,
        CMAC,
        ip(SERVER),
        ip(dst),
        53,
        dport,
        dns_id,
        0x8180 | rcode,
        qname_wire(name)[:-1],
        1,
    )


def arp(
    t: int, sender_mac: bytes, sender: str = GW, target: str = CLIENT, op: int = 1
) -> ArpPacket:
    return ArpPacket(T0 + t, PORT, op, sender_mac, ip(sender), b"\0" * 6, ip(target))


def answered_trip(t: int, dns_id: int, **kw: object) -> list[DnsPacket]:
    return [
        q(t, PORT, dns_id),
        q(t, BRIDGE, dns_id),
        q(t + MS, UPLINK, dns_id, src=NAT),
        r(t + 2 * MS, UPLINK, dns_id, dst=NAT),
        r(t + 3 * MS, BRIDGE, dns_id),
        r(t + 3 * MS, PORT, dns_id),
    ]


def run(packets: list, ifaces: list[Interface] = IFACES, **kw: object) -> list[Journey]:
    return sorted(
        match(sorted(packets, key=lambda p: p.ts_ns), ifaces, **kw), key=lambda j: j.ts_ns
    )


def test_answered_journey_follows_nat() -> None:
    [j] = run(answered_trip(0, 7))
    assert j.verdict is Fate.ANSWERED
    assert j.client == f"{CLIENT}:4000"
    assert j.nat_source == f"{NAT}:4000"
    assert j.origin == "vc0"
    assert j.latency_ns == 3 * MS
    assert j.rcode == 0
    assert [h.iface for h in j.hops] == ["vc0", "labbr0", "uplink0", "uplink0", "labbr0", "vc0"]
    assert [h.nat for h in j.hops] == [False, False, True, True, False, False]
    assert j.mac is None


def test_each_failure_class() -> None:
    packets = [
        # NATed out, never answered
        q(0, PORT, 1),
        q(0, BRIDGE, 1),
        q(MS, UPLINK, 1, src=NAT),
        # answered upstream, lost on the way back
        q(100 * MS, PORT, 2),
        q(100 * MS, BRIDGE, 2),
        q(101 * MS, UPLINK, 2, src=NAT),
        r(102 * MS, UPLINK, 2, dst=NAT, rcode=3),
        # never left the bridge
        q(200 * MS, PORT, 3, dmac=OLD),
    ]
    verdicts = [(j.dns_id, j.verdict) for j in run(packets)]
    assert verdicts == [
        (1, Fate.NAT_UNANSWERED),
        (2, Fate.LOST_ON_RETURN),
        (3, Fate.NEVER_LEFT_BRIDGE),
    ]
    lost = run(packets)[1]
    assert lost.rcode == 3


def test_without_uplink_capture_the_class_is_unanswered() -> None:
    [j] = run([q(0, PORT, 3, dmac=OLD)], [IFACES[0]])
    assert j.verdict is Fate.UNANSWERED


def test_uplink_is_inferred_from_nat_without_roles() -> None:
    # a query that escaped NAT on an interface where NATed ones were seen still "left"
    packets = [*answered_trip(0, 1), q(100 * MS, PORT, 2), q(100 * MS, UPLINK, 2)]
    js = run(packets, NO_ROLES)
    assert [j.verdict for j in js] == [Fate.ANSWERED, Fate.ESCAPED_NAT]
    assert js[1].nat_source == f"{CLIENT}:4000"  # left as itself
    assert js[1].reused_entry_age_ns is None  # nothing in the capture explains it


def escaped_after_flood(gap_ms: int) -> list[DnsPacket]:
    """A query flooded to a departed MAC (never left), an answered one that shows
    the uplink NATs, and ``gap_ms`` later a query from the flooded one's port
    that leaves the uplink untranslated."""
    return [
        q(0, PORT, 1, sport=5000, dmac=OLD),
        *answered_trip(100 * MS, 2),
        q(gap_ms * MS, PORT, 3, sport=5000),
        q(gap_ms * MS, BRIDGE, 3, sport=5000),
        q(gap_ms * MS + MS, UPLINK, 3, sport=5000),
    ]


def test_escaped_nat_names_the_reused_entry_of_a_flooded_query() -> None:
    js = run(escaped_after_flood(12_000))
    assert [j.verdict for j in js] == [
        Fate.NEVER_LEFT_BRIDGE,
        Fate.ANSWERED,
        Fate.ESCAPED_NAT,
    ]
    assert js[2].reused_entry_age_ns == 12_000 * MS
    finding = escaped_nat_finding(js)
    assert finding is not None and finding.rule == "stale-conntrack-entry"
    assert finding.evidence["reusing_a_never_left_query_entry"] == 1
    assert finding.evidence["entry_age_s_max"] == 12.0


def test_an_entry_older_than_the_conntrack_timeout_is_not_blamed() -> None:
    js = run(escaped_after_flood(31_000))
    assert js[2].verdict is Fate.ESCAPED_NAT
    assert js[2].reused_entry_age_ns is None
    finding = escaped_nat_finding(js)
    assert finding is not None and finding.rule == "escaped-nat"
    # a shorter timeout (a host with nf_conntrack_udp_timeout=10) does not blame 12 s either
    short = run(escaped_after_flood(12_000), conntrack_timeout_ns=10_000 * MS)
    assert short[2].reused_entry_age_ns is None


def test_untranslated_where_nothing_is_natted_is_not_escaped() -> None:
    # a routed host (no NAT anywhere): unanswered after leaving is the upstream's doing
    packets = [q(0, PORT, 1), q(0, BRIDGE, 1), q(MS, UPLINK, 1)]
    [j] = run(packets)
    assert j.verdict is Fate.NAT_UNANSWERED
    assert escaped_nat_finding([j]) is None


def test_stale_gateway_from_arp_after_the_query() -> None:
    packets = [
        arp(0, BASE),  # the bridge with its own MAC
        arp(10 * MS, OLD),  # a low-MAC port joined: the bridge announces its MAC
        *answered_trip(20 * MS, 1),
        q(3000 * MS, PORT, 2, dmac=OLD),  # the port left meanwhile: nobody owns OLD
        q(3050 * MS, PORT, 3, dmac=OLD),
        arp(9000 * MS, BASE),  # the neighbour entry failed; broadcast ARP finds the MAC
    ]
    js = [j for j in run(packets) if j.verdict is Fate.NEVER_LEFT_BRIDGE]
    assert len(js) == 2
    for j in js:
        assert j.mac is not None
        assert j.mac.dst_mac == "02:00:00:00:00:01"
        assert j.mac.bridge_mac == "be:00:00:00:00:01"
        assert j.mac.bridge_mac_source == "arp"
        assert j.mac.former_bridge_mac
        assert j.mac.port_owned is None
        assert j.mac.stale_gateway
    finding = stale_gateway_finding(js, "labbr0")
    assert finding is not None
    assert finding.rule == "stale-gateway"
    assert finding.evidence["destination_macs"] == {"02:00:00:00:00:01": 2}
    assert "labbr0" in finding.fix


def test_never_left_to_the_current_mac_is_not_stale() -> None:
    packets = [
        *answered_trip(0, 1),
        arp(0, BASE),
        q(100 * MS, PORT, 2, dmac=BASE),
        arp(9000 * MS, BASE, op=2),
    ]
    j = run(packets)[-1]
    assert j.verdict is Fate.NEVER_LEFT_BRIDGE
    assert j.mac is not None
    assert j.mac.bridge_mac == "be:00:00:00:00:01"
    assert not j.mac.stale_gateway
    assert stale_gateway_finding([j]) is None


def test_store_history_gives_exact_bridge_mac_and_port_owner() -> None:
    def ev(t: int, ek: EventKind, ifname: str, subject: str, detail: EventDetail) -> NetEvent:
        return NetEvent(T0 + t, 0, "host", ek, ifname, subject, detail)

    events = [
        ev(5 * MS, EventKind.PORT_JOINED, "vch1", "labbr0", PortDetail("02:00:00:00:00:01")),
        ev(
            5 * MS,
            EventKind.MAC_CHANGED,
            "labbr0",
            "",
            MacChange(old="be:00:00:00:00:01", new="02:00:00:00:00:01", kind="bridge"),
        ),
        ev(2000 * MS, EventKind.PORT_LEFT, "vch1", "labbr0", PortDetail("02:00:00:00:00:01")),
        ev(
            2000 * MS,
            EventKind.MAC_CHANGED,
            "labbr0",
            "",
            MacChange(old="02:00:00:00:00:01", new="be:00:00:00:00:01", kind="bridge"),
        ),
    ]
    history = bridge_history(events)
    assert history is not None
    assert history.bridge == "labbr0"
    assert history.mac_at(T0 + 1000 * MS) == ("02:00:00:00:00:01", T0 + 5 * MS)
    assert history.owner_at("02:00:00:00:00:01", T0 + 1000 * MS) == (True, "vch1")
    assert history.owner_at("02:00:00:00:00:01", T0 + 3000 * MS) == (False, "vch1")
    packets = [*answered_trip(0, 1), q(3000 * MS, PORT, 2, dmac=OLD)]
    js = run(packets, history=history)
    j = js[-1]
    assert j.verdict is Fate.NEVER_LEFT_BRIDGE
    assert j.mac is not None
    assert j.mac.bridge_mac == "be:00:00:00:00:01"
    assert j.mac.bridge_mac_source == "store"
    assert j.mac.bridge_mac_since_ns == T0 + 2000 * MS
    assert (j.mac.port_owned, j.mac.port) == (False, "vch1")
    assert j.mac.stale_gateway


def test_bridge_history_needs_one_bridge() -> None:
    events = [
        NetEvent(1, 0, "host", EventKind.PORT_JOINED, "a", "br0", PortDetail("02:00:00:00:00:01")),
        NetEvent(2, 0, "host", EventKind.PORT_JOINED, "b", "br1", PortDetail("02:00:00:00:00:02")),
    ]
    assert bridge_history(events) is None
    assert bridge_history(events, "br1") is not None


def test_two_clients_with_the_same_id_and_name_are_two_journeys() -> None:
    packets = [q(0, PORT, 9), q(MS, PORT, 9, src=CLIENT2), r(2 * MS, PORT, 9, dst=CLIENT2)]
    js = run(packets, [IFACES[0]])
    assert [(j.client, j.verdict) for j in js] == [
        (f"{CLIENT}:4000", Fate.UNANSWERED),
        (f"{CLIENT2}:4000", Fate.ANSWERED),
    ]


def test_a_retry_after_the_attempt_gap_is_a_new_journey() -> None:
    packets = [q(0, PORT, 5), q(1000 * MS, PORT, 5), r(1001 * MS, PORT, 5)]
    js = run(packets, [IFACES[0]])
    assert [j.verdict for j in js] == [Fate.UNANSWERED, Fate.ANSWERED]


def test_window_separates_reused_ids() -> None:
    packets = [*answered_trip(0, 1), *answered_trip(6000 * MS, 1)]
    js = run(packets)
    assert [j.verdict for j in js] == [Fate.ANSWERED, Fate.ANSWERED]


def test_orphan_answer_is_counted() -> None:
    m = JourneyMatcher(IFACES)
    assert m.feed(r(0, PORT, 77)) == []
    assert m.finish() == []
    assert m.summary.orphan_answers == 1
    assert m.summary.journeys == 0


def test_origin_on_equal_timestamps_prefers_the_client_side() -> None:
    # the bridge copy first in feed order, same timestamp: the port is still the origin
    packets = [
        q(0, BRIDGE, 1),
        q(0, PORT, 1),
        q(MS, UPLINK, 1, src=NAT),
        r(2 * MS, UPLINK, 1, dst=NAT),
        r(3 * MS, BRIDGE, 1),
    ]
    m = JourneyMatcher(IFACES)
    js = [*m.feed_all(packets), *m.finish()]
    assert js[0].origin == "vc0"
    assert js[0].verdict is Fate.LOST_ON_RETURN


def test_host_query_on_the_uplink_itself_is_answered() -> None:
    packets = [q(0, UPLINK, 4, src=NAT), r(MS, UPLINK, 4, dst=NAT)]
    [j] = run(packets)
    assert j.verdict is Fate.ANSWERED


@pytest.mark.parametrize("keep_answered", [True, False])
def test_counts_do_not_depend_on_keeping_answered(keep_answered: bool) -> None:
    packets = sorted(
        [p for n in range(200) for p in answered_trip(n * 10 * MS, n)]
        + [q(5000 * MS + n * MS, PORT, 1000 + n, dmac=OLD) for n in range(20)],
        key=lambda p: p.ts_ns,
    )
    m = JourneyMatcher(IFACES, keep_answered=keep_answered)
    js = [*m.feed_all(packets), *m.finish()]
    assert m.summary.journeys == 220
    assert m.summary.by_verdict["answered"] == 200
    assert m.summary.by_verdict["never-left-bridge"] == 20
    assert len(js) == (220 if keep_answered else 20)


def test_previous_mac_still_owned_by_a_port_is_stale_unless_sent_through_it() -> None:
    """A container's port gave the bridge its MAC; a lower-MAC port joins and the
    bridge takes that one. Queries to the previous MAC that never left are the
    stale gateway too (the host drops them as "for another host") — except from
    the owner's own port, where the host would have taken them."""

    def ev(t: int, ek: EventKind, ifname: str, subject: str, detail: EventDetail) -> NetEvent:
        return NetEvent(T0 + t, 0, "host", ek, ifname, subject, detail)

    low = "02:00:00:00:00:01"
    history = bridge_history(
        [
            ev(1 * MS, EventKind.PORT_JOINED, "vc3", "labbr0", PortDetail("be:00:00:00:00:01")),
            ev(5 * MS, EventKind.PORT_JOINED, "vch1", "labbr0", PortDetail(low)),
            ev(5 * MS, EventKind.MAC_CHANGED, "labbr0", "", MacChange("be:00:00:00:00:01", low)),
        ]
    )
    assert history is not None
    packets = [*answered_trip(0, 1), q(1000 * MS, PORT, 2, dmac=BASE)]
    j = run(packets, history=history)[-1]
    assert j.verdict is Fate.NEVER_LEFT_BRIDGE
    assert j.mac is not None
    assert (j.mac.port_owned, j.mac.port, j.mac.bridge_mac) == (True, "vc3", low)
    assert j.mac.stale_gateway
    owner_side = [Interface(0, "vc3", "h", "client"), *IFACES[1:]]
    j = run(packets, owner_side, history=history)[-1]
    assert j.mac is not None and j.mac.port == "vc3"
    assert not j.mac.stale_gateway
