from netsleuth.events.invariant import GatewayInvariant
from netsleuth.events.state import LinkInfo, NamespaceState
from netsleuth.model import EventKind, InvariantDetail

BR_MAC = "aa:00:00:00:00:10"


def _pair() -> tuple[NamespaceState, NamespaceState]:
    clock = lambda: (1, 1)  # noqa: E731
    host = NamespaceState("host", clock)
    host.links[1] = LinkInfo(1, "br0", BR_MAC, 0, "UP", 1500, "bridge")
    host.links[2] = LinkInfo(2, "vc0", BR_MAC, 1, "UP", 1500, "veth")
    host.addrs["198.18.0.1"] = 1
    inside = NamespaceState("netns:c0", clock)
    inside.gateway = "198.18.0.1"
    return host, inside


def test_violation_when_entry_holds_a_mac_no_port_owns_then_recovery() -> None:
    host, inside = _pair()
    inv = GatewayInvariant("netns:c0", host, inside)
    inside.neigh["198.18.0.1"] = (BR_MAC, 0x02)
    assert inv.check() is None  # holds
    # A churn port with a lower MAC joined: the bridge took it, the container learned it.
    host.links[3] = LinkInfo(3, "vch1", "02:00:00:00:00:01", 1, "UP", 1500, "veth")
    host.links[1] = LinkInfo(1, "br0", "02:00:00:00:00:01", 0, "UP", 1500, "bridge")
    inside.neigh["198.18.0.1"] = ("02:00:00:00:00:01", 0x04)
    assert inv.check() is None
    # The port left: the bridge MAC moves back, the container's entry is stale.
    del host.links[3]
    host.links[1] = LinkInfo(1, "br0", BR_MAC, 0, "UP", 1500, "bridge")
    ev = inv.check()
    assert ev is not None and ev.kind == EventKind.INVARIANT_VIOLATED
    assert ev.detail == InvariantDetail(
        gateway_mac=BR_MAC, neigh_mac="02:00:00:00:00:01", bridge="br0", owned_by_port=False
    )
    assert ev.detail.to_json() == {
        "gateway_mac": BR_MAC,
        "neigh_mac": "02:00:00:00:00:01",
        "bridge": "br0",
        "owned_by_port": False,
    }
    assert inv.check() is None  # no repeat while still violated
    inside.neigh["198.18.0.1"] = (BR_MAC, 0x02)
    rec = inv.check()
    assert rec is not None and rec.kind == EventKind.INVARIANT_RECOVERED


def test_mismatch_with_a_mac_a_port_still_owns_is_flagged_as_owned() -> None:
    host, inside = _pair()
    inv = GatewayInvariant("netns:c0", host, inside)
    host.links[3] = LinkInfo(3, "vch1", "02:00:00:00:00:01", 1, "UP", 1500, "veth")
    inside.neigh["198.18.0.1"] = ("02:00:00:00:00:01", 0x02)
    ev = inv.check()
    assert ev is not None and isinstance(ev.detail, InvariantDetail)
    assert ev.detail.owned_by_port is True


def test_no_verdict_without_gateway_or_usable_entry() -> None:
    host, inside = _pair()
    inv = GatewayInvariant("netns:c0", host, inside)
    inside.neigh["198.18.0.1"] = ("", 0x01)  # INCOMPLETE
    assert inv.evaluate() is None
    inside.gateway = "10.0.0.1"  # not an address of the host namespace
    inside.neigh["10.0.0.1"] = ("02:00:00:00:00:09", 0x02)
    assert inv.evaluate() is None
