"""Pure translation of netlink notifications into :class:`NetEvent`\\ s.

A :class:`NamespaceState` holds what one namespace looks like (links,
addresses, the default gateway, neighbour entries of interest) and turns each
decoded netlink message into zero or more events by comparing it with what it
held before: a ``mac-changed`` with old and new MAC, ``port-joined``/``port-left``
when a link's master changes, and so on. No I/O here.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from netsleuth.model import (
    EventDetail,
    EventKind,
    FdbDetail,
    LinkDetail,
    MacChange,
    MtuChange,
    NeighChange,
    NetEvent,
    OperChange,
    PortDetail,
    RouteDetail,
)

__all__ = [
    "AddrMsg",
    "FdbMsg",
    "LinkInfo",
    "LinkMsg",
    "NamespaceState",
    "NeighMsg",
    "RouteMsg",
    "nud_state_name",
]

_NUD = {
    0x01: "INCOMPLETE",
    0x02: "REACHABLE",
    0x04: "STALE",
    0x08: "DELAY",
    0x10: "PROBE",
    0x20: "FAILED",
    0x40: "NOARP",
    0x80: "PERMANENT",
}


def nud_state_name(state: int) -> str:
    names = [name for bit, name in _NUD.items() if state & bit]
    return "|".join(names) if names else "NONE"


@dataclass(frozen=True, slots=True)
class LinkInfo:
    index: int
    name: str
    mac: str
    master: int  # ifindex of the bridge, 0 if none
    operstate: str
    mtu: int
    kind: str  # "bridge", "veth", "" ...


@dataclass(frozen=True, slots=True)
class LinkMsg:
    deleted: bool
    link: LinkInfo


@dataclass(frozen=True, slots=True)
class AddrMsg:
    deleted: bool
    index: int
    address: str
    prefixlen: int


@dataclass(frozen=True, slots=True)
class RouteMsg:
    deleted: bool
    dst: str  # "default" or "a.b.c.d/len"
    gateway: str
    oif: int


@dataclass(frozen=True, slots=True)
class NeighMsg:
    deleted: bool
    index: int
    ip: str
    lladdr: str
    state: int


@dataclass(frozen=True, slots=True)
class FdbMsg:
    deleted: bool
    index: int  # the port
    master: int  # the bridge
    mac: str
    state: int


Clock = Callable[[], tuple[int, int]]  # -> (wall_ns, mono_ns)


@dataclass
class NamespaceState:
    """What one namespace looks like, kept current from netlink messages."""

    label: str
    clock: Clock
    addr_assign_type: Callable[[str], int | None] = lambda name: None
    links: dict[int, LinkInfo] = field(default_factory=dict)
    addrs: dict[str, int] = field(default_factory=dict)  # ip -> ifindex
    prefixes: dict[str, int] = field(default_factory=dict)  # ip -> prefix length
    gateway: str = ""
    gateway_oif: int = 0  # the interface the default route leaves by
    neigh: dict[str, tuple[str, int]] = field(default_factory=dict)  # ip -> (lladdr, state)
    record_neigh_for: Callable[[str], bool] = lambda ip: True
    # bridge ifindex -> every MAC it has had while followed (its current one included)
    mac_history: dict[int, set[str]] = field(default_factory=dict)
    # (bridge ifindex, MAC) -> (port ifindex, local): the bridges' forwarding databases
    fdb: dict[tuple[int, str], tuple[int, bool]] = field(default_factory=dict)

    def name_of(self, index: int) -> str:
        link = self.links.get(index)
        return link.name if link else f"if{index}"

    def bridge_macs(self, bridge_index: int) -> set[str]:
        """MACs of the ports of a bridge (its local FDB entries) right now."""
        return {link.mac for link in self.links.values() if link.master == bridge_index}

    def ports_of(self, bridge_index: int) -> list[LinkInfo]:
        return [link for link in self.links.values() if link.master == bridge_index]

    def learned_port(self, bridge_index: int, mac: str) -> int | None:
        """The port behind which ``mac`` was learned (a remote station), if any."""
        entry = self.fdb.get((bridge_index, mac))
        return entry[0] if entry is not None and not entry[1] else None

    def remember(self, link: LinkInfo) -> None:
        """Seed or update a link without events (initial dumps)."""
        self.links[link.index] = link
        if link.kind == "bridge" and link.mac:
            self.mac_history.setdefault(link.index, set()).add(link.mac)

    def _event(self, kind: EventKind, ifname: str, subject: str, detail: EventDetail) -> NetEvent:
        wall, mono = self.clock()
        return NetEvent(wall, mono, self.label, kind, ifname, subject, detail)

    # -- links -----------------------------------------------------------------
    def on_link(self, msg: LinkMsg) -> list[NetEvent]:
        new = msg.link
        old = self.links.get(new.index)
        events: list[NetEvent] = []
        if msg.deleted:
            if old is None:
                return []
            del self.links[new.index]
            if old.master:
                events.append(
                    self._event(
                        EventKind.PORT_LEFT, old.name, self.name_of(old.master), PortDetail(old.mac)
                    )
                )
            events.append(
                self._event(EventKind.LINK_REMOVED, old.name, "", LinkDetail(old.kind, old.mac))
            )
            return events
        if old is not None and not new.kind:
            new = replace(new, kind=old.kind)
        self.remember(new)
        if old is None:
            events.append(
                self._event(
                    EventKind.LINK_ADDED, new.name, "", LinkDetail(new.kind, new.mac, new.mtu)
                )
            )
            if new.master:
                events.append(
                    self._event(
                        EventKind.PORT_JOINED,
                        new.name,
                        self.name_of(new.master),
                        PortDetail(new.mac),
                    )
                )
            return events
        if old.master != new.master:
            if old.master:
                events.append(
                    self._event(
                        EventKind.PORT_LEFT, new.name, self.name_of(old.master), PortDetail(old.mac)
                    )
                )
            if new.master:
                events.append(
                    self._event(
                        EventKind.PORT_JOINED,
                        new.name,
                        self.name_of(new.master),
                        PortDetail(new.mac),
                    )
                )
        if old.mac != new.mac:
            aat = self.addr_assign_type(new.name)
            events.append(
                self._event(
                    EventKind.MAC_CHANGED, new.name, "", MacChange(old.mac, new.mac, new.kind, aat)
                )
            )
        if old.operstate != new.operstate:
            events.append(
                self._event(
                    EventKind.OPER_CHANGED, new.name, "", OperChange(old.operstate, new.operstate)
                )
            )
        if old.mtu != new.mtu:
            events.append(
                self._event(EventKind.MTU_CHANGED, new.name, "", MtuChange(old.mtu, new.mtu))
            )
        return events

    # -- addresses and routes --------------------------------------------------
    def on_addr(self, msg: AddrMsg) -> list[NetEvent]:
        if msg.deleted:
            self.addrs.pop(msg.address, None)
            self.prefixes.pop(msg.address, None)
        else:
            self.addrs[msg.address] = msg.index
            self.prefixes[msg.address] = msg.prefixlen
        return []

    def subnet_of(self, index: int) -> str:
        """The first IPv4 network of interface ``index`` (CIDR), or ``""``."""
        for ip, ifindex in self.addrs.items():
            if ifindex == index:
                return str(ipaddress.ip_interface(f"{ip}/{self.prefixes.get(ip, 32)}").network)
        return ""

    def on_route(self, msg: RouteMsg) -> list[NetEvent]:
        if msg.dst == "default":
            if msg.deleted and self.gateway == msg.gateway:
                self.gateway, self.gateway_oif = "", 0
            elif not msg.deleted and msg.gateway:
                self.gateway, self.gateway_oif = msg.gateway, msg.oif
        kind = EventKind.ROUTE_REMOVED if msg.deleted else EventKind.ROUTE_ADDED
        ifname = self.name_of(msg.oif) if msg.oif else ""
        return [self._event(kind, ifname, msg.dst, RouteDetail(msg.gateway))]

    # -- neighbours and FDB -----------------------------------------------------
    def on_neigh(self, msg: NeighMsg) -> list[NetEvent]:
        before = self.neigh.get(msg.ip)
        if msg.deleted:
            self.neigh.pop(msg.ip, None)
            after: tuple[str, int] | None = None
        else:
            lladdr = msg.lladdr or (before[0] if before else "")
            after = (lladdr, msg.state)
            self.neigh[msg.ip] = after
        if before == after or not self.record_neigh_for(msg.ip):
            return []
        return [
            self._event(
                EventKind.NEIGH_CHANGED,
                self.name_of(msg.index),
                msg.ip,
                NeighChange(
                    state="DELETED" if after is None else nud_state_name(after[1]),
                    lladdr=after[0] if after else "",
                    old_state=nud_state_name(before[1]) if before else "NONE",
                    old_lladdr=before[0] if before else "",
                ),
            )
        ]

    def on_fdb(self, msg: FdbMsg) -> list[NetEvent]:
        kind = EventKind.FDB_REMOVED if msg.deleted else EventKind.FDB_ADDED
        if msg.master and msg.mac:
            if msg.deleted:
                self.fdb.pop((msg.master, msg.mac), None)
            else:
                self.fdb[(msg.master, msg.mac)] = (msg.index, bool(msg.state & 0x80))
        bridge = self.name_of(msg.master) if msg.master else ""
        local = bool(msg.state & 0x80)
        return [self._event(kind, self.name_of(msg.index), bridge, FdbDetail(msg.mac, local))]
