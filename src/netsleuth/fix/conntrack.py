"""Conntrack entries a stale gateway leaves behind, and their removal.

With br_netfilter on, a frame the bridge floods (a query to a gateway MAC no
port owns) passes netfilter as bridged traffic and gets a conntrack entry
without NAT, since it was never routed. Unanswered, such an entry lives for
the protocol's timeout (30 s for UDP); a later packet of a connection with
the same addresses and ports matches it, leaves untranslated and is lost
(``netsleuth explain`` names it ``stale-conntrack-entry``). Pinning the
bridge's MAC ends the flooding; deleting these entries ends their tail at
once.

:func:`leftovers` decides (pure): entries from a bridge subnet to an address
outside it, never answered, whose reply would go back to the original source
(no source NAT) — and only when other entries from that subnet to outside
*are* translated, i.e. the subnet is NATed in practice (on a routed host such
entries are ordinary connections waiting for an answer).
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["CtEntry", "bridge_subnets", "delete_leftovers", "leftovers", "read_leftovers"]

IPS_SEEN_REPLY = 1 << 1

Network = ipaddress.IPv4Network


@dataclass(frozen=True, slots=True)
class CtEntry:
    """What the decision needs of one conntrack entry (IPv4)."""

    proto: int
    src: str
    dst: str
    sport: int
    dport: int
    reply_dst: str  # where an answer goes: the original source unless SNAT rewrote it
    replied: bool

    @property
    def label(self) -> str:
        name = {socket.IPPROTO_UDP: "udp", socket.IPPROTO_TCP: "tcp"}.get(self.proto, "ip")
        return f"{name} {self.src}:{self.sport} -> {self.dst}:{self.dport}"


def _within(address: str, subnets: Sequence[Network]) -> Network | None:
    try:
        ip = ipaddress.IPv4Address(address)
    except ValueError:
        return None
    return next((net for net in subnets if ip in net), None)


def leftovers(entries: Iterable[CtEntry], subnets: Sequence[Network]) -> list[CtEntry]:
    """Entries made without NAT for traffic that should have been NATed."""
    natted: set[Network] = set()
    candidates: list[tuple[Network, CtEntry]] = []
    for e in entries:
        net = _within(e.src, subnets)
        if net is None or _within(e.dst, subnets) is not None:
            continue  # not from a bridge subnet, or within the bridges
        if e.reply_dst != e.src:
            natted.add(net)
        elif not e.replied:
            candidates.append((net, e))
    return [e for net, e in candidates if net in natted]


def bridge_subnets(bridge: str) -> list[Network]:
    """The IPv4 subnets of ``bridge`` in the calling thread's namespace."""
    from netsleuth.netns import Links

    with Links() as links:
        index = links.find(bridge)
        addrs = links.addresses() if index is not None else []
    return [
        ipaddress.IPv4Network(f"{a.address}/{a.prefixlen}", strict=False)
        for a in addrs
        if a.index == index and ":" not in a.address
    ]


def _entry(raw: Any) -> CtEntry | None:
    o, r = raw.tuple_orig, raw.tuple_reply
    if o.family != socket.AF_INET or not o.saddr or not r.daddr:
        return None
    return CtEntry(
        proto=int(o.proto or 0),
        src=str(o.saddr),
        dst=str(o.daddr),
        sport=int(o.sport or 0),
        dport=int(o.dport or 0),
        reply_dst=str(r.daddr),
        replied=bool((raw.status or 0) & IPS_SEEN_REPLY),
    )


def delete_leftovers(
    netns: str | Path | None, bridge: str, *, dry_run: bool = False
) -> list[CtEntry]:
    """Find (and unless ``dry_run``, delete) the leftovers of ``bridge``'s
    subnets in the bridge's namespace; returns them."""
    from pyroute2 import Conntrack
    from pyroute2.netlink.exceptions import NetlinkError

    from netsleuth.netns import Namespace

    def body() -> list[CtEntry]:
        subnets = bridge_subnets(bridge)
        if not subnets:
            return []
        with Conntrack() as ct:
            raws = [(e, raw) for raw in ct.dump_entries() if (e := _entry(raw)) is not None]
            chosen = set(leftovers((e for e, _raw in raws), subnets))
            out = []
            for e, raw in raws:
                if e in chosen:
                    if not dry_run:
                        try:
                            ct.delete(raw)
                        except NetlinkError:  # expired meanwhile
                            continue
                    out.append(e)
        return out

    return Namespace.of(netns).run(body)


def read_leftovers(netns: str | Path | None, bridge: str) -> tuple[str, ...] | None:
    """What :func:`delete_leftovers` would delete, as labels; None when they
    cannot be read (not root, or no conntrack in this kernel or namespace)."""
    from pyroute2.netlink.exceptions import NetlinkError

    if os.geteuid() != 0:
        return None
    try:
        return tuple(e.label for e in delete_leftovers(netns, bridge, dry_run=True))
    except (NetlinkError, OSError):
        return None
