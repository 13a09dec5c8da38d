"""Capture DNS and ARP frames on several interfaces in several namespaces at
once, into one pcapng file.

Each AF_PACKET socket is created by a helper thread that entered the
interface's namespace (a socket stays in the namespace it was created in), a
classic BPF filter is attached before the socket is bound (so nothing
unfiltered is ever queued), and one thread-free select loop drains them all
and writes Enhanced Packet Blocks with kernel nanosecond timestamps.

Promiscuity: the sockets never ask for it, and on an interface with the
role ``bridge`` frames marked PACKET_OTHERHOST are counted and left out (on a
bridge *port* nearly every frame is "other host": the port's own MAC is not
the gateway's, so there everything is kept). On the bridge device the capture
so shows what the bridge hands up to the host (frames to a MAC the bridge owns,
broadcasts) plus what the host sends; frames the bridge only floods or
forwards between ports are not shown. That is what ``explain`` wants: a query
sent to a stale gateway MAC does not appear on the bridge at all. A
promiscuous capture (tcpdump's default, or anything else that sets
IFF_PROMISC on the bridge) also shows those frames, as PACKET_OTHERHOST,
which IP then drops: promiscuity changes what a capture sees, not what the
host routes (the lab test shows both on the same outage).
"""

from __future__ import annotations

import ctypes
import errno
import selectors
import socket
import struct
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from netsleuth import netns
from netsleuth.errors import InvalidArgument, TargetNotFound
from netsleuth.packets.writer import PcapngWriter

__all__ = [
    "CaptureResult",
    "CaptureSpec",
    "IfaceCount",
    "capture",
    "dns_arp_filter",
    "lab_specs",
    "open_capture_socket",
]

ETH_P_ALL = 0x0003
SO_ATTACH_FILTER = 26
SO_TIMESTAMPNS = 35
SO_RCVBUFFORCE = 33
SOL_PACKET = 263
PACKET_STATISTICS = 6
PACKET_OTHERHOST = 3
PACKET_OUTGOING = 4
ARPHRD_ETHER = 1
ARPHRD_LOOPBACK = 772
SNAPLEN = 65535
_CMSG_SPACE = socket.CMSG_SPACE(16)


@dataclass(frozen=True, slots=True)
class CaptureSpec:
    """One interface to capture on: the namespace (by name; "" is this
    process's own namespace), the interface, and its role in the journey
    (``client``, ``bridge``, ``uplink`` or "")."""

    netns: str
    ifname: str
    role: str = ""

    @property
    def label(self) -> str:
        return f"{self.netns or 'host'}:{self.ifname}"


@dataclass(frozen=True, slots=True)
class IfaceCount:
    """Frames written, frames the kernel dropped (socket buffer full), and, on
    the bridge, frames left out because they were not for this host
    (PACKET_OTHERHOST, seen only while something made the bridge promiscuous)."""

    spec: CaptureSpec
    frames: int
    kernel_drops: int
    not_for_host: int = 0
    went_down: int = 0  # times the interface went down (or away) during the capture


@dataclass(frozen=True, slots=True)
class CaptureResult:
    path: str
    frames: int
    seconds: float
    interfaces: tuple[IfaceCount, ...] = field(default_factory=tuple)
    interrupted: bool = False


def dns_arp_filter() -> list[tuple[int, int, int, int]]:
    """Classic BPF for Ethernet: ARP; UDP or TCP port 53 either way over IPv4
    (unfragmented, or the first fragment) or over IPv6 (whose extension
    headers a classic filter cannot walk: an IPv6 packet with any is kept,
    and the reader decides; but a hop-by-hop header followed by ICMPv6, the
    multicast listener reports every interface sends, is not)."""
    return _assemble(
        [
            ("ldh", 12),  # ethertype
            ("jeq", 0x0806, "accept", None),
            ("jeq", 0x86DD, "ipv6", None),
            ("jeq", 0x0800, None, "reject"),
            ("ldb", 23),  # IPv4 protocol
            ("jeq", 17, "v4ports", None),
            ("jeq", 6, None, "reject"),
            ("v4ports", "ldh", 20),  # flags + fragment offset
            ("jset", 0x1FFF, "reject", None),
            ("ldxb", 14),  # x = IPv4 header length
            ("ldhx", 14),  # source port
            ("jeq", 53, "accept", None),
            ("ldhx", 16),  # destination port
            ("jeq", 53, "accept", "reject"),
            ("ipv6", "ldb", 20),  # IPv6 next header
            ("jeq", 17, "v6ports", None),
            ("jeq", 6, "v6ports", None),
            ("jeq", 0, "hopbyhop", None),
            ("jeq", 43, "accept", None),  # routing
            ("jeq", 44, "accept", None),  # fragment
            ("jeq", 60, "accept", "reject"),  # destination options
            # hop-by-hop: what follows it; ICMPv6 there is MLD (router alert), not DNS
            ("hopbyhop", "ldb", 54),
            ("jeq", 58, "reject", "accept"),
            ("v6ports", "ldh", 54),
            ("jeq", 53, "accept", None),
            ("ldh", 56),
            ("jeq", 53, "accept", "reject"),
            ("accept", "ret", 262144),
            ("reject", "ret", 0),
        ]
    )


_BPF_CODES = {"ldh": 0x28, "ldb": 0x30, "ldxb": 0xB1, "ldhx": 0x48, "ret": 0x06}
_BPF_JUMPS = {"jeq": 0x15, "jset": 0x45}


def _assemble(program: list[tuple[object, ...]]) -> list[tuple[int, int, int, int]]:
    """Classic BPF from ``(label?, op, k[, true-label, false-label])`` rows; a
    jump label of None falls through to the next instruction."""
    rows = [
        r if isinstance(r[0], str) and r[0] not in _BPF_CODES | _BPF_JUMPS else (None, *r)
        for r in program
    ]
    labels = {r[0]: i for i, r in enumerate(rows) if r[0] is not None}
    out: list[tuple[int, int, int, int]] = []
    for i, (_label, op, k, *jumps) in enumerate(rows):
        assert isinstance(op, str) and isinstance(k, int)
        if op in _BPF_JUMPS:
            jt, jf = (0 if j is None else labels[j] - i - 1 for j in jumps)
            out.append((_BPF_JUMPS[op], jt, jf, k))
        else:
            out.append((_BPF_CODES[op], 0, 0, k))
    return out


def _attach_filter(sock: socket.socket, program: list[tuple[int, int, int, int]]) -> None:
    raw = b"".join(struct.pack("HBBI", *insn) for insn in program)
    buf = ctypes.create_string_buffer(raw, len(raw))
    fprog = struct.pack("HL", len(program), ctypes.addressof(buf))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)


def open_capture_socket(spec: CaptureSpec) -> socket.socket:
    """A filtered, bound, non-blocking AF_PACKET socket inside ``spec.netns``."""
    path = netns.netns_path(spec.netns) if spec.netns else None
    if path is not None and not path.exists():
        raise TargetNotFound(
            f"network namespace {spec.netns} does not exist; list them with `ip netns`"
        )

    def make() -> socket.socket:
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        try:
            _attach_filter(sock, dns_arp_filter())
            sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            try:
                sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 8 << 20)
            except OSError:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
            try:
                sock.bind((spec.ifname, ETH_P_ALL))
            except OSError:
                raise TargetNotFound(
                    f"interface {spec.ifname} does not exist in namespace {spec.netns or 'host'}; "
                    f"list them with `ip {'-n ' + spec.netns + ' ' if spec.netns else ''}link`"
                ) from None
            hatype = sock.getsockname()[3]
            if hatype not in (ARPHRD_ETHER, ARPHRD_LOOPBACK):
                raise InvalidArgument(
                    f"{spec.label} has hardware type {hatype}; capture supports Ethernet "
                    "interfaces (veth, bridge, physical)"
                )
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        return sock

    return make() if path is None else netns.run_in(path, make)


def _drops(sock: socket.socket) -> int:
    try:
        _packets, drops = struct.unpack("II", sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8))
    except OSError:
        return 0
    return int(drops)


def capture(
    specs: Sequence[CaptureSpec],
    out: BinaryIO | str | Path,
    *,
    duration: float | None = None,
    count: int | None = None,
    stop: threading.Event | None = None,
    ready: threading.Event | None = None,
) -> CaptureResult:
    """Capture until ``duration`` seconds pass, ``count`` frames were written,
    ``stop`` is set or Ctrl-C; at least one bound must be given."""
    if duration is None and count is None and stop is None:
        raise InvalidArgument("give --duration or --count so the capture ends")
    if not specs:
        raise InvalidArgument("nothing to capture on; give --lab RUN_ID or --iface NETNS:IFNAME")
    labels = [s.label for s in specs]
    if len(set(labels)) != len(labels):
        raise InvalidArgument("the same interface is given twice")
    sockets: list[socket.socket] = []
    own_file = isinstance(out, (str, Path))
    fh: BinaryIO = open(out, "wb") if isinstance(out, (str, Path)) else out  # noqa: SIM115
    sel = selectors.DefaultSelector()
    counts = [0] * len(specs)
    others = [0] * len(specs)
    downs = [0] * len(specs)
    skip_other = [spec.role == "bridge" for spec in specs]
    total = 0
    interrupted = False
    started = time.monotonic()
    try:
        for spec in specs:
            sockets.append(open_capture_socket(spec))
        writer = PcapngWriter(fh)
        for i, (spec, sock) in enumerate(zip(specs, sockets, strict=True)):
            writer.add_interface(spec.ifname, spec.netns, spec.role, 1, SNAPLEN)
            sel.register(sock, selectors.EVENT_READ, i)
        if ready is not None:
            ready.set()
        started = time.monotonic()
        deadline = started + duration if duration is not None else None
        limit = count if count is not None else -1
        try:
            while total != limit:
                if stop is not None and stop.is_set():
                    break
                wait = 0.2
                if deadline is not None:
                    wait = min(wait, deadline - time.monotonic())
                    if wait <= 0:
                        break
                for key, _ in sel.select(wait):
                    i = key.data
                    sock = sockets[i]
                    for _ in range(512):  # drain, bounded
                        try:
                            data, anc, _flags, addr = sock.recvmsg(SNAPLEN, _CMSG_SPACE)
                        except BlockingIOError:
                            break
                        except OSError as exc:
                            # the interface went down or away: the kernel reports it once
                            # and resumes delivery if it comes back up
                            if exc.errno not in (errno.ENETDOWN, errno.ENODEV, errno.ENXIO):
                                raise
                            downs[i] += 1
                            break
                        if addr[2] == PACKET_OTHERHOST and skip_other[i]:
                            others[i] += 1
                            continue
                        ts_ns = 0
                        for level, ctype, cdata in anc:
                            if level == socket.SOL_SOCKET and ctype == SO_TIMESTAMPNS:
                                sec, nsec = struct.unpack("qq", cdata[:16])
                                ts_ns = sec * 1_000_000_000 + nsec
                        if not ts_ns:
                            ts_ns = time.time_ns()
                        writer.write(i, ts_ns, data, len(data), addr[2] == PACKET_OUTGOING)
                        counts[i] += 1
                        total += 1
                        if total == limit:
                            break
        except KeyboardInterrupt:
            interrupted = True
        per_iface = tuple(
            IfaceCount(spec, counts[i], _drops(sockets[i]), others[i], downs[i])
            for i, spec in enumerate(specs)
        )
    finally:
        sel.close()
        for sock in sockets:
            sock.close()
        fh.flush()
        if own_file:
            fh.close()
    name = str(out) if own_file else getattr(out, "name", "")
    return CaptureResult(
        path=str(name),
        frames=total,
        seconds=time.monotonic() - started,
        interfaces=per_iface,
        interrupted=interrupted,
    )


def lab_specs(host_ns: str, ports: Iterable[str], bridge: str, uplink: str) -> list[CaptureSpec]:
    """Interfaces of a lab: each container's bridge port (role ``client``), the
    bridge and the uplink — all in the lab's host namespace."""
    specs = [CaptureSpec(host_ns, port, "client") for port in ports]
    specs.append(CaptureSpec(host_ns, bridge, "bridge"))
    specs.append(CaptureSpec(host_ns, uplink, "uplink"))
    return specs
