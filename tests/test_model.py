"""Event details: one type per kind, the JSON the store keeps (the same keys
and values as before they were typed), and what a row that does not fit
reads as."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netsleuth.model import (
    DETAIL_TYPES,
    CounterSample,
    DockerDetail,
    DropDetail,
    EndDetail,
    EventDetail,
    EventKind,
    FdbDetail,
    FirewallChange,
    InvariantDetail,
    LinkDetail,
    MacChange,
    MtuChange,
    NeighChange,
    NetEvent,
    NoteDetail,
    OperChange,
    PortDetail,
    RawDetail,
    RouteDetail,
    StateChange,
    StateKind,
    TargetDetail,
    detail_from_json,
)

MAC, MAC2 = "02:00:00:00:00:01", "02:00:00:00:00:02"

# (kind, detail, the JSON object watch has always stored for it, keys in order)
EXAMPLES: list[tuple[EventKind, EventDetail, dict[str, Any]]] = [
    (
        EventKind.LINK_ADDED,
        LinkDetail("veth", MAC, 1500),
        {"kind": "veth", "mac": MAC, "mtu": 1500},
    ),
    (EventKind.LINK_REMOVED, LinkDetail("veth", MAC), {"kind": "veth", "mac": MAC}),
    (EventKind.PORT_JOINED, PortDetail(MAC), {"mac": MAC}),
    (EventKind.PORT_LEFT, PortDetail(MAC), {"mac": MAC}),
    (
        EventKind.MAC_CHANGED,
        MacChange(MAC2, MAC, "bridge", 1),
        {"old": MAC2, "new": MAC, "kind": "bridge", "addr_assign_type": 1},
    ),
    (
        EventKind.MAC_CHANGED,
        MacChange(MAC2, MAC, "veth", None),
        {"old": MAC2, "new": MAC, "kind": "veth", "addr_assign_type": None},
    ),
    (EventKind.OPER_CHANGED, OperChange("UP", "DOWN"), {"old": "UP", "new": "DOWN"}),
    (EventKind.MTU_CHANGED, MtuChange(1500, 1400), {"old": 1500, "new": 1400}),
    (
        EventKind.NEIGH_CHANGED,
        NeighChange("STALE", MAC, "NONE", ""),
        {"state": "STALE", "lladdr": MAC, "old_state": "NONE", "old_lladdr": ""},
    ),
    (EventKind.FDB_ADDED, FdbDetail(MAC, True), {"mac": MAC, "local": True}),
    (EventKind.FDB_REMOVED, FdbDetail(MAC, False), {"mac": MAC, "local": False}),
    (EventKind.ROUTE_ADDED, RouteDetail("198.18.0.1"), {"gateway": "198.18.0.1"}),
    (EventKind.ROUTE_REMOVED, RouteDetail(""), {"gateway": ""}),
    (
        EventKind.FIREWALL_CHANGED,
        FirewallChange("add", "rule", "add rule ip/nat/post", True),
        {"op": "add", "object": "rule", "summary": "add rule ip/nat/post", "nat": True},
    ),
    (
        EventKind.INVARIANT_VIOLATED,
        InvariantDetail(MAC, MAC2, "br0", False),
        {"gateway_mac": MAC, "neigh_mac": MAC2, "bridge": "br0", "owned_by_port": False},
    ),
    (
        EventKind.INVARIANT_RECOVERED,
        InvariantDetail(MAC, MAC, "br0", True),
        {"gateway_mac": MAC, "neigh_mac": MAC, "bridge": "br0", "owned_by_port": True},
    ),
    (
        EventKind.STATE_ENTERED,
        StateChange(StateKind.GATEWAY_MAC_PORT, "br0", mac=MAC, port="v1"),
        {"state": "gateway-mac-port", "bridge": "br0", "mac": MAC, "port": "v1"},
    ),
    (
        EventKind.STATE_LEFT,
        StateChange(StateKind.ROUTE_MISSING, "br0", link="eth0", note="no address"),
        {"state": "route-missing", "bridge": "br0", "link": "eth0", "note": "no address"},
    ),
    (
        EventKind.TARGET_GONE,
        TargetDetail("namespace removed"),
        {"reason": "namespace removed"},
    ),
    (EventKind.TARGET_BACK, TargetDetail(), {}),
    (
        EventKind.DOCKER,
        DockerDetail("die", "container", "unix:///a", id="c0ffee", image="busybox", exit_code=137),
        {
            "action": "die",
            "type": "container",
            "daemon": "unix:///a",
            "id": "c0ffee",
            "image": "busybox",
            "exit_code": 137,
        },
    ),
    (
        EventKind.DOCKER,
        DockerDetail("kill", "container", "unix:///a", id="c0ffee", image="busybox", signal="9"),
        {
            "action": "kill",
            "type": "container",
            "daemon": "unix:///a",
            "id": "c0ffee",
            "image": "busybox",
            "signal": "9",
        },
    ),
    (
        EventKind.DOCKER,
        DockerDetail(
            "connect", "network", "unix:///a", id="c0ffee", network="bridge", network_id="n1"
        ),
        {
            "action": "connect",
            "type": "network",
            "daemon": "unix:///a",
            "id": "c0ffee",
            "image": "",
            "network": "bridge",
            "network_id": "n1",
        },
    ),
    (
        EventKind.TARGET_ENDED,
        EndDetail("unix:///a", "c1", "busybox:1", 137),
        {"daemon": "unix:///a", "id": "c1", "image": "busybox:1", "exit_code": 137},
    ),
    (
        EventKind.NOTE,
        NoteDetail("events were lost; state re-read"),
        {"detail": "events were lost; state re-read"},
    ),
    (
        EventKind.NOTE,
        NoteDetail(daemon="unix:///a", message="docker event stream ended: stream ended"),
        {"daemon": "unix:///a", "message": "docker event stream ended: stream ended"},
    ),
    (
        EventKind.COUNTERS,
        CounterSample(1.002, {"ct.insert_failed": 3}, {"ct.count": 10, "ct.max": 100}),
        {
            "seconds": 1.002,
            "deltas": {"ct.insert_failed": 3},
            "levels": {"ct.count": 10, "ct.max": 100},
        },
    ),
    (
        EventKind.COUNTERS,
        CounterSample(0.5, {"link.eth0.rx_dropped": 1}),
        {"seconds": 0.5, "deltas": {"link.eth0.rx_dropped": 1}},
    ),
    (
        EventKind.DROP,
        DropDetail(
            "OTHERHOST", "ip_rcv_core", 4026532178, "br0", "udp", "10.0.0.2", "10.0.9.9", 4000, 53
        ),
        {
            "reason": "OTHERHOST",
            "location": "ip_rcv_core",
            "netns_inode": 4026532178,
            "device": "br0",
            "proto": "udp",
            "saddr": "10.0.0.2",
            "daddr": "10.0.9.9",
            "sport": 4000,
            "dport": 53,
            "count": 1,
        },
    ),
    (
        EventKind.DROP,
        DropDetail("NETFILTER_DROP", "nft_do_chain", device="eth0", count=40),
        {
            "reason": "NETFILTER_DROP",
            "location": "nft_do_chain",
            "netns_inode": 0,
            "device": "eth0",
            "count": 40,
        },
    ),
]


def test_every_kind_has_a_detail_type_and_every_type_an_example() -> None:
    assert set(DETAIL_TYPES) == set(EventKind)
    assert {type(d) for _, d, _ in EXAMPLES} == set(DETAIL_TYPES.values())
    assert {k for k, _, _ in EXAMPLES} == set(EventKind)


@pytest.mark.parametrize(("kind", "detail", "stored"), EXAMPLES, ids=lambda x: str(x)[:40])
def test_detail_writes_the_stored_json_and_reads_it_back(
    kind: EventKind, detail: EventDetail, stored: dict[str, Any]
) -> None:
    out = detail.to_json()
    assert list(out.items()) == list(stored.items())  # the same keys, in the same order
    assert isinstance(detail, DETAIL_TYPES[kind])
    assert detail_from_json(kind, stored) == detail
    assert detail_from_json(str(kind), json.loads(json.dumps(out))) == detail


def test_json_of_older_and_newer_versions_reads_into_the_type() -> None:
    # keys this version does not know are ignored, missing ones are empty
    assert detail_from_json(
        EventKind.MAC_CHANGED, {"old": MAC2, "new": MAC, "ports": ["v0"], "seen": {"n": 1}}
    ) == MacChange(MAC2, MAC)
    assert detail_from_json(EventKind.LINK_ADDED, {"kind": "veth"}) == LinkDetail("veth")
    assert detail_from_json(EventKind.INVARIANT_VIOLATED, {"bridge": "br0"}) == InvariantDetail(
        bridge="br0"
    )
    assert detail_from_json(EventKind.DOCKER, {"action": "start"}) == DockerDetail("start")
    assert detail_from_json(EventKind.NEIGH_CHANGED, {"state": "FAILED", "lladdr": None}) == (
        NeighChange("FAILED")
    )
    # what the metrics exporter may be told about a port's bridge
    assert detail_from_json(EventKind.LINK_ADDED, {"master": "docker0"}) == LinkDetail(
        master="docker0"
    )
    assert LinkDetail(master="docker0").to_json() == {"kind": "", "mac": "", "master": "docker0"}


@pytest.mark.parametrize(
    ("kind", "data"),
    [
        (EventKind.MAC_CHANGED, {"old": MAC2, "new": 7}),  # a value of the wrong type
        (EventKind.MAC_CHANGED, {"addr_assign_type": "3"}),
        (EventKind.MTU_CHANGED, {"old": True, "new": 1400}),  # a bool is no MTU
        (EventKind.FDB_ADDED, {"mac": MAC, "local": 1}),
        (EventKind.STATE_ENTERED, {"state": "from-the-future", "bridge": "br0"}),
        (EventKind.STATE_LEFT, {}),  # no state at all
        (EventKind.COUNTERS, {"seconds": 1.0, "deltas": {"ct.drop": "3"}}),
        (EventKind.COUNTERS, {"seconds": 1.0, "deltas": {"ct.drop": True}}),
        (EventKind.COUNTERS, {"seconds": "1", "deltas": {}}),
        (EventKind.COUNTERS, {"deltas": [1, 2]}),
        (EventKind.DROP, {"reason": "OTHERHOST", "count": 0}),  # no drops is no drop event
        (EventKind.DROP, {"reason": 13}),  # a number, not the kernel's name for it
        (EventKind.DROP, {"reason": "NO_SOCKET", "sport": "53"}),
        ("kind-of-a-newer-version", {"mac": MAC}),
    ],
)
def test_a_detail_that_does_not_fit_reads_raw(kind: str, data: dict[str, Any]) -> None:
    detail = detail_from_json(kind, data)
    assert detail == RawDetail(data)
    assert detail.to_json() == data  # kept as it was read


def test_what_is_not_a_json_object_reads_as_an_empty_raw_detail() -> None:
    for data in (None, [1, 2], "text", 3):
        assert detail_from_json(EventKind.PORT_JOINED, data) == RawDetail()


def test_an_event_made_without_a_detail_has_its_kinds_empty_one() -> None:
    for kind in EventKind:
        event = NetEvent(0, 0, "host", kind)
        assert event.detail == detail_from_json(kind, {})
        assert detail_from_json(kind, event.detail.to_json()) == event.detail
    assert NetEvent(0, 0, "host", EventKind.PORT_LEFT).detail == PortDetail()
    assert NetEvent(0, 0, "host", EventKind.STATE_LEFT).detail == RawDetail()  # a state needs one
    # a raw detail given on purpose stays raw
    assert NetEvent(0, 0, "host", EventKind.PORT_LEFT, detail=RawDetail()).detail == RawDetail()


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=10,
)
_keys = st.sampled_from(
    ["old", "new", "kind", "mac", "mtu", "state", "local", "nat", "action", "type", "detail"]
)


@given(
    st.sampled_from([*EventKind, "unknown"]),
    st.dictionaries(_keys | st.text(max_size=5), _json, max_size=6),
)
def test_reading_any_json_object_never_raises_and_round_trips(
    kind: str, data: dict[str, Any]
) -> None:
    detail = detail_from_json(kind, data)
    if isinstance(detail, RawDetail):
        assert detail.to_json() == data
    else:
        assert isinstance(detail, DETAIL_TYPES[EventKind(kind)])
        assert detail_from_json(kind, json.loads(json.dumps(detail.to_json()))) == detail
