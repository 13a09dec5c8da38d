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
    "ArpPacket",
    "DnsPacket",
    "Fate",
    "Hop",
    "Interface",
    "Journey",
    "MacVerdict",
    "Packet",
    "ReadStats",
    "ip_str",
    "mac_str",
    "qname_str",
]


class Interface(NamedTuple):
    """One capture interface. ``number`` is global across all files read."""

    number: int
    name: str
    netns: str = ""
    role: str = ""  # "client", "bridge", "uplink" or "" when unknown
    linktype: int = 1
    source: str = ""  # the file it came from


class DnsPacket(NamedTuple):
    """One DNS message over UDP/IPv4 as seen on one interface.

    ``qname`` is the wire form of the first question's name, lowercased
    (``b"\\x03www\\x03lab\\x04test"``); ``dst_mac``/``src_mac`` are ``b""``
    when the link type does not carry them (Linux cooked, raw IP).
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


@dataclass(slots=True)
class ReadStats:
    """Counters of one read: what was decoded and what was skipped, and why."""

    frames: int = 0
    dns: int = 0
    arp: int = 0
    other: int = 0  # well-formed frames that are neither (not DNS over UDP/IPv4, not ARP)
    fragments: int = 0  # non-first IPv4 fragments
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
    """One DNS query followed across interfaces, with its verdict."""

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

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "ts_ns": self.ts_ns,
            "dns_id": self.dns_id,
            "qname": self.qname,
            "qtype": self.qtype,
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
    return socket.inet_ntoa(raw) if len(raw) == 4 else raw.hex()


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
