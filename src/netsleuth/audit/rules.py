"""The audit rules: pure functions of a :class:`HostSnapshot`.

Each rule is a small object with an ``id``, a ``title``, the ``cause`` of the
catalogue (:mod:`netsleuth.causes`) it bears on, and
``check(snapshot) -> list[Finding]``; the evidence of a finding holds the
values the rule read, so a user can verify it by hand. Why a finding matters
and how to fix it are the catalogue's texts, filled with those values.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Protocol

from netsleuth.audit.firewall import forward_blocking, forward_blocks, nat_covering
from netsleuth.audit.snapshot import (
    ADDR_ASSIGN_NAMES,
    ZERO_MAC,
    ForwardChain,
    HostSnapshot,
    Link,
    ResolverView,
)
from netsleuth.causes import CAUSES
from netsleuth.model import Finding, Severity
from netsleuth.netns import arp_notify_key

__all__ = ["RULES", "Rule"]

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Port kinds whose links come and go with containers and VMs.
_CHURN_KINDS = {"veth", "tap", "tun", "macvtap", "vxlan"}


class Rule(Protocol):
    """An audit rule: a stable ``id``, a one-line ``title``, the catalogue
    ``cause`` its findings bear on (a finding that bears on another names it
    in ``Finding.cause``), and a pure check."""

    @property
    def id(self) -> str: ...

    @property
    def title(self) -> str: ...

    @property
    def cause(self) -> str: ...

    def check(self, snap: HostSnapshot) -> list[Finding]: ...


def _subject(snap: HostSnapshot, what: str) -> str:
    return what if snap.netns == "host" else f"{snap.netns}:{what}"


def _netns_flag(snap: HostSnapshot) -> str:
    return "" if snap.netns == "host" else f" --netns {snap.netns}"


def _aat(link: Link) -> str:
    if link.addr_assign_type is None:
        return "unknown"
    name = ADDR_ASSIGN_NAMES.get(link.addr_assign_type, "?")
    return f"{link.addr_assign_type} ({name})"


def _serves(snap: HostSnapshot, br: Link) -> tuple[tuple[Link, ...], tuple[IPNetwork, ...]]:
    ports = snap.ports(br.name)
    nets = tuple(a.network for a in snap.addresses_of(br.name) if not a.network.is_link_local)
    return ports, nets


def _churny(snap: HostSnapshot, br: Link) -> list[str]:
    reasons = sorted({p.kind for p in snap.ports(br.name) if p.kind in _CHURN_KINDS})
    reasons = [f"{k} ports" for k in reasons]
    used = snap.docker_bridges().get(br.name)
    if used:
        reasons.append(f"used by {used}")
    return reasons


def _pin_fields(snap: HostSnapshot, br: Link) -> dict[str, str]:
    """The values of the catalogue's fix for pinning ``br`` by hand."""
    return {
        "bridge": br.name,
        "netns_flag": _netns_flag(snap),
        "ip": "ip" if snap.netns == "host" else f"ip -n {snap.netns}",
        "mac": br.mac if br.mac != ZERO_MAC else "02:XX:XX:XX:XX:XX",
    }


@dataclass(frozen=True)
class BridgeMacUnpinned:
    id: str = "bridge-mac-unpinned"
    title: str = "Bridge MAC is not pinned; it follows its ports"
    cause: str = "bridge-mac-flap"

    def check(self, snap: HostSnapshot) -> list[Finding]:
        out = []
        for br in snap.bridges:
            if br.addr_assign_type is None or br.pinned:
                continue
            ports, nets = _serves(snap, br)
            if not ports and not nets:
                continue
            churn = _churny(snap, br)
            out.append(
                Finding(
                    rule=self.id,
                    severity=Severity.CRITICAL if churn else Severity.WARNING,
                    subject=_subject(snap, br.name),
                    title=self.title,
                    evidence={
                        "addr_assign_type": _aat(br),
                        "mac": br.mac,
                        "ports": [p.name for p in ports],
                        "attached": snap.attached(br.name),
                        "addresses": [str(n) for n in nets],
                        "ports_come_and_go": churn,
                    },
                    why=CAUSES[self.cause].finding_why(self.id),
                    fix=CAUSES[self.cause].finding_fix(self.id, **_pin_fields(snap, br)),
                    cause=self.cause,
                )
            )
        return out


@dataclass(frozen=True)
class BridgeMacInherited:
    id: str = "bridge-mac-inherited"
    title: str = "Bridge MAC is borrowed from a port (or all zero)"
    cause: str = "bridge-mac-flap"

    def check(self, snap: HostSnapshot) -> list[Finding]:
        out = []
        for br in snap.bridges:
            if br.pinned:
                continue
            ports = snap.ports(br.name)
            owner = [p.name for p in ports if p.mac.lower() == br.mac.lower()]
            if owner:
                severity, detail = Severity.WARNING, f"same MAC as port {owner[0]}"
            elif br.mac == ZERO_MAC:
                severity, detail = Severity.INFO, "all-zero MAC: the first port to join sets it"
            else:
                continue
            out.append(
                Finding(
                    rule=self.id,
                    severity=severity,
                    subject=_subject(snap, br.name),
                    title=self.title,
                    evidence={
                        "mac": br.mac,
                        "addr_assign_type": _aat(br),
                        "port_with_same_mac": owner,
                        "detail": detail,
                    },
                    why=CAUSES[self.cause].finding_why(self.id),
                    fix=CAUSES[self.cause].finding_fix(self.id, **_pin_fields(snap, br)),
                    cause=self.cause,
                )
            )
        return out


@dataclass(frozen=True)
class ArpNotifyOff:
    id: str = "bridge-arp-notify-off"
    title: str = "arp_notify is off on an unpinned bridge"
    cause: str = "bridge-mac-flap"

    def check(self, snap: HostSnapshot) -> list[Finding]:
        out = []
        for br in snap.bridges:
            if br.addr_assign_type is None or br.pinned or not snap.ports(br.name):
                continue
            key = arp_notify_key(br.name)
            value = snap.sysctl_int(key)
            if value is None or value != 0:
                continue
            out.append(
                Finding(
                    rule=self.id,
                    severity=Severity.WARNING,
                    subject=_subject(snap, br.name),
                    title=self.title,
                    evidence={key: value, "addr_assign_type": _aat(br)},
                    why=CAUSES[self.cause].finding_why(self.id),
                    fix=CAUSES[self.cause].finding_fix(
                        self.id, bridge=br.name, netns_flag=_netns_flag(snap)
                    ),
                    cause=self.cause,
                )
            )
        return out


def _routed_bridges(snap: HostSnapshot) -> list[tuple[Link, ipaddress.IPv4Network]]:
    """Bridges with ports and an IPv4 address: they route namespaces."""
    out: list[tuple[Link, ipaddress.IPv4Network]] = []
    for br in snap.bridges:
        if not snap.ports(br.name):
            continue
        out.extend((br, net) for net in snap.ipv4_networks_of(br.name))
    return out


@dataclass(frozen=True)
class NatMissing:
    id: str = "bridge-nat-missing"
    title: str = "Bridge subnet is routed without NAT"
    cause: str = "nat-missing"

    def check(self, snap: HostSnapshot) -> list[Finding]:
        out: list[Finding] = []
        if not snap.firewall.readable or snap.sysctl_int("net.ipv4.ip_forward") != 1:
            return out
        egress = {r.ifname for r in snap.routes if r.is_default}
        for br, net in _routed_bridges(snap):
            if (
                net.is_private
                and egress - {br.name}
                and not nat_covering(snap.firewall.nat_rules, net, br.name, egress)
            ):
                out.append(
                    Finding(
                        rule=self.id,
                        severity=Severity.WARNING,
                        subject=_subject(snap, br.name),
                        title="Private bridge subnet leaves the host without NAT",
                        evidence={
                            "subnet": str(net),
                            "egress": sorted(egress),
                            "nat_rules_seen": [
                                f"{r.origin}: {r.action} {r.source or 'any'}"
                                for r in snap.firewall.nat_rules
                            ],
                            "firewall": list(snap.firewall.backends),
                        },
                        why=CAUSES[self.cause].finding_why(self.id),
                        fix=CAUSES[self.cause].finding_fix(
                            self.id, subnet=str(net), bridge=br.name
                        ),
                        cause=self.cause,
                    )
                )
        return out


def _accept_commands(snap: HostSnapshot, chain: ForwardChain, bridge: str) -> list[str]:
    """The commands that accept ``bridge``'s traffic at the top of ``chain``
    (and the replies to it), in the namespace of the snapshot."""
    prefix = "" if snap.netns == "host" else f"ip netns exec {snap.netns} "
    words = chain.origin.split()
    if words[0] == "nft" and len(words) == 4:
        where = " ".join(words[1:])
        return [
            f'{prefix}nft insert rule {where} iifname "{bridge}" accept',
            f'{prefix}nft insert rule {where} oifname "{bridge}" ct state established,related '
            "accept",
        ]
    prog = words[0]
    return [
        f"{prefix}{prog} -I FORWARD -i {bridge} -j ACCEPT",
        f"{prefix}{prog} -I FORWARD -o {bridge} -m conntrack --ctstate RELATED,ESTABLISHED "
        "-j ACCEPT",
    ]


@dataclass(frozen=True)
class ForwardBlocked:
    """A NATed bridge subnet (so its traffic is meant to leave the host)
    whose forwarded packets meet a drop: a forward chain with policy drop, or
    an unconditional drop/reject (firewalld ends its chains with one), that
    no accept for the bridge or its subnet precedes. Internal networks
    without NAT are left alone: dropping their forwarding is often the point."""

    id: str = "bridge-forward-blocked"
    title: str = "The forward hook drops a NATed bridge subnet's traffic"
    cause: str = "forward-blocked"

    def check(self, snap: HostSnapshot) -> list[Finding]:
        out: list[Finding] = []
        if not snap.firewall.readable or snap.sysctl_int("net.ipv4.ip_forward") != 1:
            return out
        egress = {r.ifname for r in snap.routes if r.is_default}
        for br, net in _routed_bridges(snap):
            nat = nat_covering(snap.firewall.nat_rules, net, br.name, egress)
            blocks = forward_blocks(snap.firewall.forward_chains, br.name, net)
            if not nat or not blocks:
                continue
            out.append(
                Finding(
                    rule=self.id,
                    severity=Severity.CRITICAL,
                    subject=_subject(snap, br.name),
                    title=self.title,
                    evidence={
                        "subnet": str(net),
                        "nat_rule": f"{nat[0].origin}: {nat[0].action} {nat[0].source or 'any'}",
                        "blocking_chains": [
                            f"{c.origin}: {how}; accepts only "
                            + (", ".join([*c.accepts_ifnames, *c.accepts_networks]) or "replies")
                            for c, how in blocks
                        ],
                        "accept_commands": [
                            cmd for c, _ in blocks for cmd in _accept_commands(snap, c, br.name)
                        ],
                    },
                    why=CAUSES[self.cause].finding_why(self.id),
                    fix=CAUSES[self.cause].finding_fix(self.id, bridge=br.name),
                    cause=self.cause,
                )
            )
        return out


@dataclass(frozen=True)
class IpForwardOff:
    id: str = "ip-forward-off"
    title: str = "IPv4 forwarding is off while bridges route namespaces"
    cause: str = "forward-blocked"

    def check(self, snap: HostSnapshot) -> list[Finding]:
        value = snap.sysctl_int("net.ipv4.ip_forward")
        routed = _routed_bridges(snap)
        if value != 0 or not routed:
            return []
        return [
            Finding(
                rule=self.id,
                severity=Severity.CRITICAL,
                subject=_subject(snap, "net.ipv4.ip_forward"),
                title=self.title,
                evidence={
                    "net.ipv4.ip_forward": value,
                    "bridges": sorted({br.name for br, _ in routed}),
                },
                why=CAUSES[self.cause].finding_why(self.id),
                fix=CAUSES[self.cause].finding_fix(self.id, netns_flag=_netns_flag(snap)),
                cause=self.cause,
            )
        ]


@dataclass(frozen=True)
class ConntrackPressure:
    id: str = "conntrack-pressure"
    title: str = "Connection tracking table near full or dropping"
    cause: str = "conntrack-full"
    race_cause: str = "conntrack-race"
    """The cause of its finding that inserts fail or packets are dropped."""

    def check(self, snap: HostSnapshot) -> list[Finding]:
        ct = snap.conntrack
        if ct is None:
            return []
        out = []
        fill = ct.count / ct.max if ct.max else 0.0
        if fill >= 0.75:
            out.append(
                Finding(
                    rule=self.id,
                    severity=Severity.CRITICAL if fill >= 0.9 else Severity.WARNING,
                    subject=_subject(snap, "nf_conntrack"),
                    title="Connection tracking table near full",
                    evidence={"nf_conntrack_count": ct.count, "nf_conntrack_max": ct.max},
                    why=CAUSES[self.cause].finding_why(self.id),
                    fix=CAUSES[self.cause].finding_fix(self.id),
                    cause=self.cause,
                )
            )
        growing = ct.insert_failed_later is not None and (
            ct.insert_failed_later > ct.insert_failed or (ct.drop_later or 0) > ct.drop
        )
        if growing or ct.insert_failed or ct.drop:
            evidence: dict[str, object] = {"insert_failed": ct.insert_failed, "drop": ct.drop}
            if ct.insert_failed_later is not None:
                evidence[f"insert_failed_after_{ct.sample_seconds:g}s"] = ct.insert_failed_later
                evidence[f"drop_after_{ct.sample_seconds:g}s"] = ct.drop_later
            out.append(
                Finding(
                    rule=self.id,
                    severity=Severity.WARNING if growing else Severity.INFO,
                    subject=_subject(snap, "nf_conntrack"),
                    title=(
                        "conntrack insert_failed/drop counters are growing"
                        if growing
                        else "conntrack has dropped or failed inserts since boot"
                    ),
                    evidence=evidence,
                    why=CAUSES[self.race_cause].finding_why(self.id),
                    fix=CAUSES[self.race_cause].finding_fix(self.id),
                    cause=self.race_cause,
                )
            )
        return out


@dataclass(frozen=True)
class NeighPressure:
    id: str = "neigh-table-pressure"
    title: str = "Neighbour (ARP) table close to gc_thresh3"
    cause: str = "neighbour-table-full"

    def check(self, snap: HostSnapshot) -> list[Finding]:
        nb = snap.neigh
        if nb is None:
            return []
        fill = nb.entries / nb.gc_thresh3 if nb.gc_thresh3 else 0.0
        if fill < 0.75 and nb.table_fulls == 0:
            return []
        severity = Severity.CRITICAL if fill >= 0.9 else Severity.WARNING
        return [
            Finding(
                rule=self.id,
                severity=severity,
                subject=_subject(snap, "arp_cache"),
                title=self.title,
                evidence={
                    "entries": nb.entries,
                    "gc_thresh3": nb.gc_thresh3,
                    "table_fulls": nb.table_fulls,
                },
                why=CAUSES[self.cause].finding_why(self.id),
                fix=CAUSES[self.cause].finding_fix(self.id),
                cause=self.cause,
            )
        ]


@dataclass(frozen=True)
class MtuMismatch:
    id: str = "mtu-mismatch"
    title: str = "MTU differs between a bridge, its ports and the egress path"
    cause: str = "mtu-blackhole"

    def check(self, snap: HostSnapshot) -> list[Finding]:
        out = []
        egress = [snap.link(r.ifname) for r in snap.routes if r.is_default]
        egress_links = [e for e in egress if e is not None]
        egress_mtu = min((e.mtu for e in egress_links), default=None)
        for br in snap.bridges:
            ports = snap.ports(br.name)
            odd = {p.name: p.mtu for p in ports if p.mtu != br.mtu}
            too_big = (
                egress_mtu is not None
                and br.name not in {e.name for e in egress_links}
                and bool(snap.addresses_of(br.name))
                and br.mtu > egress_mtu
            )
            if not odd and not too_big:
                continue
            out.append(
                Finding(
                    rule=self.id,
                    severity=Severity.WARNING,
                    subject=_subject(snap, br.name),
                    title=self.title,
                    evidence={
                        "bridge_mtu": br.mtu,
                        "ports_with_other_mtu": odd,
                        "egress": {e.name: e.mtu for e in egress_links},
                    },
                    why=CAUSES[self.cause].finding_why(self.id),
                    fix=CAUSES[self.cause].finding_fix(
                        self.id, bridge=br.name, netns_flag=_netns_flag(snap)
                    ),
                    cause=self.cause,
                )
            )
        return out


@dataclass(frozen=True)
class BrNetfilter:
    id: str = "br-netfilter-mismatch"
    title: str = "bridge-nf-call-iptables does not fit the firewall in use"
    cause: str = "br-netfilter-off"
    forward_cause: str = "forward-blocked"
    """The cause of its finding that FORWARD drops traffic between ports."""

    def check(self, snap: HostSnapshot) -> list[Finding]:
        key = "net.bridge.bridge-nf-call-iptables"
        value = snap.sysctl_int(key)
        out = []
        if value == 1:
            for br in snap.bridges:
                if len(snap.ports(br.name)) < 2:
                    continue
                nets = snap.ipv4_networks_of(br.name) or (ipaddress.IPv4Network("0.0.0.0/32"),)
                blocked = forward_blocking(snap.firewall.forward_chains, br.name, nets[0])
                if blocked:
                    out.append(
                        Finding(
                            rule=self.id,
                            severity=Severity.WARNING,
                            subject=_subject(snap, br.name),
                            title="Bridged traffic between ports hits a FORWARD drop policy",
                            evidence={key: value, "drop_policy_chains": blocked},
                            why=CAUSES[self.forward_cause].finding_why(self.id),
                            fix=CAUSES[self.forward_cause].finding_fix(self.id, bridge=br.name),
                            cause=self.forward_cause,
                        )
                    )
        elif snap.docker and any(snap.ports(b.name) for b in snap.bridges):
            out.append(
                Finding(
                    rule=self.id,
                    severity=Severity.WARNING,
                    subject=_subject(snap, key),
                    title="Docker runs but bridged traffic bypasses iptables",
                    evidence={key: "module br_netfilter not loaded" if value is None else value},
                    why=CAUSES[self.cause].finding_why(self.id),
                    fix=CAUSES[self.cause].finding_fix(self.id),
                    cause=self.cause,
                )
            )
        return out


def _is_loopback(addr: str) -> bool:
    try:
        return ipaddress.ip_address(addr.split("%", maxsplit=1)[0]).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class ResolverUnreachable:
    id: str = "resolver-loopback-unreachable"
    title: str = "resolv.conf points at a loopback resolver nothing serves here"
    cause: str = "resolver-unreachable"

    def check(self, snap: HostSnapshot) -> list[Finding]:
        out = []
        for view in snap.resolvers:
            listening = set(view.loopback_listeners)
            dead = [
                ns
                for ns in view.nameservers
                if _is_loopback(ns)
                and ns not in listening
                and not ({"0.0.0.0", "::"} & listening and ns != "::1")
            ]
            if not dead:
                continue
            live = [ns for ns in view.nameservers if ns not in dead]
            out.append(
                Finding(
                    rule=self.id,
                    severity=Severity.WARNING if live else Severity.CRITICAL,
                    subject=view.scope,
                    title=self.title,
                    evidence={
                        "resolv.conf": view.path,
                        "nameservers": list(view.nameservers),
                        "unreachable": dead,
                        "udp_53_listeners": sorted(listening),
                    },
                    why=CAUSES[self.cause].finding_why(self.id),
                    fix=CAUSES[self.cause].finding_fix(self.id),
                    cause=self.cause,
                )
            )
        return out


DOCKER_EMBEDDED_DNS = "127.0.0.11"
# resolv.conf options that keep glibc from sending A and AAAA from one
# socket at once: a new socket for the second (single-request-reopen), one
# query after the other (single-request), or TCP (use-vc).
SERIAL_OPTIONS = ("single-request-reopen", "single-request", "use-vc")


def _private_source(snap: HostSnapshot) -> str:
    """An IPv4 address of this namespace from a private range, or ''."""
    for a in snap.addresses:
        try:
            ip = ipaddress.IPv4Address(a.address)
        except ValueError:
            continue
        if ip.is_private and not ip.is_loopback and not ip.is_link_local:
            return a.address
    return ""


def _host_nat(snap: HostSnapshot) -> str:
    """The origin of a NAT rule covering one of the host's routed bridge
    subnets, when this host forwards; else ''."""
    if snap.sysctl_int("net.ipv4.ip_forward") != 1:
        return ""
    egress = {r.ifname for r in snap.routes if r.is_default}
    for br, net in _routed_bridges(snap):
        nat = nat_covering(snap.firewall.nat_rules, net, br.name, egress)
        if nat:
            return nat[0].origin
    return ""


def nat_path(snap: HostSnapshot, view: ResolverView) -> str:
    """Why the queries of ``view``'s namespace pass NAT on their way to a
    nameserver ('' if we cannot tell): Docker's embedded resolver sits behind
    a DNAT in the container; a namespace seen from the host reaches a
    non-local server through the host's masquerade; a namespace read from
    inside sends from a private address by its default route."""
    if view.scope == "host" and snap.netns == "host":
        return ""  # the host's own lookups are not translated
    if DOCKER_EMBEDDED_DNS in view.nameservers:
        return f"Docker's embedded resolver {DOCKER_EMBEDDED_DNS} is reached through a DNAT"
    remote = [ns for ns in view.nameservers if not _is_loopback(ns)]
    if not remote:
        return ""
    if view.scope != snap.netns:  # another namespace, seen from the host
        own = {a.address for a in snap.addresses}
        routed = [ns for ns in remote if ns not in own]
        origin = _host_nat(snap)
        if routed and origin:
            return f"queries to {routed[0]} are routed by this host and masqueraded ({origin})"
        return ""
    gateways = [r for r in snap.routes if r.is_default and r.gateway and r.network.version == 4]
    source = _private_source(snap)
    if not gateways or not source:
        return ""
    connected = [a.network for a in snap.addresses]
    for ns in remote:
        try:
            ip = ipaddress.ip_address(ns.split("%", maxsplit=1)[0])
        except ValueError:
            continue
        if ip.version == 4 and not any(ip in net for net in connected):
            return (
                f"queries to {ns} leave by the default route via {gateways[0].gateway} from the "
                f"private address {source}: translated on the way out"
            )
    return ""


def fix_target(snap: HostSnapshot, view: ResolverView) -> str:
    """The target ``netsleuth fix resolv-options`` takes for ``view``:
    ``netns:NAME`` or ``container:NAME`` (``NETNS`` for the host's own
    resolv.conf, which that command does not edit)."""
    if view.scope == "host":
        return "NETNS"
    kind, _, name = view.scope.partition(" ")
    if kind in ("netns", "container") and name:
        return f"{kind}:{name}"
    return f"netns:{view.scope}"


# From 5.0 the kernel resolves the clash of two packets of one socket racing
# to insert the same conntrack entry (nf_conntrack: resolve clash for matching
# conntracks; nf_nat: skip nat clash resolution for same-origin entries).
CLASH_RESOLVED = (5, 0)


@dataclass(frozen=True)
class ResolverParallelQueries:
    """glibc sends the A and AAAA queries of one lookup at once from one
    socket; through NAT the two packets race to insert one conntrack entry."""

    id: str = "resolver-parallel-queries"
    title: str = "A and AAAA queries leave one socket at once through NAT"
    cause: str = "conntrack-race"

    def check(self, snap: HostSnapshot) -> list[Finding]:
        out = []
        version = snap.kernel_version
        old_kernel = version is not None and version < CLASH_RESOLVED
        for view in snap.resolvers:
            if set(view.options) & set(SERIAL_OPTIONS):
                continue
            path = nat_path(snap, view)
            if not path:
                continue
            target = fix_target(snap, view)
            out.append(
                Finding(
                    rule=self.id,
                    severity=Severity.WARNING if old_kernel else Severity.INFO,
                    subject=view.scope,
                    title=self.title,
                    evidence={
                        "resolv.conf": view.path,
                        "nameservers": list(view.nameservers),
                        "options": list(view.options),
                        "nat": path,
                        "kernel": snap.kernel or "unknown",
                        "kernel_resolves_the_clash": (
                            "unknown" if version is None else ("no" if old_kernel else "yes")
                        ),
                    },
                    why=CAUSES[self.cause].finding_why(self.id),
                    fix=CAUSES[self.cause].finding_fix(self.id, target=target),
                    cause=self.cause,
                )
            )
        return out


def _example_name(ndots: int) -> str:
    """An ordinary external name with fewer than ``ndots`` dots."""
    return "example.com" if ndots <= 2 else "www.example.com"


@dataclass(frozen=True)
class ResolverSearchAmplification:
    """A name with fewer dots than ``ndots`` is tried with every search
    domain before it is tried as given: with ``ndots:5`` and three search
    domains an external lookup costs four names times A and AAAA, most of
    them NXDOMAIN, which a rate-limited upstream counts."""

    id: str = "resolver-search-amplification"
    title: str = "ndots and the search list multiply every external lookup"
    cause: str = "upstream-rate-limit"

    def check(self, snap: HostSnapshot) -> list[Finding]:
        out = []
        for view in snap.resolvers:
            ndots, domains = view.ndots, len(view.search)
            if ndots < 2 or domains < 2:
                continue
            names = domains + 1
            target = fix_target(snap, view)
            out.append(
                Finding(
                    rule=self.id,
                    severity=Severity.WARNING if ndots >= 3 and names >= 4 else Severity.INFO,
                    subject=view.scope,
                    title=self.title,
                    evidence={
                        "resolv.conf": view.path,
                        "ndots": ndots,
                        "search": list(view.search),
                        "example": _example_name(ndots),
                        "queries_per_lookup": f"{2 * names} (A and AAAA for {names} names) "
                        "instead of 2",
                    },
                    why=CAUSES[self.cause].finding_why(self.id),
                    fix=CAUSES[self.cause].finding_fix(self.id, target=target),
                    cause=self.cause,
                )
            )
        return out


@dataclass(frozen=True)
class ResolverSocketDrops:
    """The kernel counts, per UDP socket, the datagrams it dropped because
    the socket's receive buffer was full; a DNS server socket with drops has
    lost queries since it was opened."""

    id: str = "resolver-socket-drops"
    title: str = "A DNS server socket here has dropped queries (receive buffer full)"
    cause: str = "resolver-overload"

    def check(self, snap: HostSnapshot) -> list[Finding]:
        out = []
        for sock in snap.dns_sockets:
            if sock.drops <= 0:
                continue
            where = f"[{sock.address}]" if ":" in sock.address else sock.address
            evidence: dict[str, object] = {
                "socket": f"udp {where}:{sock.port}",
                "drops_since_opened": sock.drops,
                "rx_queue_bytes_now": sock.rx_queue,
            }
            for key in ("net.core.rmem_default", "net.core.rmem_max"):
                value = snap.sysctl_int(key)
                if value is not None:
                    evidence[key] = value
            out.append(
                Finding(
                    rule=self.id,
                    severity=Severity.WARNING,
                    subject=_subject(snap, f"udp {where}:{sock.port}"),
                    title=self.title,
                    evidence=evidence,
                    why=CAUSES[self.cause].finding_why(self.id),
                    fix=CAUSES[self.cause].finding_fix(self.id),
                    cause=self.cause,
                )
            )
        return out


@dataclass(frozen=True)
class DockerBridgeUnpinned:
    id: str = "docker-bridge-unpinned"
    title: str = "Docker uses a pre-created bridge whose MAC is not pinned"
    cause: str = "bridge-mac-flap"

    def check(self, snap: HostSnapshot) -> list[Finding]:
        out = []
        for name, how in sorted(snap.docker_bridges().items()):
            br = snap.link(name)
            if br is None or br.addr_assign_type is None or br.pinned:
                continue
            out.append(
                Finding(
                    rule=self.id,
                    severity=Severity.CRITICAL,
                    subject=_subject(snap, name),
                    title=self.title,
                    evidence={
                        "used_by": how,
                        "addr_assign_type": _aat(br),
                        "mac": br.mac,
                        "ports": [p.name for p in snap.ports(name)],
                    },
                    why=CAUSES[self.cause].finding_why(self.id),
                    fix=CAUSES[self.cause].finding_fix(self.id, **_pin_fields(snap, br)),
                    cause=self.cause,
                )
            )
        return out


@dataclass(frozen=True)
class StrictRpFilter:
    id: str = "rp-filter-strict-asymmetric"
    title: str = "Strict rp_filter on a bridge with asymmetric routes"
    cause: str = "rp-filter"

    def check(self, snap: HostSnapshot) -> list[Finding]:
        out = []
        all_value = snap.sysctl_int("net.ipv4.conf.all.rp_filter") or 0
        defaults = [r for r in snap.routes if r.is_default and r.network.version == 4]
        for br in snap.bridges:
            own = snap.sysctl_int(f"net.ipv4.conf.{br.name}.rp_filter") or 0
            if max(all_value, own) != 1:
                continue
            behind = [r.dst for r in snap.routes if r.ifname == br.name and r.gateway]
            reasons = []
            if behind:
                reasons.append(f"networks routed via the bridge: {', '.join(behind)}")
            if len({r.ifname for r in defaults}) > 1:
                reasons.append("default routes via several interfaces")
            if not reasons:
                continue
            out.append(
                Finding(
                    rule=self.id,
                    severity=Severity.WARNING,
                    subject=_subject(snap, br.name),
                    title=self.title,
                    evidence={
                        "net.ipv4.conf.all.rp_filter": all_value,
                        f"net.ipv4.conf.{br.name}.rp_filter": own,
                        "asymmetry": reasons,
                    },
                    why=CAUSES[self.cause].finding_why(self.id),
                    fix=CAUSES[self.cause].finding_fix(
                        self.id, bridge=br.name, netns_flag=_netns_flag(snap)
                    ),
                    cause=self.cause,
                )
            )
        return out


@dataclass(frozen=True)
class OverlappingSubnets:
    id: str = "subnet-overlap"
    title: str = "Bridge subnet overlaps another route"
    cause: str = "subnet-overlap"

    def check(self, snap: HostSnapshot) -> list[Finding]:
        out = []
        seen: set[tuple[str, str]] = set()
        for br in snap.bridges:
            for net in snap.ipv4_networks_of(br.name):
                clashes = []
                for r in snap.routes:
                    if r.ifname == br.name or r.is_default:
                        continue
                    if r.network.version == 4 and net.overlaps(r.network):
                        key = tuple(sorted((f"{br.name}:{net}", f"{r.ifname}:{r.dst}")))
                        if key in seen:
                            continue
                        seen.add((key[0], key[1]))
                        clashes.append(f"{r.dst} via {r.gateway or 'link'} dev {r.ifname}")
                if not clashes:
                    continue
                out.append(
                    Finding(
                        rule=self.id,
                        severity=Severity.WARNING,
                        subject=_subject(snap, br.name),
                        title=self.title,
                        evidence={"subnet": str(net), "overlapping_routes": clashes},
                        why=CAUSES[self.cause].finding_why(self.id),
                        fix=CAUSES[self.cause].finding_fix(self.id),
                        cause=self.cause,
                    )
                )
        return out


@dataclass(frozen=True)
class MacAddressPolicy:
    id: str = "udev-mac-policy"
    title: str = "udev MACAddressPolicy does not pin bridges here"
    cause: str = "bridge-mac-flap"

    def check(self, snap: HostSnapshot) -> list[Finding]:
        unpinned = [
            b.name
            for b in snap.bridges
            if b.addr_assign_type is not None and not b.pinned and snap.ports(b.name)
        ]
        if not unpinned:
            return []
        policies = [p for p in snap.link_policies if p.matches_bridges]
        effective = policies[0].policy if policies else ""
        if snap.udev_running and effective == "persistent":
            # udev pins bridges created from now on; these existed before or were
            # renamed, which the other rules already report.
            return []
        if not snap.udev_running:
            reason = (
                "no udev daemon runs in this environment, so .link files (and their "
                f"MACAddressPolicy={effective or 'unset'}) are never applied to new bridges"
            )
        else:
            reason = f"MACAddressPolicy for bridges is {effective or 'unset'}, not persistent"
        return [
            Finding(
                rule=self.id,
                severity=Severity.INFO,
                subject=_subject(snap, "udev"),
                title=self.title,
                evidence={
                    "udev_running": snap.udev_running,
                    "link_files": [f"{p.path}: MACAddressPolicy={p.policy}" for p in policies],
                    "unpinned_bridges": unpinned,
                    "reason": reason,
                },
                why=CAUSES[self.cause].finding_why(self.id),
                fix=CAUSES[self.cause].finding_fix(self.id),
                cause=self.cause,
            )
        ]


@dataclass(frozen=True)
class StpForwardDelay:
    """From real trackers (moby, libvirt): STP on a container bridge keeps
    every new port in listening/learning for twice the forward delay."""

    id: str = "bridge-stp-delay"
    title: str = "STP on a container bridge delays every new port"
    cause: str = "stp-forward-delay"

    def check(self, snap: HostSnapshot) -> list[Finding]:
        out = []
        for br in snap.bridges:
            stp, delay_cs = br.stp_state, br.forward_delay_cs
            if not stp or delay_cs < 200:
                continue
            if not any(p.kind in _CHURN_KINDS for p in snap.ports(br.name)):
                continue
            out.append(
                Finding(
                    rule=self.id,
                    severity=Severity.WARNING,
                    subject=_subject(snap, br.name),
                    title=self.title,
                    evidence={"stp_state": stp, "forward_delay_s": delay_cs / 100},
                    why=CAUSES[self.cause].finding_why(
                        self.id, forward_delay=f"{delay_cs / 100:g}"
                    ),
                    fix=CAUSES[self.cause].finding_fix(self.id, bridge=br.name),
                    cause=self.cause,
                )
            )
        return out


RULES: tuple[Rule, ...] = (
    BridgeMacUnpinned(),
    BridgeMacInherited(),
    ArpNotifyOff(),
    NatMissing(),
    ForwardBlocked(),
    IpForwardOff(),
    ConntrackPressure(),
    NeighPressure(),
    MtuMismatch(),
    BrNetfilter(),
    ResolverUnreachable(),
    ResolverParallelQueries(),
    ResolverSearchAmplification(),
    ResolverSocketDrops(),
    DockerBridgeUnpinned(),
    StrictRpFilter(),
    OverlappingSubnets(),
    MacAddressPolicy(),
    StpForwardDelay(),
)
