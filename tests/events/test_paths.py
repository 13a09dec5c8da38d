"""Path states on hand-built namespace states (pure logic, no root)."""

from __future__ import annotations

from dataclasses import replace

from netsleuth.audit.snapshot import ForwardChain, NatRule
from netsleuth.events.paths import FirewallView, StateTracker, TargetPath, at_risk, path_states
from netsleuth.events.state import AddrMsg, FdbMsg, LinkInfo, LinkMsg, NamespaceState
from netsleuth.model import EventKind, StateChange, StateKind

BR_MAC = "02:50:00:00:00:10"  # the app's port MAC, which the bridge has borrowed
LOW = "02:00:00:00:00:01"
GW = "198.19.7.1"
PATH = TargetPath("netns:app", "eth0", "vapp", "svcbr7", "198.19.7.0/24", GW)


def clock() -> tuple[int, int]:
    return 1, 1


def pair() -> tuple[NamespaceState, NamespaceState]:
    host = NamespaceState("host", clock)
    for link in (
        LinkInfo(1, "svcbr7", BR_MAC, 0, "up", 1500, "bridge"),
        LinkInfo(2, "vapp", BR_MAC, 1, "up", 1500, "veth"),
        LinkInfo(9, "wan0", "02:77:00:00:00:01", 0, "up", 1500, "veth"),
    ):
        host.remember(link)
    host.addrs[GW] = 1
    inside = NamespaceState("netns:app", clock)
    inside.remember(LinkInfo(5, "eth0", "02:aa:00:00:00:20", 0, "up", 1500, "veth"))
    inside.on_addr(AddrMsg(False, 5, "198.19.7.20", 24))
    inside.gateway, inside.gateway_oif = GW, 5
    inside.neigh[GW] = (BR_MAC, 0x02)
    return host, inside


def kinds(host: NamespaceState, inside: NamespaceState, **kw: object) -> set[StateKind]:
    return set(path_states(PATH, host, inside, **kw))  # type: ignore[arg-type]


def test_a_healthy_path_is_in_no_state() -> None:
    host, inside = pair()
    assert kinds(host, inside, pinned=False) == set()
    assert inside.subnet_of(5) == "198.19.7.0/24"


def join_low_port(host: NamespaceState) -> None:
    host.on_link(LinkMsg(False, LinkInfo(3, "vjob1", LOW, 1, "up", 1500, "veth")))
    host.on_link(LinkMsg(False, LinkInfo(1, "svcbr7", LOW, 0, "up", 1500, "bridge")))


def test_the_flap_is_at_risk_then_gone_and_the_bridge_remembers_its_macs() -> None:
    host, inside = pair()
    join_low_port(host)
    inside.neigh[GW] = (LOW, 0x02)  # the host's next ARP came from the new MAC
    states = path_states(PATH, host, inside, pinned=False)
    assert set(states) == {StateKind.GATEWAY_AT_RISK}
    assert states[StateKind.GATEWAY_AT_RISK].port == "vjob1"
    assert path_states(PATH, host, inside, pinned=True) == {}  # a pinned bridge keeps its MAC
    host.on_link(LinkMsg(True, LinkInfo(3, "vjob1", LOW, 1, "up", 1500, "veth")))
    host.on_link(LinkMsg(False, LinkInfo(1, "svcbr7", BR_MAC, 0, "up", 1500, "bridge")))
    gone = path_states(PATH, host, inside, pinned=False)[StateKind.GATEWAY_MAC_GONE]
    assert gone.mac == LOW and gone.note == "the bridge's earlier MAC"
    assert host.mac_history[1] == {BR_MAC, LOW}


def test_another_ports_mac_is_a_state_but_its_own_ports_mac_is_not() -> None:
    host, inside = pair()
    join_low_port(host)  # the bridge took LOW; the app still holds BR_MAC, its own port's
    assert kinds(host, inside, pinned=False) == set()
    other = replace(PATH, target="netns:b", peer="vb")
    host.remember(LinkInfo(4, "vb", "02:60:00:00:00:01", 1, "up", 1500, "veth"))
    states = path_states(other, host, inside, pinned=False)
    assert set(states) == {StateKind.GATEWAY_MAC_PORT}
    assert states[StateKind.GATEWAY_MAC_PORT].port == "vapp"


def test_a_mac_learned_behind_a_port_is_foreign_not_gone() -> None:
    host, inside = pair()
    rogue = "02:66:00:00:00:66"
    host.on_fdb(FdbMsg(False, 2, 1, rogue, 0x02))  # learned, not local
    inside.neigh[GW] = (rogue, 0x02)
    states = path_states(PATH, host, inside, pinned=False)
    assert set(states) == {StateKind.GATEWAY_MAC_FOREIGN}
    assert states[StateKind.GATEWAY_MAC_FOREIGN].port == "vapp"
    host.on_fdb(FdbMsg(True, 2, 1, rogue, 0x02))  # aged out: nowhere now, and never the
    assert kinds(host, inside) == set()  # bridge's: nothing to tell yet


def test_a_mac_the_host_has_not_shown_yet_gives_no_state() -> None:
    # the target's neighbour event came before the host's port and MAC events
    host, inside = pair()
    inside.neigh[GW] = (LOW, 0x02)
    assert kinds(host, inside, pinned=False) == set()
    join_low_port(host)  # now the host's events are in: the bridge lends LOW from vjob1
    assert kinds(host, inside, pinned=False) == {StateKind.GATEWAY_AT_RISK}


def test_unresolved_entry_link_down_deleted_bridge_and_missing_route() -> None:
    host, inside = pair()
    inside.neigh[GW] = (BR_MAC, 0x20)  # FAILED
    assert kinds(host, inside) == {StateKind.GATEWAY_UNRESOLVED}
    inside.neigh[GW] = (BR_MAC, 0x02)
    host.remember(LinkInfo(2, "vapp", BR_MAC, 1, "lowerlayerdown", 1500, "veth"))
    down = path_states(PATH, host, inside)[StateKind.PATH_LINK_DOWN]
    assert (down.link, down.note) == ("vapp", "peer down")
    host.on_link(LinkMsg(True, LinkInfo(1, "svcbr7", BR_MAC, 0, "up", 1500, "bridge")))
    deleted = path_states(PATH, host, inside)[StateKind.PATH_LINK_DOWN]
    assert (deleted.link, deleted.note) == ("svcbr7", "deleted")
    host, inside = pair()
    inside.gateway, inside.gateway_oif = "", 0
    assert kinds(host, inside) == {StateKind.ROUTE_MISSING}


NAT = NatRule("nft ip edge post", "MASQUERADE", source="198.19.7.0/24", out="wan0")


def test_nat_missing_only_after_nat_was_seen_and_forward_blocked() -> None:
    host, inside = pair()
    with_nat = FirewallView((NAT,), (), ("wan0",))
    without = FirewallView((), (), ("wan0",))
    assert with_nat.nat_covers(PATH.subnet, PATH.bridge)
    assert kinds(host, inside, firewall=with_nat, nat_seen=True) == set()
    assert kinds(host, inside, firewall=without, nat_seen=False) == set()  # never NATed: routed
    assert kinds(host, inside, firewall=without, nat_seen=True) == {StateKind.NAT_MISSING}
    drop = FirewallView((NAT,), (ForwardChain("nft ip filter fwd", "drop"),), ("wan0",))
    states = path_states(PATH, host, inside, firewall=drop, nat_seen=True)
    assert set(states) == {StateKind.FORWARD_BLOCKED}
    assert states[StateKind.FORWARD_BLOCKED].note == "nft ip filter fwd"
    open_ = FirewallView(
        (NAT,), (ForwardChain("f", "drop", accepts_ifnames=("svcbr7",)),), ("wan0",)
    )
    assert kinds(host, inside, firewall=open_, nat_seen=True) == set()


def test_tracker_emits_enter_and_leave_and_a_changed_detail_is_both() -> None:
    host, inside = pair()
    host.mac_history[1] |= {LOW, "02:00:00:00:00:02"}  # MACs the bridge had earlier
    tracker = StateTracker("netns:app", clock)
    assert tracker.update(path_states(PATH, host, inside)) == []
    inside.neigh[GW] = (LOW, 0x02)
    entered = tracker.update(path_states(PATH, host, inside))
    assert [(e.kind, e.subject, e.detail) for e in entered] == [
        (
            EventKind.STATE_ENTERED,
            "gateway-mac-gone",
            StateChange(
                StateKind.GATEWAY_MAC_GONE, PATH.bridge, mac=LOW, note="the bridge's earlier MAC"
            ),
        )
    ]
    assert tracker.update(path_states(PATH, host, inside)) == []  # no repeat
    inside.neigh[GW] = ("02:00:00:00:00:02", 0x02)
    changed = tracker.update(path_states(PATH, host, inside), (7, 7))
    assert [e.kind for e in changed] == [EventKind.STATE_LEFT, EventKind.STATE_ENTERED]
    assert {e.wall_ns for e in changed} == {7}  # stamped with when the cause happened
    left = tracker.close()
    assert [e.kind for e in left] == [EventKind.STATE_LEFT] and tracker.current == {}


def test_risks_group_the_targets_that_depend_on_one_port() -> None:
    host, inside = pair()
    join_low_port(host)
    inside.neigh[GW] = (LOW, 0x02)
    s = path_states(PATH, host, inside, pinned=False)
    risks = at_risk({"netns:app": s, "netns:b": s, "netns:c": {}})
    assert len(risks) == 1 and risks[0].targets == ("netns:app", "netns:b")
    assert (
        risks[0].sentence == "when port vjob1 leaves svcbr7, netns:app, netns:b lose their gateway"
    )
