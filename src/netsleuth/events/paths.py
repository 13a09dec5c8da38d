"""The states a target's path is in, checked live (pure).

A :class:`TargetPath` is where a target's traffic goes, found once when the
watch starts: the veth its default route leaves by, that veth's peer in the
namespace holding the bridge, the bridge, the target's subnet and gateway.
:func:`path_states` looks at the current :class:`NamespaceState` of both
namespaces (and the firewall, when known) and returns the states a cause's
mechanism predicts, each with what was seen (:class:`~netsleuth.model.StateChange`):

- ``gateway-mac-gone``: the gateway entry holds a MAC the bridge had earlier
  but that neither the bridge nor any port has now, and nobody behind a port
  sends from: frames to it are flooded to no one (the bridge-MAC flap). A MAC
  the host namespace never showed gives no state (its events may still be on
  their way; a MAC held since before the watch began is not recognised);
- ``gateway-mac-port``: it holds another port's MAC (the bridge's earlier MAC,
  still a port's): the host drops such frames as not its own unless they come
  through that very port;
- ``gateway-mac-foreign``: it holds a MAC learned behind a port that the
  bridge never had: someone else answers ARP for the gateway;
- ``gateway-unresolved``: the entry is INCOMPLETE or FAILED;
- ``path-link-down``: the veth, its peer or the bridge is down or gone, or the
  peer left the bridge;
- ``route-missing``: the default route or the veth's address is gone, or the
  host namespace lost its own way out (:func:`egress_state`: a default route
  it had, or, without one, the address of an uplink), which cuts off every
  target behind it and the host's own traffic alike;
- ``nat-missing`` / ``forward-blocked``: the firewall no longer translates
  the subnet (when it did before) / a forward chain drops it;
- ``gateway-at-risk`` (a warning, not a failure): the gateway MAC is borrowed
  from another port of an unpinned bridge; when that port leaves the target
  loses its gateway.

:class:`StateTracker` turns successive results into ``state-entered`` /
``state-left`` events.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass

from netsleuth.audit.firewall import forward_blocking, nat_covering
from netsleuth.audit.snapshot import ForwardChain, NatRule
from netsleuth.events.state import LinkInfo, NamespaceState
from netsleuth.model import EventKind, NetEvent, StateChange, StateKind

__all__ = [
    "EgressSeen",
    "FirewallView",
    "Risk",
    "StateTracker",
    "TargetPath",
    "at_risk",
    "egress_state",
    "path_states",
]

_NUD_INCOMPLETE, _NUD_FAILED = 0x01, 0x20
_USABLE = 0x02 | 0x04 | 0x08 | 0x10 | 0x80  # REACHABLE STALE DELAY PROBE PERMANENT
_DOWN = {"down", "lowerlayerdown", "notpresent"}


@dataclass(frozen=True, slots=True)
class TargetPath:
    """Where one target's traffic goes (names are stable across re-reads)."""

    target: str
    veth: str
    peer: str
    bridge: str = ""
    subnet: str = ""
    gateway: str = ""

    def to_json(self) -> dict[str, str]:
        return {
            "target": self.target,
            "veth": self.veth,
            "peer": self.peer,
            "bridge": self.bridge,
            "subnet": self.subnet,
            "gateway": self.gateway,
        }


@dataclass(frozen=True, slots=True)
class FirewallView:
    """What the firewall of the bridge's namespace does now."""

    nat_rules: tuple[NatRule, ...] = ()
    forward_chains: tuple[ForwardChain, ...] = ()
    egress: tuple[str, ...] = ()

    def nat_covers(self, subnet: str, bridge: str) -> bool:
        net = ipaddress.ip_network(subnet, strict=False)
        return bool(nat_covering(self.nat_rules, net, bridge, self.egress))

    def forward_blocks(self, subnet: str, bridge: str) -> list[str]:
        net = ipaddress.ip_network(subnet, strict=False)
        return forward_blocking(self.forward_chains, bridge, net)


def _by_name(state: NamespaceState, name: str) -> LinkInfo | None:
    return next((link for link in state.links.values() if link.name == name), None)


def _down(link: LinkInfo | None) -> bool:
    return link is None or link.operstate.lower() in _DOWN


def _link_state(
    path: TargetPath, host: NamespaceState, inside: NamespaceState
) -> StateChange | None:
    bridge = _by_name(host, path.bridge) if path.bridge else None
    peer = _by_name(host, path.peer)
    veth = _by_name(inside, path.veth)
    for name, link, role in (
        (path.bridge, bridge, "bridge"),
        (path.peer, peer, "peer"),
        (path.veth, veth, "veth"),
    ):
        if not name:
            continue
        if link is None:
            return StateChange(StateKind.PATH_LINK_DOWN, path.bridge, link=name, note="deleted")
        if _down(link):
            return StateChange(
                StateKind.PATH_LINK_DOWN, path.bridge, link=name, note=f"{role} down"
            )
    if bridge is not None and peer is not None and peer.master != bridge.index:
        return StateChange(
            StateKind.PATH_LINK_DOWN, path.bridge, link=path.peer, note="left the bridge"
        )
    return None


def _route_state(path: TargetPath, inside: NamespaceState) -> StateChange | None:
    if not path.gateway:
        return None
    if not inside.gateway:
        return StateChange(StateKind.ROUTE_MISSING, path.bridge, note="no default route")
    veth = _by_name(inside, path.veth)
    if veth is not None and veth.index not in inside.addrs.values():
        return StateChange(StateKind.ROUTE_MISSING, path.bridge, link=path.veth, note="no address")
    return None


def _gateway_state(
    path: TargetPath, host: NamespaceState, inside: NamespaceState, pinned: bool | None
) -> StateChange | None:
    gw = inside.gateway
    entry = inside.neigh.get(gw) if gw else None
    if entry is None:
        return None
    mac, nud = entry
    if nud & (_NUD_INCOMPLETE | _NUD_FAILED):
        return StateChange(StateKind.GATEWAY_UNRESOLVED, path.bridge, mac=mac)
    if not mac or not nud & _USABLE:
        return None
    gw_link = host.links.get(host.addrs.get(gw, -1))
    if gw_link is None:
        return None  # the gateway is not this namespace's (or it is gone: see path-link-down)
    ports = host.ports_of(gw_link.index)
    if mac == gw_link.mac:
        lender = next((p for p in ports if p.mac == mac and p.name != path.peer), None)
        if lender is not None and pinned is False:
            return StateChange(StateKind.GATEWAY_AT_RISK, gw_link.name, mac=mac, port=lender.name)
        return None
    owner = next((p for p in ports if p.mac == mac), None)
    if owner is not None:
        if owner.name == path.peer:
            return None  # its own port's MAC: the host still takes frames that come through it
        return StateChange(StateKind.GATEWAY_MAC_PORT, gw_link.name, mac=mac, port=owner.name)
    learned = host.learned_port(gw_link.index, mac)
    if learned is not None:
        return StateChange(
            StateKind.GATEWAY_MAC_FOREIGN, gw_link.name, mac=mac, port=host.name_of(learned)
        )
    if mac not in host.mac_history.get(gw_link.index, ()):
        # A MAC the host namespace has not shown yet: its netlink events can
        # lag the target's by a few ms (a port joining), so say nothing until
        # they tell whose it is.
        return None
    return StateChange(
        StateKind.GATEWAY_MAC_GONE, gw_link.name, mac=mac, note="the bridge's earlier MAC"
    )


@dataclass(frozen=True, slots=True)
class EgressSeen:
    """What the host namespace's way out was earlier in the watch: whether it
    had a default route, and which of its uplinks had an IPv4 address. Only
    the loss of what was there is a state (a host that never had a default
    route reaches its upstream by connected routes alone)."""

    default: bool = False
    addressed: frozenset[str] = frozenset()

    def update(self, host: NamespaceState, egress: Collection[str]) -> EgressSeen:
        addressed = {name for name in egress if _has_address(host, name)}
        default = self.default or bool(host.gateway)
        if default == self.default and addressed <= self.addressed:
            return self
        return EgressSeen(default, self.addressed | addressed)


def _has_address(host: NamespaceState, name: str) -> bool:
    link = _by_name(host, name)
    return link is not None and link.index in host.addrs.values()


def egress_state(host: NamespaceState, seen: EgressSeen) -> StateChange | None:
    """``route-missing`` of the host namespace itself: the default route it
    had is gone, or (when it never had one) an uplink that had an address has
    none now — a DHCP lease lost, a network manager reconfiguring it. Nothing
    leaves then, whoever sends. An uplink that is gone altogether is a link
    event, not this state."""
    if seen.default:
        if not host.gateway:
            return StateChange(StateKind.ROUTE_MISSING, "", note="the host has no default route")
        return None
    for name in sorted(seen.addressed):
        if _by_name(host, name) is not None and not _has_address(host, name):
            return StateChange(
                StateKind.ROUTE_MISSING, "", link=name, note="the host's uplink lost its address"
            )
    return None


def path_states(
    path: TargetPath,
    host: NamespaceState,
    inside: NamespaceState,
    *,
    pinned: bool | None = None,
    firewall: FirewallView | None = None,
    nat_seen: bool = False,
    egress: StateChange | None = None,
) -> dict[StateKind, StateChange]:
    """The states ``path`` is in now. ``pinned``: is the bridge's MAC set;
    ``nat_seen``: did a NAT rule cover the subnet earlier in the watch (only
    then is its absence a state); ``egress``: the host namespace's own
    :func:`egress_state` (every path leaves through it)."""
    out: dict[StateKind, StateChange] = {}
    for change in (
        _link_state(path, host, inside),
        _route_state(path, inside) or egress,
        _gateway_state(path, host, inside, pinned),
    ):
        if change is not None:
            out[change.state] = change
    if firewall is not None and path.subnet and path.bridge:
        if nat_seen and not firewall.nat_covers(path.subnet, path.bridge):
            out[StateKind.NAT_MISSING] = StateChange(
                StateKind.NAT_MISSING, path.bridge, subnet=path.subnet
            )
        blocked = firewall.forward_blocks(path.subnet, path.bridge)
        if blocked:
            out[StateKind.FORWARD_BLOCKED] = StateChange(
                StateKind.FORWARD_BLOCKED, path.bridge, subnet=path.subnet, note=blocked[0]
            )
    return out


@dataclass(frozen=True, slots=True)
class Risk:
    """When ``port`` leaves ``bridge``, ``targets`` lose their gateway."""

    bridge: str
    port: str
    mac: str
    targets: tuple[str, ...]

    @property
    def sentence(self) -> str:
        who = ", ".join(self.targets)
        verb = "loses its" if len(self.targets) == 1 else "lose their"
        return f"when port {self.port} leaves {self.bridge}, {who} {verb} gateway"


def at_risk(states: Mapping[str, Mapping[StateKind, StateChange]]) -> list[Risk]:
    """Group the targets' ``gateway-at-risk`` states by the port they depend on."""
    groups: dict[tuple[str, str, str], list[str]] = {}
    for target, by_kind in sorted(states.items()):
        change = by_kind.get(StateKind.GATEWAY_AT_RISK)
        if change is not None:
            groups.setdefault((change.bridge, change.port, change.mac), []).append(target)
    return [Risk(b, p, m, tuple(ts)) for (b, p, m), ts in sorted(groups.items())]


class StateTracker:
    """Turns successive :func:`path_states` results of one target into
    ``state-entered`` / ``state-left`` events (a changed detail, e.g. another
    MAC, is a leave and an enter)."""

    def __init__(self, target: str, clock: Callable[[], tuple[int, int]]) -> None:
        self.target = target
        self.clock = clock
        self.current: dict[StateKind, StateChange] = {}

    def update(
        self, states: Mapping[StateKind, StateChange], stamp: tuple[int, int] | None = None
    ) -> list[NetEvent]:
        """Events for what changed since the last call, stamped ``stamp``
        (when the cause of the change happened; default: now)."""
        events: list[NetEvent] = []
        wall, mono = stamp or self.clock()
        for kind, change in list(self.current.items()):
            if states.get(kind) != change:
                events.append(self._event(wall, mono, EventKind.STATE_LEFT, change))
                del self.current[kind]
        for kind, change in states.items():
            if kind not in self.current:
                events.append(self._event(wall, mono, EventKind.STATE_ENTERED, change))
                self.current[kind] = change
        return events

    def close(self, keep: Collection[StateKind] = ()) -> list[NetEvent]:
        """Leave every state (the target went away), except ``keep``."""
        return self.update({k: v for k, v in self.current.items() if k in keep})

    def _event(self, wall: int, mono: int, kind: EventKind, change: StateChange) -> NetEvent:
        return NetEvent(
            wall,
            mono,
            self.target,
            kind,
            change.link or change.bridge,
            str(change.state),
            change,
        )
