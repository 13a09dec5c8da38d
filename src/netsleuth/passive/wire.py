"""DNS on the wire, as far as passive matching needs it: the classic BPF
filter that lets only DNS frames into the capture socket, and the parser
that reads the few fields a query and its answer are matched by.

Pure (no I/O). The filter accepts Ethernet frames carrying UDP or TCP with
port 53 on either side, over IPv4 (unfragmented, or the first fragment: the
one holding the DNS header) or IPv6 (UDP or TCP as the first next header),
and keeps :data:`SNAPLEN` bytes of each: enough for every header and the
question, never the whole answer.

:func:`parse` reads one frame into a :data:`Dns` tuple whose match key
(:data:`Key`) is already in the client's orientation — a query's source is
the client, an answer's destination — so a query and its answer give equal
keys; :func:`parse_block` reads every frame of a capture ring's block at once
(what ``watch --passive`` runs). DNS over TCP is read from segments that
begin a message (the two-byte length prefix, then the header): a resolver
writes its query (and a server its answer) in one write, so the first
segment of each holds the header and question. Segments that carry no
payload (handshake, ACKs, FIN) and continuation segments are not DNS
messages and give None.

This module and :mod:`netsleuth.passive.matcher` are compiled with mypyc
when a C compiler is found (``compiled-modules`` in ``pyproject.toml``):
plain typed code, bytes read by index (mypyc makes that C; ``struct`` would
stay a Python call per field).
"""

from __future__ import annotations

import socket
from typing import Final

__all__ = [
    "QTYPES",
    "SNAPLEN",
    "Dns",
    "Frames",
    "Key",
    "address_text",
    "dns_filter",
    "key_fields",
    "parse",
    "parse_block",
    "qname_text",
    "qtype_text",
]

SNAPLEN: Final = 512
"""Bytes kept of each frame: Ethernet + IPv6 + TCP with options + the DNS
header and the longest question (255 bytes) fit."""

ETH_IPV4: Final = 0x0800
ETH_IPV6: Final = 0x86DD
UDP: Final = 17
TCP: Final = 6
DNS_PORT: Final = 53

Key = tuple[bytes, int, bytes]
"""(client address + server address, ports, DNS id + question name): the
addresses raw (4 + 4 or 16 + 16 bytes); ``proto << 32 | client port << 16 |
server port`` in one int; the two bytes of the DNS id followed by the name in
wire form — which alone is how a query is found again after NAT (id and
name), with no object built for it. :func:`key_fields` unpacks a key. Three
objects instead of seven: a key is built for every frame and hashed for every
dictionary look-up."""

Dns = tuple[int, bool, Key, int, int]
"""(capture timestamp ns, is_answer, key, qtype, rcode)."""

Frames = tuple[list[int], list[int], list[Key]]
"""The DNS frames of a block as three lists (capture timestamps, packed
fields, keys) instead of a tuple per frame: fewer objects for the garbage
collector to count. A packed field is ``qtype << 8 | rcode << 1 | is_answer``."""


def key_fields(key: Key) -> tuple[int, bytes, int, bytes, int, int, bytes]:
    """(proto, client, client port, server, server port, DNS id, question
    name in wire form) of a key."""
    addrs, ports, idname = key
    half = len(addrs) // 2
    return (
        ports >> 32,
        addrs[:half],
        ports >> 16 & 0xFFFF,
        addrs[half:],
        ports & 0xFFFF,
        idname[0] << 8 | idname[1],
        idname[2:],
    )


QTYPES: Final = {
    1: "A",
    2: "NS",
    5: "CNAME",
    6: "SOA",
    12: "PTR",
    15: "MX",
    16: "TXT",
    28: "AAAA",
    33: "SRV",
    35: "NAPTR",
    43: "DS",
    48: "DNSKEY",
    64: "SVCB",
    65: "HTTPS",
    99: "SPF",
    255: "ANY",
    257: "CAA",
}


def qtype_text(qtype: int) -> str:
    """The mnemonic of a query type, ``TYPEn`` (RFC 3597) for one without."""
    return QTYPES.get(qtype) or f"TYPE{qtype}"


def address_text(raw: bytes) -> str:
    """An address from its raw bytes (4: IPv4, 16: IPv6)."""
    return socket.inet_ntop(socket.AF_INET if len(raw) == 4 else socket.AF_INET6, raw)


def qname_text(wire: bytes) -> str:
    """A wire-form name as text (``www.example.org.``), for display."""
    labels: list[str] = []
    i = 0
    while i < len(wire) and wire[i]:
        n = wire[i]
        labels.append(wire[i + 1 : i + 1 + n].decode("ascii", "backslashreplace"))
        i += 1 + n
    return ".".join(labels) + "."


def dns_filter() -> list[tuple[int, int, int, int]]:
    """Classic BPF: UDP or TCP port 53 (either side) over IPv4 or IPv6, the
    first SNAPLEN bytes of each frame; everything else is refused in the
    kernel. Built from a labelled listing so the jumps stay right."""
    ldh, ldb, jeq, jset, ldxb_msh, ldh_ind, ret = 0x28, 0x30, 0x15, 0x45, 0xB1, 0x48, 0x06
    listing: list[tuple[str, int, str, str, int]] = [
        # (label, opcode, jump if true, jump if false, k)
        ("", ldh, "", "", 12),  # ethertype
        ("", jeq, "", "v6", ETH_IPV4),
        ("", ldb, "", "", 23),  # IPv4 protocol
        ("", jeq, "ports4", "", UDP),
        ("", jeq, "", "reject", TCP),
        ("ports4", ldh, "", "", 20),  # flags + fragment offset
        ("", jset, "reject", "", 0x1FFF),  # a later fragment: no header to read
        ("", ldxb_msh, "", "", 14),  # x = IPv4 header length
        ("", ldh_ind, "", "", 14),  # source port
        ("", jeq, "accept", "", DNS_PORT),
        ("", ldh_ind, "", "", 16),  # destination port
        ("", jeq, "accept", "reject", DNS_PORT),
        ("v6", jeq, "", "reject", ETH_IPV6),
        ("", ldb, "", "", 20),  # IPv6 next header
        ("", jeq, "ports6", "", UDP),
        ("", jeq, "", "reject", TCP),
        ("ports6", ldh, "", "", 54),
        ("", jeq, "accept", "", DNS_PORT),
        ("", ldh, "", "", 56),
        ("", jeq, "accept", "reject", DNS_PORT),
        ("accept", ret, "", "", SNAPLEN),
        ("reject", ret, "", "", 0),
    ]
    where = {label: pc for pc, (label, *_rest) in enumerate(listing) if label}

    def jump(pc: int, label: str) -> int:
        return where[label] - pc - 1 if label else 0

    return [(op, jump(pc, jt), jump(pc, jf), k) for pc, (_l, op, jt, jf, k) in enumerate(listing)]


_NO_KEY: Final[Key] = (b"", 0, b"")


def _frame(buf: bytes, off: int, end: int) -> tuple[Key, int]:
    """The key and packed fields (:data:`Frames`) of the Ethernet frame at
    ``buf[off:end]``; packed -1 when it holds no DNS message this matcher
    reads (a bare TCP segment, a truncated or malformed header, no question).

    The hot path of ``watch --passive`` (run for every frame, compiled with
    mypyc where a C compiler is found): only byte indexing and slicing of a
    ``bytes`` object, which mypyc turns into plain C, and no name decoding —
    the question name stays in wire form (it is a match key; it is decoded
    only for display, :func:`qname_text`). Bounds: ``end`` is where the frame
    ends (at most SNAPLEN bytes were kept); every read past the fixed headers
    is checked against it.
    """
    if end - off < 42:  # Ethernet + IPv4 + UDP: anything shorter holds no DNS header
        return _NO_KEY, -1
    ethertype = buf[off + 12] << 8 | buf[off + 13]
    ip = off + 14
    if ethertype == ETH_IPV4:
        proto = buf[ip + 9]
        src, alen = ip + 12, 4
        l4 = ip + (buf[ip] & 0x0F) * 4
    elif ethertype == ETH_IPV6:
        if end - off < 62:
            return _NO_KEY, -1
        proto = buf[ip + 6]
        src, alen = ip + 8, 16
        l4 = ip + 40
    else:
        return _NO_KEY, -1
    if proto == UDP:
        dns = l4 + 8
    elif proto == TCP:
        if l4 + 13 > end:
            return _NO_KEY, -1
        dns = l4 + (buf[l4 + 12] >> 4) * 4 + 2  # past the TCP header and the length prefix
    else:
        return _NO_KEY, -1
    if dns + 17 > end:  # header + the shortest question (root name, type, class)
        return _NO_KEY, -1
    flags1 = buf[dns + 2]
    if flags1 & 0x78 or not (buf[dns + 4] or buf[dns + 5]):  # not a standard query; no question
        return _NO_KEY, -1
    i = dns + 12
    n = buf[i]
    while n:
        if n > 63 or i + n + 1 >= end:  # a compression pointer or a cut name: not readable
            return _NO_KEY, -1
        i += n + 1
        n = buf[i]
    i += 1
    if i + 2 > end:
        return _NO_KEY, -1
    sport = buf[l4] << 8 | buf[l4 + 1]
    dport = buf[l4 + 2] << 8 | buf[l4 + 3]
    answer = flags1 >> 7
    if answer:  # the client is its destination
        addrs = buf[src + alen : src + 2 * alen] + buf[src : src + alen]
        ports = proto << 32 | dport << 16 | sport
    else:
        addrs = buf[src : src + 2 * alen]  # source and destination are adjacent
        ports = proto << 32 | sport << 16 | dport
    packed = (buf[i] << 8 | buf[i + 1]) << 8 | (buf[dns + 3] & 0x0F) << 1 | answer
    return (addrs, ports, buf[dns : dns + 2] + buf[dns + 12 : i]), packed


def parse(buf: bytes, off: int, end: int, ts: int = 0) -> Dns | None:
    """The DNS fields of the Ethernet frame at ``buf[off:end]`` captured at
    ``ts`` (see :func:`_frame`), or None when it holds no DNS message this
    matcher reads."""
    key, packed = _frame(buf, off, end)
    if packed < 0:
        return None
    return ts, packed & 1 == 1, key, packed >> 8, packed >> 1 & 0x0F


def parse_block(block: bytes, first: int, count: int) -> Frames:
    """The DNS frames of a TPACKET_V3 block (a copy of it,
    :meth:`netsleuth.passive.ring.PacketRing.blocks`): ``count`` frames, the
    first at ``first``. Each frame starts with its ``tpacket3_hdr`` (native
    byte order, little-endian on the hosts this runs on): offset of the next
    frame (u32 at 0), seconds (u32 at 4), nanoseconds (u32 at 8), bytes kept
    (u32 at 12), and the offset of the Ethernet header from the frame's start
    (u16 at 24). One call per block, so the whole walk runs inside the
    compiled module."""
    stamps: list[int] = []
    fields: list[int] = []
    keys: list[Key] = []
    off = first
    for _ in range(count):
        start = off + (block[off + 24] | block[off + 25] << 8)
        key, packed = _frame(block, start, start + _u32le(block, off + 12))
        if packed >= 0:
            stamps.append(_u32le(block, off + 4) * 1_000_000_000 + _u32le(block, off + 8))
            fields.append(packed)
            keys.append(key)
        off += _u32le(block, off)
    return stamps, fields, keys


def _u32le(b: bytes, i: int) -> int:
    return b[i] | b[i + 1] << 8 | b[i + 2] << 16 | b[i + 3] << 24
