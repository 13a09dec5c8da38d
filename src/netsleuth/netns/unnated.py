"""Conntrack entries that escaped NAT, counted cheaply once a second.

With br_netfilter on, a frame a bridge floods (sent to a gateway MAC no port
owns) passes netfilter as bridged traffic: its conntrack entry is made
without NAT and, unanswered, lives for the protocol's timeout. A later
packet with the same addresses and ports matches it and leaves the host
untranslated. :class:`UnnatedReader` counts such entries in one namespace:
unreplied, not source-NATed, from a bridge subnet to an address outside the
bridges, in a subnet that *is* NATed in practice (some entry from it was
translated; on a routed host such entries are ordinary connections waiting
for an answer). The decision is :func:`netsleuth.netns.conntrack.leftovers`,
the one ``fix bridge`` deletes by.

Cost: the table is dumped with the kernel's own filter (``CTA_STATUS`` /
``CTA_STATUS_MASK``, Linux 5.15+: only entries that never saw a reply and
were not translated come back), read with ``struct`` from a netlink socket
opened in the namespace. A NAT host's table is mostly answered, translated
entries, so a sample is one kernel walk and a handful of messages; only
when candidates come back are the bridges' subnets read and one client's
translated entries asked for (cached for :data:`NATED_TTL_NS`). pyroute2
decodes every attribute of every entry (over a second for 10,000 here) and
opens its socket in whichever thread first uses it, so this reads the few
attributes it needs itself.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import struct
import time
from collections.abc import Iterable, Sequence

from netsleuth.netns.conntrack import IPS_SEEN_REPLY, CtEntry, leftovers
from netsleuth.netns.rtnl import (
    _IFINFO,
    IFLA_EXT_MASK,
    IFLA_INFO_KIND,
    IFLA_LINKINFO,
    RTEXT_FILTER_SKIP_STATS,
    RTM_GETLINK,
    RTM_NEWLINK,
    _attrs,
    _dump,
    route_socket,
)

__all__ = [
    "IPS_SRC_NAT",
    "NATED_TTL_NS",
    "UnnatedReader",
    "dump_request",
    "parse_entry",
]

NETLINK_NETFILTER = 12
IPCTNL_MSG_CT_NEW, IPCTNL_MSG_CT_GET = 0, 1
CT_GET = (1 << 8) | IPCTNL_MSG_CT_GET  # NFNL_SUBSYS_CTNETLINK
CT_NEW = (1 << 8) | IPCTNL_MSG_CT_NEW
IPS_SRC_NAT = 1 << 4

CTA_TUPLE_ORIG, CTA_TUPLE_REPLY, CTA_STATUS = 1, 2, 3
CTA_FILTER, CTA_STATUS_MASK = 25, 26
CTA_TUPLE_IP, CTA_TUPLE_PROTO = 1, 2
CTA_IP_V4_SRC, CTA_IP_V4_DST = 1, 2
CTA_PROTO_NUM, CTA_PROTO_SRC_PORT, CTA_PROTO_DST_PORT = 1, 2, 3
CTA_FILTER_ORIG_FLAGS = 1
CTA_FILTER_FLAG_IP_SRC = 1 << 0
NLA_F_NESTED = 1 << 15

RTM_NEWADDR, RTM_GETADDR = 20, 22
IFA_ADDRESS, IFA_LOCAL = 1, 2

NATED_TTL_NS = 30_000_000_000
"""How long a subnet found NATed is believed before it is asked again ..."""

UNNATED_TTL_NS = 3_000_000_000
"""... and one found not NATed (yet: its first translated entry may be a moment away)."""

SUBNETS_TTL_NS = 10_000_000_000
"""How long the bridges' subnets are kept before they are read again."""

_NFGEN = struct.Struct("=BBH")
_IFADDR = struct.Struct("=BBBBI")


def _nla(kind: int, payload: bytes) -> bytes:
    pad = b"\0" * (-(4 + len(payload)) % 4)
    return struct.pack("=HH", 4 + len(payload), kind) + payload + pad


def dump_request(status: int, mask: int, src: str | None = None) -> bytes:
    """The body of a ctnetlink dump of the IPv4 entries whose status bits
    ``mask`` equal ``status`` (and, with ``src``, whose original source is it)."""
    body = _NFGEN.pack(socket.AF_INET, 0, 0)
    if src is not None:
        ip = _nla(CTA_IP_V4_SRC, ipaddress.IPv4Address(src).packed)
        body += _nla(CTA_TUPLE_ORIG | NLA_F_NESTED, _nla(CTA_TUPLE_IP | NLA_F_NESTED, ip))
        flags = _nla(CTA_FILTER_ORIG_FLAGS, struct.pack("=I", CTA_FILTER_FLAG_IP_SRC))
        body += _nla(CTA_FILTER | NLA_F_NESTED, flags)
    body += _nla(CTA_STATUS, struct.pack("!I", status))
    body += _nla(CTA_STATUS_MASK, struct.pack("!I", mask))
    return body


def _tuple(value: bytes) -> tuple[str, str, int, int, int]:
    src = dst = ""
    proto = sport = dport = 0
    for kind, sub in _attrs(value, 0, len(value)):
        if kind == CTA_TUPLE_IP:
            for k, v in _attrs(sub, 0, len(sub)):
                if k == CTA_IP_V4_SRC and len(v) == 4:
                    src = socket.inet_ntoa(v)
                elif k == CTA_IP_V4_DST and len(v) == 4:
                    dst = socket.inet_ntoa(v)
        elif kind == CTA_TUPLE_PROTO:
            for k, v in _attrs(sub, 0, len(sub)):
                if k == CTA_PROTO_NUM and v:
                    proto = v[0]
                elif k == CTA_PROTO_SRC_PORT and len(v) >= 2:
                    (sport,) = struct.unpack_from("!H", v)
                elif k == CTA_PROTO_DST_PORT and len(v) >= 2:
                    (dport,) = struct.unpack_from("!H", v)
    return src, dst, proto, sport, dport


def parse_entry(data: bytes, start: int, end: int) -> tuple[CtEntry, int] | None:
    """One ``IPCTNL_MSG_CT_NEW`` message (payload from ``start`` to ``end``)
    -> (the entry, its status bits); None for one that is not IPv4."""
    orig: tuple[str, str, int, int, int] | None = None
    reply_dst = ""
    status = 0
    for kind, value in _attrs(data, start + _NFGEN.size, end):
        if kind == CTA_TUPLE_ORIG:
            orig = _tuple(value)
        elif kind == CTA_TUPLE_REPLY:
            reply_dst = _tuple(value)[1]
        elif kind == CTA_STATUS and len(value) == 4:
            (status,) = struct.unpack("!I", value)
    if orig is None or not orig[0] or not reply_dst:
        return None
    src, dst, proto, sport, dport = orig
    entry = CtEntry(proto, src, dst, sport, dport, reply_dst, bool(status & IPS_SEEN_REPLY))
    return entry, status


def _addresses(sock: socket.socket) -> list[tuple[int, str, int]]:
    """(link index, IPv4 address, prefix length) of every address of the namespace."""
    out = []
    body = _IFADDR.pack(socket.AF_INET, 0, 0, 0, 0)
    for data, start, end in _dump(RTM_GETADDR, body, RTM_NEWADDR, sock):
        _fam, prefixlen, _flags, _scope, index = _IFADDR.unpack_from(data, start)
        local = address = ""
        for kind, value in _attrs(data, start + _IFADDR.size, end):
            if kind == IFA_LOCAL and len(value) == 4:
                local = socket.inet_ntoa(value)
            elif kind == IFA_ADDRESS and len(value) == 4:
                address = socket.inet_ntoa(value)
        if local or address:
            out.append((index, local or address, prefixlen))
    return out


def bridge_networks(
    links: Iterable[tuple[int, str]], addresses: Iterable[tuple[int, str, int]]
) -> list[ipaddress.IPv4Network]:
    """The subnets of the addresses on bridges (``links``: index and kind)."""
    bridges = {index for index, kind in links if kind == "bridge"}
    return sorted(
        {
            ipaddress.IPv4Network(f"{addr}/{plen}", strict=False)
            for index, addr, plen in addresses
            if index in bridges
        },
        key=str,
    )


class UnnatedReader:
    """Create it in the namespace to read (:meth:`Namespace.run`); its
    sockets stay there, so :meth:`read` works from any one thread after.
    Raises :class:`OSError` when the namespace has no ctnetlink."""

    def __init__(self) -> None:
        self._ct = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
        self._ct.settimeout(10)
        self._ct.bind((0, 0))
        self._rt = route_socket()
        self._subnets: tuple[int, list[ipaddress.IPv4Network]] | None = None
        self._nated: dict[ipaddress.IPv4Network, tuple[int, bool]] = {}

    def close(self) -> None:
        for sock in (self._ct, self._rt):
            with contextlib.suppress(OSError):
                sock.close()

    def _dump(self, status: int, mask: int, src: str | None = None) -> list[tuple[CtEntry, int]]:
        body = dump_request(status, mask, src)
        out = []
        for data, start, end in _dump(CT_GET, body, CT_NEW, self._ct):
            parsed = parse_entry(data, start, end)
            if parsed is not None and (parsed[1] & mask) == status:  # an old kernel: unfiltered
                out.append(parsed)
        return out

    def _bridge_subnets(self, now: int) -> list[ipaddress.IPv4Network]:
        if self._subnets is None or now - self._subnets[0] > SUBNETS_TTL_NS:
            kinds = _link_kinds(self._rt)
            self._subnets = (now, bridge_networks(kinds, _addresses(self._rt)))
        return self._subnets[1]

    def _is_nated(self, net: ipaddress.IPv4Network, sources: Sequence[str], now: int) -> bool:
        """Was some entry from ``net`` translated? Asked of up to three of its
        clients (``sources``), the answer kept for :data:`NATED_TTL_NS` (a
        no for :data:`UNNATED_TTL_NS`)."""
        known = self._nated.get(net)
        if known is not None and now - known[0] < (NATED_TTL_NS if known[1] else UNNATED_TTL_NS):
            return known[1]
        nated = any(
            any(e.reply_dst != e.src for e, _ in self._dump(IPS_SRC_NAT, IPS_SRC_NAT, src))
            for src in sources[:3]
        )
        self._nated[net] = (now, nated)
        return nated

    def translated(self) -> int:
        """How many entries are source-NATed now (kernel-filtered)."""
        return len(self._dump(IPS_SRC_NAT, IPS_SRC_NAT))

    def read(self) -> int:
        """How many entries escaped NAT now (see the module doc)."""
        candidates = [e for e, _ in self._dump(0, IPS_SEEN_REPLY | IPS_SRC_NAT)]
        if not candidates:
            return 0
        now = time.monotonic_ns()
        subnets = self._bridge_subnets(now)
        if not subnets:
            return 0
        nated = []
        for net in subnets:
            sources = sorted({e.src for e in candidates if ipaddress.IPv4Address(e.src) in net})
            if sources and self._is_nated(net, sources, now):
                nated.append(net)
        if not nated:
            return 0
        # a translated stand-in for each NATed subnet, so that leftovers() keeps its rule
        marks = [CtEntry(0, str(net.network_address), "0.0.0.0", 0, 0, "", True) for net in nated]
        return len(leftovers([*candidates, *marks], nated))


def _link_kinds(sock: socket.socket) -> list[tuple[int, str]]:
    """(index, kind) of every link of the namespace of ``sock``."""
    body = _IFINFO.pack(socket.AF_UNSPEC, 0, 0, 0, 0)
    body += _nla(IFLA_EXT_MASK, struct.pack("=I", RTEXT_FILTER_SKIP_STATS))
    out = []
    for data, start, end in _dump(RTM_GETLINK, body, RTM_NEWLINK, sock):
        (index,) = struct.unpack_from("=i", data, start + 4)
        kind = ""
        for attr, value in _attrs(data, start + _IFINFO.size, end):
            if attr == IFLA_LINKINFO:
                for sub, subvalue in _attrs(value, 0, len(value)):
                    if sub == IFLA_INFO_KIND:
                        kind = subvalue.split(b"\0", 1)[0].decode(errors="replace")
        out.append((index, kind))
    return out
