"""The kernel's loss counters of one network namespace, read cheaply once a second.

:class:`CounterReader` enters the namespace once and opens what it reads
there: ``/proc/thread-self/net/{snmp,netstat}``, ``stat/nf_conntrack`` (when
conntrack is loaded), ``stat/arp_cache`` (only the initial namespace has it:
the neighbour table is machine-wide), the conntrack count and maximum, and
an rtnetlink socket. Files under ``/proc/.../net`` and ``/proc/sys/net``
stay bound to the namespace they were opened in, so :meth:`CounterReader.read`
is a few ``pread`` calls and one link dump from any thread, with no
``setns``.

Names are flat and stable (they are stored): ``ct.insert_failed``,
``ct.drop``, ``ct.early_drop``, ``ct.clash_resolve``, ... (summed over
CPUs), ``ct.count``/``ct.max`` (gauges), ``arp.table_fulls``, ...,
``snmp.Udp.RcvbufErrors``, ``snmp.Ip.OutNoRoutes``, ...,
``netstat.TcpExt.IPReversePathFilter``, and per link
``link.NAME.rx_dropped``, ... (:data:`LINK_COUNTERS`).
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field

from netsleuth.netns.namespace import Namespace
from netsleuth.netns.rtnl import link_stats, route_socket

__all__ = [
    "ARP_COUNTERS",
    "CT_COUNTERS",
    "GAUGES",
    "LINK_COUNTERS",
    "LOAD_COUNTERS",
    "SNMP_COUNTERS",
    "CounterReader",
    "parse_snmp",
    "parse_stat_table",
]

CT_COUNTERS = ("insert_failed", "drop", "early_drop", "clash_resolve", "invalid", "search_restart")
"""Columns of ``/proc/net/stat/nf_conntrack`` kept (``clashres`` is stored as
``clash_resolve``)."""

ARP_COUNTERS = ("table_fulls", "unresolved_discards", "forced_gc_runs", "res_failed")
"""Columns of ``/proc/net/stat/arp_cache`` kept."""

SNMP_COUNTERS = (
    "snmp.Ip.OutNoRoutes",
    "netstat.IpExt.InNoRoutes",
    "snmp.Ip.InAddrErrors",
    "snmp.Ip.InDiscards",
    "snmp.Ip.OutDiscards",
    "snmp.Udp.RcvbufErrors",
    "snmp.Udp.SndbufErrors",
    "snmp.Udp.InErrors",
    "snmp.Udp.NoPorts",
    "snmp.Icmp.InDestUnreachs",
    "snmp.Icmp.OutDestUnreachs",
    "netstat.TcpExt.IPReversePathFilter",
    "netstat.TcpExt.TCPTimeouts",
)
"""What ``snmp`` and ``netstat`` lines are kept, as ``FILE.Group.Field``."""

LINK_COUNTERS = (
    "rx_dropped",
    "tx_dropped",
    "rx_errors",
    "tx_errors",
    "rx_otherhost_dropped",
    "rx_nohandler",
)
"""Per-link loss counters kept from ``rtnl_link_stats64``."""

LOAD_COUNTERS = ("tx_packets", "rx_packets")
"""Per-link traffic counters, kept only for the links asked for (the uplink)."""

GAUGES = ("ct.count", "ct.max", "arp.entries")
"""Values that are levels, not counts: compared, never subtracted."""

_CT_NAMES = {"clashres": "clash_resolve"}


def parse_stat_table(text: str, keep: Iterable[str], prefix: str) -> dict[str, int]:
    """Sum the per-CPU rows of a ``/proc/net/stat`` table (hex columns named
    by its header) over ``keep``; ``entries`` (the same on every row) is
    taken once as ``PREFIX.entries``."""
    lines = text.split("\n")
    header = [_CT_NAMES.get(h, h) for h in lines[0].split()]
    wanted = set(keep)
    out = dict.fromkeys((f"{prefix}.{k}" for k in keep if k in header), 0)
    entries = None
    for line in lines[1:]:
        cells = line.split()
        if len(cells) != len(header):
            continue
        for name, cell in zip(header, cells, strict=True):
            if name in wanted:
                out[f"{prefix}.{name}"] += int(cell, 16)
            elif name == "entries" and entries is None:
                entries = int(cell, 16)
    if entries is not None:
        out[f"{prefix}.entries"] = entries
    return out


def parse_snmp(text: str, file: str, keep: frozenset[str]) -> dict[str, int]:
    """``/proc/net/snmp``-style pairs of lines (names, then values) -> the
    ``FILE.Group.Field`` values in ``keep``. Only the few kept fields are
    looked up (``netstat``'s TcpExt line has over a hundred)."""
    out: dict[str, int] = {}
    lines = text.split("\n")
    for names, values in zip(lines[::2], lines[1::2], strict=False):
        group, _, fields = names.partition(":")
        prefix = f"{file}.{group}."
        wanted = [key for key in keep if key.startswith(prefix)]
        if not wanted:
            continue
        cells, nums = fields.split(), values.partition(":")[2].split()
        for key in wanted:
            try:
                i = cells.index(key[len(prefix) :])
            except ValueError:
                continue
            if i < len(nums):
                out[key] = int(nums[i])
    return out


@dataclass(slots=True)
class _Files:
    snmp: int | None = None
    netstat: int | None = None
    conntrack: int | None = None
    arp: int | None = None
    ct_count: int | None = None
    ct_max: int | None = None
    sock: socket.socket | None = None
    opened: list[int] = field(default_factory=list)


def _open(path: str, files: _Files) -> int | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    files.opened.append(fd)
    return fd


_CHUNK = 65536


def _pread(fd: int | None) -> str:
    if fd is None:
        return ""
    chunks = []
    offset = 0
    for _ in range(64):  # bounded: these files are a few KiB
        chunk = os.pread(fd, _CHUNK, offset)
        chunks.append(chunk)
        offset += len(chunk)
        if len(chunk) < _CHUNK:  # the end: asking again would have the kernel
            break  # format the whole file a second time for nothing
    return b"".join(chunks).decode(errors="replace")


def _identity(ns: Namespace) -> tuple[int, int] | None:
    """(device, inode) of the namespace ``ns.path`` leads to (None: ours);
    FileNotFoundError once it was deleted."""
    if ns.path is None:
        return None
    st = os.stat(ns.path)
    return st.st_dev, st.st_ino


class CounterReader:
    """The counters of one namespace. ``load_links``: links whose packet
    counts are kept too (the host's uplink, for the DNS query load)."""

    def __init__(self, ns: Namespace, load_links: Iterable[str] = ()) -> None:
        self.namespace = ns
        self.load_links = frozenset(load_links)
        self._identity = _identity(ns)
        self._files = ns.run(self._open_all)
        self._keep = frozenset(SNMP_COUNTERS)

    @staticmethod
    def _open_all() -> _Files:
        files = _Files()
        net = "/proc/thread-self/net"
        files.snmp = _open(f"{net}/snmp", files)
        files.netstat = _open(f"{net}/netstat", files)
        files.conntrack = _open(f"{net}/stat/nf_conntrack", files)
        files.arp = _open(f"{net}/stat/arp_cache", files)
        files.ct_count = _open("/proc/sys/net/netfilter/nf_conntrack_count", files)
        files.ct_max = _open("/proc/sys/net/netfilter/nf_conntrack_max", files)
        files.sock = route_socket()
        return files

    def read(self) -> dict[str, int]:
        """Every counter now (raises OSError when the namespace went away).

        The open files and the socket hold the namespace: deleting it
        (``ip netns del``, the last process gone) does not end it while they
        are open, so reading them would go on. Whether its path still leads
        to the namespace they were opened in is checked first (one ``stat``)."""
        if self._identity is not None and _identity(self.namespace) != self._identity:
            raise OSError(errno.ESTALE, f"namespace {self.namespace.label} was re-created")
        f = self._files
        out: dict[str, int] = {}
        out.update(parse_snmp(_pread(f.snmp), "snmp", self._keep))
        out.update(parse_snmp(_pread(f.netstat), "netstat", self._keep))
        if f.conntrack is not None:
            out.update(parse_stat_table(_pread(f.conntrack), CT_COUNTERS, "ct"))
            out.pop("ct.entries", None)  # the same as ct.count
        if f.arp is not None:
            out.update(parse_stat_table(_pread(f.arp), ARP_COUNTERS, "arp"))
        for key, fd in (("ct.count", f.ct_count), ("ct.max", f.ct_max)):
            text = _pread(fd).strip()
            if text.isdigit():
                out[key] = int(text)
        if f.sock is not None:
            for name, stats in link_stats(f.sock).items():
                keep = LINK_COUNTERS + LOAD_COUNTERS if name in self.load_links else LINK_COUNTERS
                for key in keep:
                    if key in stats:
                        out[f"link.{name}.{key}"] = stats[key]
        return out

    def close(self) -> None:
        for fd in self._files.opened:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._files.opened.clear()
        if self._files.sock is not None:
            self._files.sock.close()
            self._files.sock = None

    def __enter__(self) -> CounterReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
