"""A minimal rtnetlink dump of links, a neighbour count and netns ids, in
the calling thread's network namespace.

pyroute2 decodes every attribute of every message; on a host with a
thousand veths that alone takes most of a second. ``doctor`` needs six
attributes per link, so this reads the dump with ``struct`` and skips the
rest (and asks the kernel to leave statistics out). Addresses and routes,
which are few, come from pyroute2 through :mod:`netsleuth.netns.links`.
"""

from __future__ import annotations

import os
import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass

__all__ = [
    "LINK_STATS",
    "RawLink",
    "count_neighbours",
    "dump_links",
    "link_stats",
    "netns_id",
    "route_socket",
]

_NLMSG = struct.Struct("=LHHLL")
_IFINFO = struct.Struct("=BxHiII")
_NDMSG = struct.Struct("=BxxxiHBB")
_RTA = struct.Struct("=HH")

NLM_F_REQUEST = 0x1
NLM_F_DUMP = 0x300
NLMSG_ERROR = 2
NLMSG_DONE = 3
RTM_NEWLINK, RTM_GETLINK = 16, 18
RTM_NEWNEIGH, RTM_GETNEIGH = 28, 30
IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU, IFLA_LINK, IFLA_MASTER = 1, 3, 4, 5, 10
IFLA_OPERSTATE, IFLA_LINKINFO, IFLA_EXT_MASK, IFLA_LINK_NETNSID = 16, 18, 29, 37
IFLA_INFO_KIND = 1
RTM_NEWNSID, RTM_GETNSID = 88, 90
NETNSA_NSID, NETNSA_FD = 1, 3
RTEXT_FILTER_SKIP_STATS = 1 << 3
_OPERSTATES = ["UNKNOWN", "NOTPRESENT", "DOWN", "LOWERLAYERDOWN", "TESTING", "DORMANT", "UP"]


@dataclass(frozen=True, slots=True)
class RawLink:
    index: int
    name: str
    mac: str
    mtu: int
    kind: str
    master: int
    operstate: str
    netnsid: int | None
    link: int = 0  # the peer's index for a veth (in the namespace netnsid names)


def _attrs(data: bytes, offset: int, end: int) -> Iterator[tuple[int, bytes]]:
    while offset + 4 <= end:
        length, kind = _RTA.unpack_from(data, offset)
        if length < 4:
            return
        yield kind & 0x3FFF, data[offset + 4 : offset + length]
        offset += (length + 3) & ~3


def route_socket() -> socket.socket:
    """A bound rtnetlink socket of the calling thread's network namespace
    (it stays in that namespace whatever thread uses it later)."""
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
    sock.settimeout(10)
    sock.bind((0, 0))
    return sock


def _dump(
    msg_type: int, body: bytes, want: int, sock: socket.socket | None = None
) -> Iterator[tuple[bytes, int, int]]:
    """Yield (buffer, payload offset, payload end) of each reply message, on
    ``sock`` or on a socket of the calling thread's namespace."""
    if sock is None:
        with route_socket() as own:
            yield from _dump(msg_type, body, want, own)
        return
    seq = int.from_bytes(os.urandom(3), "little")
    sock.send(_NLMSG.pack(_NLMSG.size + len(body), msg_type, NLM_F_REQUEST | NLM_F_DUMP,
                          seq, 0) + body)  # fmt: skip
    for _ in range(1_000_000):  # bounded: a dump ends with NLMSG_DONE
        data = sock.recv(1 << 20)
        offset = 0
        while offset + _NLMSG.size <= len(data):
            length, kind, _flags, mseq, _pid = _NLMSG.unpack_from(data, offset)
            if length < _NLMSG.size:
                return
            if mseq == seq:
                if kind == NLMSG_DONE:
                    return
                if kind == NLMSG_ERROR:
                    (err,) = struct.unpack_from("=i", data, offset + _NLMSG.size)
                    if err:
                        raise OSError(-err, os.strerror(-err))
                    return
                if kind == want:
                    yield data, offset + _NLMSG.size, offset + length
            offset += (length + 3) & ~3


def dump_links() -> list[RawLink]:
    """Every link of the calling thread's network namespace."""
    ext = _RTA.pack(8, IFLA_EXT_MASK) + struct.pack("=I", RTEXT_FILTER_SKIP_STATS)
    body = _IFINFO.pack(socket.AF_UNSPEC, 0, 0, 0, 0) + ext
    out = []
    for data, start, end in _dump(RTM_GETLINK, body, RTM_NEWLINK):
        _fam, _type, index, _flags, _change = _IFINFO.unpack_from(data, start)
        name, mac, kind = "", "", ""
        mtu = master = link = 0
        operstate = "UNKNOWN"
        netnsid: int | None = None
        for attr, value in _attrs(data, start + _IFINFO.size, end):
            if attr == IFLA_IFNAME:
                name = value.split(b"\0", 1)[0].decode(errors="replace")
            elif attr == IFLA_ADDRESS:
                mac = ":".join(f"{b:02x}" for b in value)
            elif attr == IFLA_MTU:
                (mtu,) = struct.unpack_from("=I", value)
            elif attr == IFLA_MASTER:
                (master,) = struct.unpack_from("=I", value)
            elif attr == IFLA_LINK:
                (link,) = struct.unpack_from("=I", value)
            elif attr == IFLA_OPERSTATE:
                state = value[0]
                operstate = _OPERSTATES[state] if state < len(_OPERSTATES) else str(state)
            elif attr == IFLA_LINK_NETNSID:
                (netnsid,) = struct.unpack_from("=i", value)
            elif attr == IFLA_LINKINFO:
                for sub, subvalue in _attrs(value, 0, len(value)):
                    if sub == IFLA_INFO_KIND:
                        kind = subvalue.split(b"\0", 1)[0].decode(errors="replace")
        out.append(RawLink(index, name, mac, mtu, kind, master, operstate, netnsid, link))
    return out


LINK_STATS = (
    "rx_packets", "tx_packets", "rx_bytes", "tx_bytes", "rx_errors", "tx_errors",
    "rx_dropped", "tx_dropped", "multicast", "collisions", "rx_length_errors",
    "rx_over_errors", "rx_crc_errors", "rx_frame_errors", "rx_fifo_errors",
    "rx_missed_errors", "tx_aborted_errors", "tx_carrier_errors", "tx_fifo_errors",
    "tx_heartbeat_errors", "tx_window_errors", "rx_compressed", "tx_compressed",
    "rx_nohandler", "rx_otherhost_dropped",
)  # fmt: skip
"""Fields of ``struct rtnl_link_stats64`` in kernel order (``rx_otherhost_dropped``
since 6.0; an older kernel sends fewer, and those are missing)."""

IFLA_STATS64 = 23


def link_stats(sock: socket.socket | None = None) -> dict[str, dict[str, int]]:
    """Link name -> its 64-bit counters, for every link of the namespace of
    ``sock`` (default: of the calling thread). Read with ``struct``: pyroute2
    does not know ``rx_otherhost_dropped``, and decodes far more than this needs."""
    body = _IFINFO.pack(socket.AF_UNSPEC, 0, 0, 0, 0)
    out: dict[str, dict[str, int]] = {}
    for data, start, end in _dump(RTM_GETLINK, body, RTM_NEWLINK, sock):
        name = ""
        stats: tuple[int, ...] = ()
        for attr, value in _attrs(data, start + _IFINFO.size, end):
            if attr == IFLA_IFNAME:
                name = value.split(b"\0", 1)[0].decode(errors="replace")
            elif attr == IFLA_STATS64:
                n = min(len(value) // 8, len(LINK_STATS))
                stats = struct.unpack_from(f"={n}Q", value)
        if name and stats:
            out[name] = dict(zip(LINK_STATS, stats, strict=False))
    return out


def count_neighbours(family: int = socket.AF_INET) -> int:
    body = _NDMSG.pack(family, 0, 0, 0, 0)
    return sum(1 for _ in _dump(RTM_GETNEIGH, body, RTM_NEWNEIGH))


def netns_id(path: str) -> int | None:
    """The id this namespace gives the namespace at ``path`` (what
    ``IFLA_LINK_NETNSID`` of a veth refers to); None if it has none."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        body = struct.pack("=Bxxx", socket.AF_UNSPEC) + _RTA.pack(8, NETNSA_FD)
        body += struct.pack("=I", fd)
        with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE) as sock:
            sock.settimeout(5)
            sock.bind((0, 0))
            sock.send(_NLMSG.pack(_NLMSG.size + len(body), RTM_GETNSID, NLM_F_REQUEST, 1, 0) + body)
            data = sock.recv(65536)
    except OSError:
        return None
    finally:
        os.close(fd)
    length, kind, _flags, _seq, _pid = _NLMSG.unpack_from(data, 0)
    if kind != RTM_NEWNSID:
        return None
    for attr, value in _attrs(data, _NLMSG.size + 4, length):
        if attr == NETNSA_NSID:
            (nsid,) = struct.unpack_from("=i", value)
            return nsid if nsid >= 0 else None
    return None
