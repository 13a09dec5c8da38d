"""The connection tracking table of the calling thread's namespace
(ctnetlink, through pyroute2): its IPv4 entries as :class:`CtEntry` and their
deletion. Run it in another namespace with :meth:`Namespace.run`."""

from __future__ import annotations

import contextlib
import ipaddress
import socket
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from netsleuth.lifecycle import Closing

__all__ = ["Conntrack", "CtEntry", "leftovers"]

IPS_SEEN_REPLY = 1 << 1


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


class Conntrack(Closing):
    """One ctnetlink socket; create and use it in one thread. The kernel's
    refusals (not root, no conntrack here) come out as :class:`OSError`."""

    def __init__(self) -> None:
        from pyroute2 import Conntrack as PrConntrack

        with _kernel():
            self._ct = PrConntrack()

    def close(self) -> None:
        self._ct.close()

    def entries(self) -> list[tuple[CtEntry, Any]]:
        """Every IPv4 entry with the handle :meth:`delete` takes."""
        with _kernel():
            raws = list(self._ct.dump_entries())
        return [(e, raw) for raw in raws if (e := _entry(raw)) is not None]

    def delete(self, handle: Any) -> bool:
        """Delete one entry; False when it had expired meanwhile."""
        from pyroute2.netlink.exceptions import NetlinkError

        try:
            self._ct.delete(handle)
        except NetlinkError:
            return False
        return True


@contextlib.contextmanager
def _kernel() -> Iterator[None]:
    from pyroute2.netlink.exceptions import NetlinkError

    try:
        yield
    except NetlinkError as exc:
        raise OSError(exc.code, str(exc)) from None


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


Network = ipaddress.IPv4Network


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
