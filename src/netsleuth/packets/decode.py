"""Decode one captured frame into a :class:`DnsPacket` or :class:`ArpPacket`.

Works in place on any buffer with slicing and ``find`` (``bytes`` or an
``mmap``): ``buf[start:end]`` is the frame. Everything the frame claims is
checked against ``end``; what does not decode is counted in
:class:`ReadStats`, never raised. Link types: Ethernet (with 802.1Q/802.1ad
tags), Linux cooked v1 and v2, raw IPv4/IPv6, BSD loopback. Network layer:
IPv4 and IPv6 (extension headers skipped: hop-by-hop, routing, fragment,
destination options, authentication; a non-first fragment is counted, not
decoded). Transport: DNS over UDP becomes a :class:`DnsPacket`; a TCP segment
to or from port 53 a :class:`TcpSegment`, which :mod:`.tcp` reassembles.
"""

from __future__ import annotations

import struct
from typing import Any

from netsleuth.packets.model import ArpPacket, DnsPacket, Packet, ReadStats, TcpSegment

__all__ = [
    "FAST_ETHER_DNS",
    "LINKTYPE_ETHERNET",
    "LINKTYPE_IPV4",
    "LINKTYPE_IPV6",
    "LINKTYPE_LINUX_SLL",
    "LINKTYPE_LINUX_SLL2",
    "LINKTYPE_NULL",
    "LINKTYPE_RAW",
    "SUPPORTED_LINKTYPES",
    "decode",
    "dns_message",
    "sll2_ifindex",
]

LINKTYPE_NULL = 0
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_LINUX_SLL2 = 276
SUPPORTED_LINKTYPES = frozenset(
    {
        LINKTYPE_NULL,
        LINKTYPE_ETHERNET,
        LINKTYPE_RAW,
        LINKTYPE_LINUX_SLL,
        LINKTYPE_IPV4,
        LINKTYPE_IPV6,
        LINKTYPE_LINUX_SLL2,
    }
)

_H = struct.Struct("!H").unpack_from
_HH = struct.Struct("!HH").unpack_from
_HHH = struct.Struct("!HHH").unpack_from
_SLL2_IF = struct.Struct("!I").unpack_from
_ARP = struct.Struct("!HHBBH").unpack_from
# Ethernet, IPv4 (version/IHL, flags+offset, TTL, protocol, addresses), UDP ports,
# DNS id/flags/qdcount
FAST_ETHER_DNS = struct.Struct("!6s6sHB5xHBB2x4s4sHH4xHHH").unpack_from
_TCP = struct.Struct("!HHIIBB").unpack_from
_FAST = FAST_ETHER_DNS
_NUL = b"\x00"
_EMPTY = b""


def sll2_ifindex(buf: Any, start: int, end: int) -> int:
    """The interface index a Linux cooked v2 header records (0 if cut)."""
    if end - start < 20:
        return 0
    return int(_SLL2_IF(buf, start + 4)[0])


def decode(  # noqa: PLR0917 - the hot path: positional arguments are measurably faster
    buf: Any, start: int, end: int, linktype: int, ts_ns: int, iface: int, stats: ReadStats
) -> Packet | TcpSegment | None:
    """Decode ``buf[start:end]`` captured on link type ``linktype``."""
    if linktype == LINKTYPE_ETHERNET and end - start >= 65:
        # fast path: Ethernet + IPv4 without options + UDP + DNS header, one unpack
        dmac, smac, et, vihl, frag, ttl, proto, src, dst, sport, dport, dns_id, flags, qd = _FAST(
            buf, start
        )
        if et == 0x0800 and vihl == 0x45 and proto == 17 and not frag & 0x1FFF and qd:
            if sport == 53 or dport == 53:
                q = start + 54
                t = buf[q : q + 66]  # one slice beats find() with bounds on an mmap
                z = t.find(_NUL)
                if z >= 0 and q + z + 3 <= end:
                    stats.dns += 1
                    return DnsPacket(
                        ts_ns,
                        iface,
                        smac,
                        dmac,
                        src,
                        dst,
                        sport,
                        dport,
                        dns_id,
                        flags,
                        t[:z].lower(),
                        (t[z + 1] << 8) | t[z + 2],
                        17,
                        ttl,
                    )
                # a long name, or a cut one: the general path below decides
            else:
                stats.other += 1
                return None
    if linktype == LINKTYPE_ETHERNET:
        if end - start < 14:
            stats.malformed += 1
            return None
        dst_mac = buf[start : start + 6]
        src_mac = buf[start + 6 : start + 12]
        ethertype = (buf[start + 12] << 8) | buf[start + 13]
        p = start + 14
        if ethertype in (0x8100, 0x88A8):
            for _ in range(2):  # at most two stacked tags
                if p + 4 > end:
                    stats.malformed += 1
                    return None
                ethertype = _H(buf, p + 2)[0]
                p += 4
                if ethertype not in (0x8100, 0x88A8):
                    break
    elif linktype == LINKTYPE_LINUX_SLL:
        if end - start < 16:
            stats.malformed += 1
            return None
        halen = _H(buf, start + 4)[0]
        src_mac = buf[start + 6 : start + 12] if halen == 6 else _EMPTY
        dst_mac = _EMPTY
        ethertype = _H(buf, start + 14)[0]
        p = start + 16
    elif linktype == LINKTYPE_LINUX_SLL2:
        if end - start < 20:
            stats.malformed += 1
            return None
        ethertype = _H(buf, start)[0]
        src_mac = buf[start + 12 : start + 18] if buf[start + 11] == 6 else _EMPTY
        dst_mac = _EMPTY
        p = start + 20
    elif linktype == LINKTYPE_RAW:
        src_mac = dst_mac = _EMPTY
        ethertype = 0x86DD if end > start and buf[start] >> 4 == 6 else 0x0800
        p = start
    elif linktype == LINKTYPE_IPV4:
        src_mac = dst_mac = _EMPTY
        ethertype = 0x0800
        p = start
    elif linktype == LINKTYPE_IPV6:
        src_mac = dst_mac = _EMPTY
        ethertype = 0x86DD
        p = start
    elif linktype == LINKTYPE_NULL:
        if end - start < 4:
            stats.malformed += 1
            return None
        family = buf[start] | buf[start + 3]  # AF_INET is 2 in either byte order
        # AF_INET6 is 24, 28 or 30 depending on the BSD that wrote the file
        ethertype = 0x0800 if family == 2 else 0x86DD if family in (24, 28, 30) else 0
        src_mac = dst_mac = _EMPTY
        p = start + 4
    else:
        stats.unknown_linktype += 1
        return None

    if ethertype == 0x0800:
        if p + 20 > end:
            stats.malformed += 1
            return None
        b0 = buf[p]
        proto = buf[p + 9]
        if b0 >> 4 != 4 or proto not in {17, 6}:
            stats.other += 1
            return None
        ihl = (b0 & 15) << 2
        u = p + ihl
        if ihl < 20 or u + 8 > end:
            stats.malformed += 1
            return None
        if _H(buf, p + 6)[0] & 0x1FFF:
            stats.fragments += 1
            return None
        total = _H(buf, p + 2)[0]
        if total >= ihl:  # 0 under segmentation offload: the frame says
            end = min(end, p + total)  # an Ethernet frame's padding is not payload
        return _transport(
            buf,
            u,
            end,
            proto,
            buf[p + 12 : p + 16],
            buf[p + 16 : p + 20],
            buf[p + 8],
            ts_ns,
            iface,
            src_mac,
            dst_mac,
            stats,
        )
    if ethertype == 0x86DD:
        if p + 40 > end:
            stats.malformed += 1
            return None
        if buf[p] >> 4 != 6:
            stats.other += 1
            return None
        payload_len = _H(buf, p + 4)[0]
        if payload_len:  # 0: a jumbogram, or segmentation offload: the frame says
            end = min(end, p + 40 + payload_len)
        nh = buf[p + 6]
        u = p + 40
        for _ in range(8):  # extension headers, bounded
            if nh in {0, 43, 60}:  # hop-by-hop, routing, destination options
                if u + 8 > end:
                    stats.malformed += 1
                    return None
                nh, u = buf[u], u + ((buf[u + 1] + 1) << 3)
            elif nh == 44:  # fragment
                if u + 8 > end:
                    stats.malformed += 1
                    return None
                if _H(buf, u + 2)[0] & 0xFFF8:
                    stats.fragments += 1
                    return None
                nh, u = buf[u], u + 8
            elif nh == 51:  # authentication header
                if u + 8 > end:
                    stats.malformed += 1
                    return None
                nh, u = buf[u], u + ((buf[u + 1] + 2) << 2)
            else:
                break
        if nh not in {17, 6}:
            stats.other += 1
            return None
        if u + 8 > end:
            stats.malformed += 1
            return None
        return _transport(
            buf,
            u,
            end,
            nh,
            buf[p + 8 : p + 24],
            buf[p + 24 : p + 40],
            buf[p + 7],
            ts_ns,
            iface,
            src_mac,
            dst_mac,
            stats,
        )
    if ethertype == 0x0806:
        if p + 28 > end:
            stats.malformed += 1
            return None
        htype, ptype, hlen, plen, op = _ARP(buf, p)
        if htype != 1 or ptype != 0x0800 or hlen != 6 or plen != 4:
            stats.other += 1
            return None
        stats.arp += 1
        return ArpPacket(
            ts_ns,
            iface,
            op,
            buf[p + 8 : p + 14],
            buf[p + 14 : p + 18],
            buf[p + 18 : p + 24],
            buf[p + 24 : p + 28],
        )
    stats.other += 1
    return None


def _transport(  # noqa: PLR0917 - one call per frame off the fast path
    buf: Any,
    u: int,
    end: int,
    proto: int,
    src: bytes,
    dst: bytes,
    ttl: int,
    ts_ns: int,
    iface: int,
    src_mac: bytes,
    dst_mac: bytes,
    stats: ReadStats,
) -> DnsPacket | TcpSegment | None:
    """The UDP datagram or TCP segment at ``buf[u:end]`` (8 bytes known present)."""
    if proto == 6:
        if u + 20 > end:
            stats.malformed += 1
            return None
        sport, dport, seq, ack, off, flags = _TCP(buf, u)
        if sport != 53 and dport != 53:
            stats.other += 1
            return None
        data = u + ((off >> 4) << 2)
        if data < u + 20 or data > end:
            stats.malformed += 1
            return None
        stats.tcp_segments += 1
        return TcpSegment(
            ts_ns,
            iface,
            src_mac,
            dst_mac,
            src,
            dst,
            sport,
            dport,
            seq,
            ack,
            flags,
            bytes(buf[data:end]),
            ttl,
        )
    sport, dport = _HH(buf, u)
    if sport != 53 and dport != 53:
        stats.other += 1
        return None
    d = u + 8
    if d + 17 > end:  # header + at least a root name and the qtype
        stats.malformed += 1
        return None
    dns_id, flags, qdcount = _HHH(buf, d)
    if qdcount == 0:
        stats.other += 1
        return None
    q = d + 12
    z = buf.find(_NUL, q, min(q + 256, end))
    if z < 0 or z + 3 > end:
        stats.malformed += 1
        return None
    stats.dns += 1
    return DnsPacket(
        ts_ns,
        iface,
        src_mac,
        dst_mac,
        src,
        dst,
        sport,
        dport,
        dns_id,
        flags,
        buf[q:z].lower(),
        _H(buf, z + 1)[0],
        17,
        ttl,
    )


def dns_message(  # noqa: PLR0917 - one call per reassembled message
    msg: bytes | bytearray,
    ts_ns: int,
    iface: int,
    src_mac: bytes,
    dst_mac: bytes,
    src: bytes,
    dst: bytes,
    sport: int,
    dport: int,
    ttl: int,
) -> DnsPacket | None:
    """The :class:`DnsPacket` of one DNS message carried over TCP (the bytes
    after its 2-byte length); None if it has no question or is cut."""
    n = len(msg)
    if n < 17:
        return None
    dns_id, flags, qdcount = _HHH(msg, 0)
    if qdcount == 0:
        return None
    z = msg.find(_NUL, 12, min(12 + 256, n))
    if z < 0 or z + 3 > n:
        return None
    return DnsPacket(
        ts_ns,
        iface,
        src_mac,
        dst_mac,
        src,
        dst,
        sport,
        dport,
        dns_id,
        flags,
        bytes(msg[12:z]).lower(),
        _H(msg, z + 1)[0],
        6,
        ttl,
    )
