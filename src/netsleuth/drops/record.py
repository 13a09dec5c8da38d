"""One dropped packet (or an aggregate of many), and the parsers of the two
mechanisms' output lines into it.

Both parsers are pure: the bpftrace reader (:mod:`.bpf`) prints one ``E``
line per drop it details, cumulative ``@agg`` map lines for the drops it only
counted, and a ``T`` line per tick; the ftrace reader (:mod:`.ftrace`) reads
the kernel's own text of the event from ``trace_pipe``.
"""

from __future__ import annotations

import re
import socket
import struct
from dataclasses import dataclass, replace

from netsleuth.drops.reasons import TracepointFormat
from netsleuth.model import drop_headers

__all__ = [
    "Drop",
    "DropKey",
    "MapCount",
    "Tick",
    "parse_bpftrace_line",
    "parse_ftrace_line",
    "proto_name",
]

DropKey = tuple[str, str, int, str]
"""What drops are aggregated by: (reason, location, netns inode, device)."""

_ETH_P_IP, _ETH_P_IPV6, _ETH_P_ARP = 0x0800, 0x86DD, 0x0806
_L4 = {1: "icmp", 6: "tcp", 17: "udp", 47: "gre", 58: "icmpv6", 132: "sctp"}


@dataclass(frozen=True, slots=True)
class Drop:
    """A packet the kernel freed with a drop ``reason`` at ``location`` (the
    function that dropped it), seen at ``mono_ns`` (CLOCK_MONOTONIC), in the
    namespace whose nsfs inode is ``netns`` (0: not known) on device
    ``ifname`` ("" when the packet had none, or the mechanism cannot tell).

    For IPv4 the addresses, and for UDP/TCP the ports, of the packet's
    headers; ``count`` > 1 for an aggregate of drops of one key, whose
    headers are then left empty."""

    mono_ns: int
    reason: str
    location: str
    netns: int = 0
    ifname: str = ""
    proto: str = ""
    saddr: str = ""
    daddr: str = ""
    sport: int = 0
    dport: int = 0
    count: int = 1

    @property
    def key(self) -> DropKey:
        return (self.reason, self.location, self.netns, self.ifname)

    def to_json(self) -> dict[str, str | int]:
        out: dict[str, str | int] = {
            "mono_ns": self.mono_ns,
            "reason": self.reason,
            "location": self.location,
            "netns_inode": self.netns,
            "device": self.ifname,
            "count": self.count,
        }
        out.update(drop_headers(self.proto, self.saddr, self.daddr, self.sport, self.dport))
        return out

    def aggregate(self, count: int) -> Drop:
        """The aggregate of ``count`` drops of this one's key (headers dropped)."""
        return replace(self, proto="", saddr="", daddr="", sport=0, dport=0, count=count)


@dataclass(frozen=True, slots=True)
class MapCount:
    """A cumulative count of drops of one key that were only counted, not
    detailed (bpftrace's ``@agg`` map, printed every tick)."""

    key: DropKey
    total: int


@dataclass(frozen=True, slots=True)
class Tick:
    """End of one tick's map print; ``final`` for the one printed at exit."""

    mono_ns: int
    final: bool = False


def proto_name(ethertype: int, l4: int) -> str:
    """``udp``/``tcp``/``icmp`` ... for IPv4, else the L3 protocol."""
    if ethertype == _ETH_P_IP:
        return _L4.get(l4, f"ip/{l4}") if l4 else "ip"
    if ethertype == _ETH_P_IPV6:
        return "ipv6"
    if ethertype == _ETH_P_ARP:
        return "arp"
    return f"0x{ethertype:04x}" if ethertype else ""


def _ip(raw: int) -> str:
    """An address read as a little-endian u32 from the packet (network order)."""
    return socket.inet_ntoa(struct.pack("<I", raw & 0xFFFFFFFF)) if raw else ""


def _port(raw: int) -> int:
    return socket.ntohs(raw & 0xFFFF)


def parse_bpftrace_line(line: str, fmt: TracepointFormat) -> Drop | MapCount | Tick | None:
    """One line of the bpftrace program's output (:data:`.bpf.SCRIPT`).

    ``E NSECS REASON LOCATION NETNS DEV ETHERTYPE L4 SADDR DADDR SPORT DPORT``
    (addresses and ports as the raw little-endian reads of the packet),
    ``@agg[REASON, LOCATION, NETNS, DEV]: TOTAL``, ``T NSECS``, ``X NSECS``.
    Anything else (bpftrace's own messages) is None.
    """
    if line.startswith("E "):
        parts = line.split()
        if len(parts) != 12:
            return None
        try:
            mono, reason, netns, ethertype, l4, saddr, daddr, sport, dport = (
                int(parts[i]) for i in (1, 2, 4, 6, 7, 8, 9, 10, 11)
            )
        except ValueError:
            return None
        ipv4 = ethertype == _ETH_P_IP
        ports = ipv4 and l4 in (6, 17)
        return Drop(
            mono_ns=mono,
            reason=fmt.name(reason),
            location=_symbol(parts[3]),
            netns=netns,
            ifname="" if parts[5] == "-" else parts[5],
            proto=proto_name(ethertype, l4),
            saddr=_ip(saddr) if ipv4 else "",
            daddr=_ip(daddr) if ipv4 else "",
            sport=_port(sport) if ports else 0,
            dport=_port(dport) if ports else 0,
        )
    if line.startswith("@agg["):
        head, sep, total = line.rpartition("]:")
        if not sep:
            return None
        fields = head[len("@agg[") :].split(", ", 3)
        if len(fields) != 4:
            return None
        try:
            reason, netns, count = int(fields[0]), int(fields[2]), int(total)
        except ValueError:
            return None
        dev = fields[3]
        return MapCount(
            (fmt.name(reason), _symbol(fields[1]), netns, "" if dev == "-" else dev), count
        )
    if line.startswith(("T ", "X ")):
        try:
            return Tick(int(line.split()[1]), final=line[0] == "X")
        except (IndexError, ValueError):
            return None
    return None


def _symbol(text: str) -> str:
    """``ip_rcv_core+0x1b4/0x340`` → ``ip_rcv_core``; an unresolved address stays."""
    return text.split("+", 1)[0] or text


# <task>-<pid> [cpu] flags timestamp: kfree_skb: skbaddr=... protocol=2048 location=SYM+off/len
# reason: NAME  (older kernels: "location=%p" and no rx_sk; before 5.17 no reason at all)
_FTRACE = re.compile(
    r"\s(?P<ts>\d+\.\d+):\s+kfree_skb:\s.*?protocol=(?P<proto>\d+)\s+location=(?P<loc>\S+)"
    r"(?:\s+reason:\s+(?P<reason>\S+))?"
)


def parse_ftrace_line(line: str) -> Drop | None:
    """One ``kfree_skb`` line of a ``trace_pipe`` read with the ``mono``
    trace clock (seconds.microseconds). No namespace, device or headers: the
    event holds none. (String searches first: at tens of thousands of drops
    a second the regular expression alone costs too much.)"""
    mark = line.find(": kfree_skb: ")
    if mark > 0:
        ts_start = line.rfind(" ", 0, mark) + 1
        p = line.find(" protocol=", mark)
        loc = line.find(" location=", mark)
        if p > 0 and loc > 0:
            seconds, dot, frac = line[ts_start:mark].partition(".")
            end = line.find(" ", loc + 10)
            location = line[loc + 10 : end if end > 0 else len(line)]
            r = line.find(" reason: ", loc)
            proto = line[p + 10 : line.find(" ", p + 10)]
            if dot and seconds.isdigit() and frac.isdigit() and proto.isdigit():
                return Drop(
                    mono_ns=int(seconds) * 1_000_000_000 + int(frac.ljust(9, "0")[:9]),
                    reason=line[r + 9 :].strip() if r > 0 else "UNKNOWN",
                    location=_symbol(location),
                    proto=proto_name(int(proto), 0),
                )
    match = _FTRACE.search(line)
    if match is None:
        return None
    seconds, _, frac = match.group("ts").partition(".")
    mono = int(seconds) * 1_000_000_000 + int(frac.ljust(9, "0")[:9])
    return Drop(
        mono_ns=mono,
        reason=match.group("reason") or "UNKNOWN",
        location=_symbol(match.group("loc")),
        proto=proto_name(int(match.group("proto")), 0),
    )
