"""Choosing the host namespace and completing a target's path (pure)."""

from __future__ import annotations

from netsleuth.events.state import AddrMsg, LinkInfo, NamespaceState
from netsleuth.watch.paths import Discovery, choose_host, follow


def test_the_host_is_given_or_where_most_bridges_live() -> None:
    a, b = Discovery("core", "va", "br0"), Discovery("edge", "vb", "br1")
    assert choose_host("lab-host", [a, b]) == "lab-host"  # an override wins
    assert choose_host(None, [a, b, Discovery("core", "vc", "br0")]) == "core"
    assert choose_host(None, [Discovery("", "vd", "docker0")]) is None  # our own namespace
    assert choose_host(None, [Discovery(), Discovery()]) is None  # nothing found


def inside() -> NamespaceState:
    state = NamespaceState("netns:app", lambda: (1, 1))
    state.remember(LinkInfo(1, "lo", "", 0, "unknown", 65536, ""))
    state.remember(LinkInfo(7, "eth0", "02:aa:00:00:00:01", 0, "up", 1500, "veth"))
    state.on_addr(AddrMsg(False, 7, "198.19.7.20", 24))
    state.gateway, state.gateway_oif = "198.19.7.1", 7
    return state


def test_the_path_is_completed_from_the_targets_own_state() -> None:
    path = follow("netns:app", Discovery("core", "vapp", "svcbr7"), inside())
    assert path is not None and path.to_json() == {
        "target": "netns:app",
        "veth": "eth0",
        "peer": "vapp",
        "bridge": "svcbr7",
        "subnet": "198.19.7.0/24",
        "gateway": "198.19.7.1",
    }


def test_no_path_without_a_peer_or_a_veth() -> None:
    assert follow("netns:app", Discovery(), inside()) is None
    bare = NamespaceState("netns:x", lambda: (1, 1))
    assert follow("netns:x", Discovery("core", "vx", "br0"), bare) is None
