"""Conntrack entries a stale gateway leaves behind, and their removal.

With br_netfilter on, a frame the bridge floods (a query to a gateway MAC no
port owns) passes netfilter as bridged traffic and gets a conntrack entry
without NAT, since it was never routed. Unanswered, such an entry lives for
the protocol's timeout (30 s for UDP); a later packet of a connection with
the same addresses and ports matches it, leaves untranslated and is lost
(``netsleuth explain`` names it ``stale-conntrack-entry``). Pinning the
bridge's MAC ends the flooding; deleting these entries ends their tail at
once.

:func:`~netsleuth.netns.conntrack.leftovers` decides (pure): entries from a
bridge subnet to an address outside it, never answered, whose reply would go
back to the original source (no source NAT) — and only when other entries
from that subnet to outside *are* translated, i.e. the subnet is NATed in
practice (on a routed host such entries are ordinary connections waiting for
an answer).
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

from netsleuth.netns.conntrack import CtEntry, Network, leftovers

__all__ = ["CtEntry", "bridge_subnets", "delete_leftovers", "leftovers", "read_leftovers"]


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


def delete_leftovers(
    netns: str | Path | None, bridge: str, *, dry_run: bool = False
) -> list[CtEntry]:
    """Find (and unless ``dry_run``, delete) the leftovers of ``bridge``'s
    subnets in the bridge's namespace; returns them."""
    from netsleuth.netns import Namespace
    from netsleuth.netns.conntrack import Conntrack

    def body() -> list[CtEntry]:
        subnets = bridge_subnets(bridge)
        if not subnets:
            return []
        with Conntrack() as ct:
            rows = ct.entries()
            chosen = set(leftovers((e for e, _handle in rows), subnets))
            return [
                e
                for e, handle in rows
                if e in chosen and (dry_run or ct.delete(handle))  # expired meanwhile: skip
            ]

    return Namespace.of(netns).run(body)


def read_leftovers(netns: str | Path | None, bridge: str) -> tuple[str, ...] | None:
    """What :func:`delete_leftovers` would delete, as labels; None when they
    cannot be read (not root, or no conntrack in this kernel or namespace)."""
    if os.geteuid() != 0:
        return None
    try:
        return tuple(e.label for e in delete_leftovers(netns, bridge, dry_run=True))
    except OSError:  # the host layer turns the kernel's refusals into OSError
        return None
