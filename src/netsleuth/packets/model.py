"""The values that move through the packet pipeline.

Frames read from a file or a socket become :class:`DnsPacket` or
:class:`ArpPacket` (immutable named tuples: a capture can hold millions of
them and a named tuple is built 4-9x faster than a frozen dataclass — see
``bench/bench_explain.py``). The matcher turns them into :class:`Journey`
values (frozen dataclasses), one per DNS query, each with a :class:`Fate`.
Addresses stay raw bytes on the hot path; :func:`mac_str`, :func:`ip_str` and
:func:`qname_str` format them for people.
"""

from __future__ import annotations

import enum
import socket
from dataclasses import dataclass
from typing import NamedTuple

__all__ = [
    "HANDSHAKE_ID",
    "IPPROTO_TCP",
    "IPPROTO_UDP",
    "ArpPacket",
    "DnsPacket",
    "Fate",
    "Hop",
    "Interface",
    "Journey",
    "MacVerdict",
    "Packet",
    "ReadStats",
    "TcpSegment",
    "endpoint_str",
    "family_of",
    "ip_str",
    "mac_str",
    "qname_str",
]


IPPROTO_TCP = 6
IPPROTO_UDP = 17
# the dns_id of a TCP handshake packet: outside the 16-bit id space of DNS
HANDSHAKE_ID = 0x10000


class Interface(NamedTuple):
    """One capture interface. ``number`` is global across all files read."""

    number: int
    name: str
    netns: str = ""
    role: str = ""  # "client", "bridge", "uplink" or "" when unknown
    linktype: int = 1
    source: str = ""  # the file it came from


class DnsPacket(NamedTuple):
    """One DNS message (over UDP or TCP, IPv4 or IPv6) as seen on one interface.

    ``qname`` is the wire form of the first question's name, lowercased
    (``b"\\x03www\\x03lab\\x04test"``); ``dst_mac``/``src_mac`` are ``b""``
    when the link type does not carry them (Linux cooked, raw IP). ``src`` and
    ``dst`` are 4 bytes (IPv4) or 16 (IPv6). ``transport`` is the IP protocol
    (17 UDP, 6 TCP: one message reassembled from its connection's segments,
    stamped with the segment that completed it); ``ttl`` the IPv4 TTL or IPv6
    hop limit (0: unknown). A TCP handshake to port 53 also comes out as a
    packet of this shape (``dns_id`` :data:`HANDSHAKE_ID`, ``qname`` the
    client's initial sequence number, SYN a query, SYN-ACK or RST an answer),
    so that a connection whose SYN was never answered is a journey too.
    """

    ts_ns: int
    iface: int
    src_mac: bytes
    dst_mac: bytes
    src: bytes
    dst: bytes
    sport: int
    dport: int
    dns_id: int
    flags: int
    qname: bytes
    qtype: int
    transport: int = 17
    ttl: int = 0

    @property
    def is_response(self) -> bool:
        return bool(self.flags & 0x8000)

    @property
    def rcode(self) -> int:
        return self.flags & 0xF


class ArpPacket(NamedTuple):
    """One ARP message (Ethernet/IPv4) seen on one interface."""

    ts_ns: int
    iface: int
    op: int  # 1 request, 2 reply
    sender_mac: bytes
    sender_ip: bytes
    target_mac: bytes
    target_ip: bytes


Packet = DnsPacket | ArpPacket


class TcpSegment(NamedTuple):
    """One TCP segment to or from port 53, before reassembly (:mod:`.tcp`).
    ``payload`` is the segment's data as far as the IP length says (an
    Ethernet frame's padding is left out)."""

    ts_ns: int
    iface: int
    src_mac: bytes
    dst_mac: bytes
    src: bytes
    dst: bytes
    sport: int
    dport: int
    seq: int
    ack: int
    flags: int  # TCP flags: FIN 1, SYN 2, RST 4, ACK 16
    payload: bytes
    ttl: int


@dataclass(slots=True)
class ReadStats:
    """Counters of one read: what was decoded and what was skipped, and why."""

    frames: int = 0
    dns: int = 0
    arp: int = 0
    other: int = 0  # well-formed frames that are neither (not DNS over UDP/TCP, not ARP)
    fragments: int = 0  # non-first IPv4/IPv6 fragments
    tcp_segments: int = 0  # TCP segments to or from port 53 (their DNS messages count in dns)
    tcp_retransmitted: int = 0  # of those, repeating bytes already seen (counted once)
    tcp_gaps: int = 0  # connections whose stream had a hole (a segment never captured)
    malformed: int = 0  # frames cut by the snaplen or with inconsistent headers
    unknown_linktype: int = 0
    damaged: list[str] | None = None  # files whose tail was unreadable, with where

    def note_damage(self, text: str) -> None:
        if self.damaged is None:
            self.damaged = []
        self.damaged.append(text)

    def as_dict(self) -> dict[str, object]:
        return {
            "frames": self.frames,
            "dns": self.dns,
            "arp": self.arp,
            "other": self.other,
            "fragments": self.fragments,
            "tcp_segments": self.tcp_segments,
            "tcp_retransmitted": self.tcp_retransmitted,
            "tcp_gaps": self.tcp_gaps,
            "malformed": self.malformed,
            "unknown_linktype": self.unknown_linktype,
            "damaged": list(self.damaged or []),
        }


class Fate(enum.StrEnum):
    """What became of one DNS query: answered, or where its journey stopped
    (a :class:`Journey`'s ``verdict``; the values are those of the JSON output)."""

    ANSWERED = "answered"
    NAT_UNANSWERED = "nat-unanswered"  # left through the uplink, no answer came back
    ESCAPED_NAT = "escaped-nat"  # left through the uplink untranslated, where others were NATed
    LOST_ON_RETURN = "lost-on-return"  # answered upstream, answer never reached the client
    NEVER_LEFT_BRIDGE = "never-left-bridge"  # never seen on the uplink
    UNANSWERED = "unanswered"  # no answer, and the capture has no uplink to tell where

    @property
    def failed(self) -> bool:
        return self is not Fate.ANSWERED

    @property
    def meaning(self) -> str:
        return _MEANING[self]


_MEANING = {
    Fate.ANSWERED: "answered",
    Fate.NAT_UNANSWERED: "NATed out through the uplink but never answered (upstream)",
    Fate.ESCAPED_NAT: (
        "left through the uplink without NAT, where other queries were NATed: "
        "no answer can come back"
    ),
    Fate.LOST_ON_RETURN: "answered upstream but lost on the way back",
    Fate.NEVER_LEFT_BRIDGE: "never left the bridge (not routed/NATed by the host)",
    Fate.UNANSWERED: "unanswered; no uplink capture to tell where it stopped",
}


@dataclass(frozen=True, slots=True)
class Hop:
    """One sighting of a query or its answer on one interface."""

    iface: str
    netns: str
    ts_ns: int
    response: bool
    src: str  # "ip:port"
    dst: str
    dst_mac: str
    nat: bool  # carries the translated (post-NAT) address


@dataclass(frozen=True, slots=True)
class MacVerdict:
    """Where the query's frame was sent, against the bridge's MAC at that moment.

    ``port_owned`` is True/False when a watch store said so, None when unknown;
    ``former_bridge_mac`` is True when the destination MAC was the bridge's own
    MAC earlier in the capture or store. ``stale_gateway`` names the signature:
    the frame went to a MAC that no longer belonged to the bridge.
    """

    dst_mac: str
    bridge_mac: str  # "" when nothing told us
    bridge_mac_since_ns: int | None
    bridge_mac_source: str  # "arp", "store" or ""
    former_bridge_mac: bool
    port_owned: bool | None
    port: str  # the port that owned the MAC, when a store told us
    stale_gateway: bool


@dataclass(frozen=True, slots=True)
class Journey:
    """One DNS query followed across interfaces, with its verdict.

    ``transport`` is ``udp`` or ``tcp``, ``family`` ``ipv4`` or ``ipv6``. A
    ``handshake`` journey is a TCP connection to the server whose handshake
    was never completed (no SYN-ACK at the client): no query could be sent on
    it; ``dns_id`` is -1 and ``qname`` empty. A connection refused by RST
    counts as answered with ``rcode`` 5 (REFUSED). ``truncated``: the answer
    had the TC bit (the client then retries over TCP).
    """

    ts_ns: int
    dns_id: int
    qname: str
    qtype: int
    client: str  # "ip:port" the query was first seen from
    server: str
    origin: str  # interface it was first seen on
    nat_source: str  # post-NAT "ip:port" on the uplink, "" if never seen there
    verdict: Fate
    rcode: int | None
    latency_ns: int | None
    hops: tuple[Hop, ...]
    mac: MacVerdict | None = None
    # escaped-nat only: how long before it a query with the same addresses and
    # ports had never left the bridge (whose conntrack entry, made without NAT,
    # this query then matched); None if the capture shows none
    reused_entry_age_ns: int | None = None
    transport: str = "udp"
    family: str = "ipv4"
    handshake: bool = False
    truncated: bool = False

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "ts_ns": self.ts_ns,
            "dns_id": self.dns_id,
            "qname": self.qname,
            "qtype": self.qtype,
            "transport": self.transport,
            "family": self.family,
            "handshake": self.handshake,
            "truncated": self.truncated,
            "client": self.client,
            "server": self.server,
            "origin": self.origin,
            "nat_source": self.nat_source,
            "verdict": str(self.verdict),
            "rcode": self.rcode,
            "latency_ns": self.latency_ns,
            "reused_entry_age_ns": self.reused_entry_age_ns,
            "hops": [
                {
                    "iface": h.iface,
                    "netns": h.netns,
                    "ts_ns": h.ts_ns,
                    "response": h.response,
                    "src": h.src,
                    "dst": h.dst,
                    "dst_mac": h.dst_mac,
                    "nat": h.nat,
                }
                for h in self.hops
            ],
        }
        if self.mac is not None:
            m = self.mac
            out["mac"] = {
                "dst_mac": m.dst_mac,
                "bridge_mac": m.bridge_mac,
                "bridge_mac_since_ns": m.bridge_mac_since_ns,
                "bridge_mac_source": m.bridge_mac_source,
                "former_bridge_mac": m.former_bridge_mac,
                "port_owned": m.port_owned,
                "port": m.port,
                "stale_gateway": m.stale_gateway,
            }
        return out


def mac_str(raw: bytes) -> str:
    return raw.hex(":") if raw else ""


def ip_str(raw: bytes) -> str:
    if len(raw) == 4:
        return socket.inet_ntoa(raw)
    if len(raw) == 16:
        return socket.inet_ntop(socket.AF_INET6, raw)
    return raw.hex()


def endpoint_str(raw: bytes, port: int) -> str:
    """``ip:port``, with the IPv6 address in brackets (``[fd00::1]:53``)."""
    if len(raw) == 16:
        return f"[{socket.inet_ntop(socket.AF_INET6, raw)}]:{port}"
    return f"{ip_str(raw)}:{port}"


def family_of(raw: bytes) -> str:
    return "ipv6" if len(raw) == 16 else "ipv4"


def qname_str(wire: bytes) -> str:
    """Dotted text of a wire-format name; hostile bytes are escaped, never trusted."""
    labels: list[str] = []
    i = 0
    n = len(wire)
    while i < n:
        length = wire[i]
        label = wire[i + 1 : i + 1 + length]
        labels.append(
            "".join(
                chr(c) if 0x21 <= c <= 0x7E and c not in (0x2E, 0x5C) else f"\\{c:03d}"
                for c in label
            )
        )
        i += 1 + length
    return ".".join(labels) + "." if labels else "."
