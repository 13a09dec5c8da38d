from netsleuth.events.state import (
    FdbMsg,
    LinkInfo,
    LinkMsg,
    NamespaceState,
    NeighMsg,
    RouteMsg,
)
from netsleuth.model import (
    EventKind,
    FdbDetail,
    LinkDetail,
    MacChange,
    MtuChange,
    NeighChange,
    PortDetail,
    RouteDetail,
)


def _state() -> NamespaceState:
    ticks = iter(range(1, 1000))

    def clock() -> tuple[int, int]:
        t = next(ticks)
        return t, t

    state = NamespaceState("host", clock, addr_assign_type=lambda name: 1)
    state.links[1] = LinkInfo(1, "br0", "aa:00:00:00:00:10", 0, "UP", 1500, "bridge")
    return state


def _veth(mac: str = "02:00:00:00:00:01", master: int = 0, **kw: object) -> LinkInfo:
    args = {"operstate": "UP", "mtu": 1500, "kind": "veth"} | kw
    return LinkInfo(5, "vch1", mac, master, args["operstate"], args["mtu"], args["kind"])  # type: ignore[arg-type]


def kinds(events: list) -> list[str]:
    return [str(e.kind) for e in events]


def test_port_join_mac_change_and_leave() -> None:
    state = _state()
    [added] = state.on_link(LinkMsg(False, _veth()))
    assert kinds([added]) == ["link-added"]
    assert added.detail == LinkDetail("veth", "02:00:00:00:00:01", 1500)
    assert added.detail.to_json() == {"kind": "veth", "mac": "02:00:00:00:00:01", "mtu": 1500}
    joined = state.on_link(LinkMsg(False, _veth(master=1)))
    assert kinds(joined) == ["port-joined"]
    assert joined[0].ifname == "vch1" and joined[0].subject == "br0"
    assert joined[0].detail == PortDetail("02:00:00:00:00:01")
    changed = state.on_link(
        LinkMsg(False, LinkInfo(1, "br0", "02:00:00:00:00:01", 0, "UP", 1500, ""))
    )
    assert kinds(changed) == ["mac-changed"]
    assert changed[0].detail == MacChange("aa:00:00:00:00:10", "02:00:00:00:00:01", "bridge", 1)
    assert changed[0].detail.to_json() == {
        "old": "aa:00:00:00:00:10",
        "new": "02:00:00:00:00:01",
        "kind": "bridge",
        "addr_assign_type": 1,
    }
    assert state.bridge_macs(1) == {"02:00:00:00:00:01"}
    left = state.on_link(LinkMsg(True, _veth(master=1)))
    assert kinds(left) == ["port-left", "link-removed"]
    assert left[1].detail.to_json() == {"kind": "veth", "mac": "02:00:00:00:00:01"}
    assert state.bridge_macs(1) == set()


def test_oper_and_mtu_changes_and_unknown_deletion() -> None:
    state = _state()
    state.on_link(LinkMsg(False, _veth()))
    events = state.on_link(LinkMsg(False, _veth(operstate="DOWN", mtu=1400)))
    assert kinds(events) == ["oper-changed", "mtu-changed"]
    assert events[1].detail == MtuChange(1500, 1400)
    assert events[1].detail.to_json() == {"old": 1500, "new": 1400}
    assert state.on_link(LinkMsg(True, LinkInfo(99, "x", "", 0, "", 0, ""))) == []


def test_gateway_from_default_route_and_neighbour_changes() -> None:
    state = _state()
    state.record_neigh_for = lambda ip: ip == state.gateway
    events = state.on_route(RouteMsg(False, "default", "198.18.0.1", 1))
    assert kinds(events) == ["route-added"] and state.gateway == "198.18.0.1"
    assert events[0].detail == RouteDetail("198.18.0.1")
    assert state.on_neigh(NeighMsg(False, 1, "198.18.0.99", "02:aa:00:00:00:01", 2)) == []
    ev = state.on_neigh(NeighMsg(False, 1, "198.18.0.1", "02:00:00:00:00:01", 0x04))
    assert kinds(ev) == ["neigh-changed"]
    assert ev[0].detail == NeighChange("STALE", "02:00:00:00:00:01", "NONE", "")
    assert ev[0].detail.to_json() == {
        "state": "STALE",
        "lladdr": "02:00:00:00:00:01",
        "old_state": "NONE",
        "old_lladdr": "",
    }
    # The same entry again is no news.
    assert state.on_neigh(NeighMsg(False, 1, "198.18.0.1", "02:00:00:00:00:01", 0x04)) == []
    # FAILED without lladdr keeps the last known MAC.
    failed = state.on_neigh(NeighMsg(False, 1, "198.18.0.1", "", 0x20))
    assert isinstance(failed[0].detail, NeighChange)
    assert failed[0].detail.state == "FAILED"
    assert failed[0].detail.lladdr == "02:00:00:00:00:01"
    gone = state.on_route(RouteMsg(True, "default", "198.18.0.1", 1))
    assert kinds(gone) == ["route-removed"] and state.gateway == ""


def test_fdb_entries_name_port_and_bridge() -> None:
    state = _state()
    state.on_link(LinkMsg(False, _veth(master=1)))
    ev = state.on_fdb(FdbMsg(False, 5, 1, "02:00:00:00:00:01", 0x80))
    assert ev[0].kind == EventKind.FDB_ADDED
    assert (ev[0].ifname, ev[0].subject, ev[0].detail) == (
        "vch1",
        "br0",
        FdbDetail("02:00:00:00:00:01", True),
    )
