"""The topology the watch finds by itself, and the path states it keeps.

Data flows: for each target, :func:`discover` follows the veth its default
route leaves by to the peer, the peer's bridge and their namespace
(:func:`netsleuth.packets.hops.target_specs`, read-only); :func:`choose_host`
picks the namespace most targets' bridges live in; :meth:`PathWatch.attach`
completes a target's :class:`~netsleuth.events.paths.TargetPath` from its own
namespace's state. From then on the engine calls :meth:`PathWatch.update`
after every event batch (under its lock): each target's path is checked
(:func:`~netsleuth.events.paths.path_states`, pure) and its changes come back
as ``state-entered`` / ``state-left`` events, with the gateways at risk.
The host namespace's own way out (its default route, or its uplinks'
addresses) is checked too: when it is lost every followed target and the
control are in ``route-missing``. The
firewall of the host namespace is re-read (:func:`read_firewall`) only after
``nft monitor`` reported a change, and the states it changes are stamped with
that change's time.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field

from netsleuth import netns
from netsleuth.errors import NetsleuthError
from netsleuth.events import wall_mono
from netsleuth.events.netlink import NetlinkMonitor
from netsleuth.events.paths import (
    EgressSeen,
    FirewallView,
    StateTracker,
    TargetPath,
    at_risk,
    egress_state,
    path_states,
)
from netsleuth.events.state import NamespaceState
from netsleuth.model import ADDR_ASSIGN_SET, EventKind, LinkDetail, MacChange, NetEvent
from netsleuth.watch.targets import Location, Target

__all__ = ["Discovery", "PathWatch", "choose_host", "discover", "egress_links", "read_firewall"]

Stamp = tuple[int, int]  # (wall_ns, mono_ns)


@dataclass(frozen=True, slots=True)
class Discovery:
    """Where a target's veth leads: the peer's namespace (``""`` ours, None:
    not found), the peer and the bridge it is a port of (``""``: none)."""

    peer_ns: str | None = None
    peer: str = ""
    bridge: str = ""


def discover(target: Target, loc: Location) -> Discovery:
    """Follow the target's veth to its peer and the peer's bridge."""
    from netsleuth.packets.hops import target_specs

    if loc.path is None or target.kind == "host":
        return Discovery()
    try:
        specs = target_specs(loc.path, target.label)
    except NetsleuthError:
        return Discovery()  # no veth, or its peer is in an unnamed namespace: no path
    peer_ns, peer, bridge = None, "", ""
    for spec in specs:
        if spec.role == "client":
            peer_ns, peer = spec.netns, spec.ifname
        elif spec.role == "bridge":
            bridge = spec.ifname
    return Discovery(peer_ns, peer, bridge)


def choose_host(given: str | None, found: Sequence[Discovery]) -> str | None:
    """The namespace playing host: the one given, else the one most targets'
    bridges live in (None: this process's own)."""
    if given is not None:
        return given
    names = [d.peer_ns for d in found if d.peer_ns is not None]
    if not names:
        return None
    return max(sorted(set(names)), key=names.count) or None


def follow(label: str, found: Discovery, state: NamespaceState) -> TargetPath | None:
    """The target's whole path, from what was discovered and the state of its
    own namespace (the veth its default route leaves by, or its only veth)."""
    if found.peer_ns is None:
        return None
    veth = state.links.get(state.gateway_oif) if state.gateway_oif else None
    if veth is None:
        veths = [link for link in state.links.values() if link.kind == "veth"]
        veth = veths[0] if len(veths) == 1 else None
    if veth is None:
        return None
    return TargetPath(
        target=label,
        veth=veth.name,
        peer=found.peer,
        bridge=found.bridge,
        subnet=state.subnet_of(veth.index),
        gateway=state.gateway,
    )


def egress_links(host: NamespaceState) -> tuple[str, ...]:
    """Every interface traffic could leave the host namespace by: not a
    bridge, not a bridge's port, not loopback."""
    return tuple(
        sorted(
            link.name
            for link in host.links.values()
            if link.kind != "bridge" and not link.master and link.name != "lo"
        )
    )


def read_firewall(host_netns: str | None, egress: tuple[str, ...]) -> FirewallView | None:
    """The NAT rules and forward chains of the host namespace's nftables
    (None when nft cannot be read)."""
    from netsleuth.audit.firewall import parse_nft_json

    argv = netns.exec_argv(host_netns, ["nft", "-j", "list", "ruleset"])
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=5, check=False)
        doc = json.loads(out.stdout) if out.returncode == 0 else None
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return None
    if not isinstance(doc, dict):
        return None
    nat, chains = parse_nft_json(doc)
    return FirewallView(tuple(nat), tuple(chains), egress)


@dataclass
class _Followed:
    path: TargetPath
    tracker: StateTracker
    inside: NamespaceState
    nat_seen: bool = False


@dataclass
class PathWatch:
    """The path states of every followed target, kept current. Every method
    but :meth:`refresh_firewall` is called under the engine's lock."""

    host: NetlinkMonitor
    control: str | None = None
    """The target probing from the host namespace: it shares the host's way out."""
    firewall: FirewallView | None = None
    risks: list[str] = field(default_factory=list)
    _egress: EgressSeen = field(default_factory=EgressSeen)
    _control_tracker: StateTracker | None = None
    _pinned: dict[str, bool | None] = field(default_factory=dict)
    _dirty: Stamp | None = None  # time of the first firewall change not read yet
    _followed: dict[str, _Followed] = field(default_factory=dict)

    def attach(self, label: str, found: Discovery, inside: NamespaceState) -> TargetPath | None:
        """Follow a target whose bridge is in the host namespace (again, after
        it came back); its path, or None when it has none."""
        self._followed.pop(label, None)
        path = follow(label, found, inside)
        if path is None:
            return None
        entry = _Followed(path, StateTracker(label, wall_mono), inside)
        entry.nat_seen = self._covered(path)
        self._followed[label] = entry
        return path

    def detach(self, label: str) -> list[NetEvent]:
        """Stop following a target that went away: its states end now."""
        entry = self._followed.pop(label, None)
        return entry.tracker.close() if entry is not None else []

    @property
    def paths(self) -> list[TargetPath]:
        return [e.path for e in self._followed.values()]

    def note(self, events: Sequence[NetEvent]) -> None:
        """Keep the bridges' pinned flags current and notice firewall changes."""
        for ev in events:
            if ev.netns != "host":
                continue
            detail = ev.detail
            if isinstance(detail, MacChange) and detail.kind == "bridge":
                self._pinned[ev.ifname] = _pinned(detail.addr_assign_type)
            elif isinstance(detail, LinkDetail) and ev.kind is EventKind.LINK_ADDED:
                self._pinned.pop(ev.ifname, None)
            elif ev.kind is EventKind.FIREWALL_CHANGED and self._dirty is None:
                self._dirty = (ev.wall_ns, ev.mono_ns)

    def set_pinned(self, bridge: str, addr_assign_type: int | None) -> None:
        self._pinned[bridge] = _pinned(addr_assign_type)

    @property
    def firewall_stale(self) -> bool:
        return self._dirty is not None

    def take_firewall_stamp(self) -> Stamp | None:
        stamp, self._dirty = self._dirty, None
        return stamp

    def set_firewall(self, view: FirewallView | None) -> None:
        self.firewall = view
        for entry in self._followed.values():
            entry.nat_seen = entry.nat_seen or self._covered(entry.path)

    def update(self, stamp: Stamp | None = None) -> tuple[list[NetEvent], list[str]]:
        """The state events of every followed target that changed (stamped
        ``stamp``, default now), and the gateways at risk right now."""
        events: list[NetEvent] = []
        host = self.host.state
        self._egress = self._egress.update(host, egress_links(host))
        egress = egress_state(host, self._egress)
        for entry in self._followed.values():
            path = entry.path
            states = path_states(
                path,
                host,
                entry.inside,
                pinned=self._pinned_of(path.bridge) if path.bridge else None,
                firewall=self.firewall,
                nat_seen=entry.nat_seen,
                egress=egress,
            )
            events.extend(entry.tracker.update(states, stamp))
        if self.control is not None:
            if self._control_tracker is None:
                self._control_tracker = StateTracker(self.control, wall_mono)
            own = {egress.state: egress} if egress is not None else {}
            events.extend(self._control_tracker.update(own, stamp))
        self.risks = [
            r.sentence
            for r in at_risk({label: e.tracker.current for label, e in self._followed.items()})
        ]
        return events, self.risks

    def _covered(self, path: TargetPath) -> bool:
        fw = self.firewall
        return bool(fw and path.subnet and path.bridge and fw.nat_covers(path.subnet, path.bridge))

    def _pinned_of(self, bridge: str) -> bool | None:
        if bridge not in self._pinned:
            self._pinned[bridge] = _pinned(self.host.addr_assign_type(bridge))
        return self._pinned[bridge]


def _pinned(addr_assign_type: int | None) -> bool | None:
    return None if addr_assign_type is None else addr_assign_type == ADDR_ASSIGN_SET
