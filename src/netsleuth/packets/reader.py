"""Streaming readers for pcap and pcapng files.

A file is mapped read-only and walked record by record with precompiled
``struct`` unpackers; each frame is decoded in place (no per-frame copy) and
only DNS and ARP frames come out as packets (DNS over UDP and over TCP,
IPv4 and IPv6; TCP segments are reassembled per connection by :mod:`.tcp`). Pages already walked are
released every few MiB, so memory stays flat however large the file.

Both byte orders, microsecond and nanosecond pcap, pcapng sections with any
``if_tsresol``/``if_tsoffset``, Enhanced, Simple and obsolete Packet Blocks.
A file that is not a capture raises :class:`InvalidArgument`; a damaged tail
(bad block length, record running past the end) ends that file's read and is
noted in :class:`ReadStats`, keeping everything read before it.
"""

from __future__ import annotations

import heapq
import mmap
import os
import struct
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from netsleuth.errors import InvalidArgument
from netsleuth.packets.decode import FAST_ETHER_DNS, LINKTYPE_LINUX_SLL2, decode, sll2_ifindex
from netsleuth.packets.model import DnsPacket, Interface, Packet, ReadStats, TcpSegment
from netsleuth.packets.tcp import TcpStreams

__all__ = ["CaptureReader", "read_captures"]

PCAP_MAGICS = {
    b"\xd4\xc3\xb2\xa1": ("<", 1000),
    b"\xa1\xb2\xc3\xd4": (">", 1000),
    b"\x4d\x3c\xb2\xa1": ("<", 1),
    b"\xa1\xb2\x3c\x4d": (">", 1),
}
PCAPNG_SHB = 0x0A0D0D0A
_BOM_LE = b"\x4d\x3c\x2b\x1a"
_BOM_BE = b"\x1a\x2b\x3c\x4d"
_RELEASE_EVERY = 16 << 20  # give walked pages back every 16 MiB
_MAX_FRAME = 1 << 20  # a frame longer than this is corruption, not a packet

# pcapng option codes
OPT_COMMENT = 1
IF_NAME = 2
IF_DESCRIPTION = 3
IF_TSRESOL = 9
IF_TSOFFSET = 14


class CaptureReader:
    """Reads several capture files; ``interfaces`` grows as they are read.

    ``packets()`` yields DNS and ARP packets of all files merged by time (one
    file: in file order). Interface indexes are global; a pcap file is one
    interface named after the file, a pcapng file has one per IDB, a Linux
    cooked v2 capture one per kernel interface index it recorded.
    """

    def __init__(
        self,
        paths: Sequence[str | Path],
        progress: Callable[[int, int], None] | None = None,
    ) -> None:
        self.paths = [Path(p) for p in paths]
        self.stats = ReadStats()
        self.interfaces: list[Interface] = []
        self._progress = progress
        self._sub: dict[tuple[int, int], int] = {}
        self._tcp = TcpStreams(self.stats)  # DNS over TCP, reassembled per connection
        for path in self.paths:
            _check_file(path)

    def packets(self) -> Iterator[Packet]:
        streams = [self._read_file(n, path) for n, path in enumerate(self.paths)]
        if len(streams) == 1:
            return streams[0]
        return heapq.merge(*streams, key=_ts)

    # -- interfaces ---------------------------------------------------------
    def _add_interface(self, name: str, netns: str, role: str, linktype: int, source: str) -> int:
        index = len(self.interfaces)
        self.interfaces.append(Interface(index, name, netns, role, linktype, source))
        return index

    def _sub_interface(self, parent: int, ifindex: int) -> int:
        key = (parent, ifindex)
        found = self._sub.get(key)
        if found is None:
            p = self.interfaces[parent]
            found = self._add_interface(
                f"{p.name}#{ifindex}", p.netns, p.role, p.linktype, p.source
            )
            self._sub[key] = found
        return found

    # -- files --------------------------------------------------------------
    def _read_file(self, number: int, path: Path) -> Iterator[Packet]:
        with path.open("rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            mm = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
            try:
                head = mm[:4]
                if head in PCAP_MAGICS:
                    yield from self._pcap(mm, size, path)
                elif head in (b"\x0a\x0d\x0d\x0a",):
                    yield from self._pcapng(mm, size, path)
                else:
                    raise InvalidArgument(
                        f"{path} is neither pcap nor pcapng (starts with {head.hex()}); "
                        "give a file written by netsleuth capture, tcpdump -w or Wireshark"
                    )
            finally:
                mm.close()

    def _release(self, mm: mmap.mmap, upto: int, size: int) -> None:
        if hasattr(mm, "madvise"):
            mm.madvise(mmap.MADV_DONTNEED, 0, upto - upto % mmap.PAGESIZE)
        if self._progress is not None:
            self._progress(upto, size)

    def _pcap(self, mm: mmap.mmap, size: int, path: Path) -> Iterator[Packet]:
        endian, frac_mult = PCAP_MAGICS[mm[:4]]
        if size < 24:
            raise InvalidArgument(f"{path}: pcap file header is cut short ({size} bytes)")
        _snaplen, network = struct.unpack_from(endian + "II", mm, 16)
        linktype = network & 0x0FFFFFFF
        iface = self._add_interface(path.stem, "", "", linktype, str(path))
        stats = self.stats
        rec = struct.Struct(endian + "IIII").unpack_from
        sll2 = linktype == LINKTYPE_LINUX_SLL2
        off = 24
        release_at = _RELEASE_EVERY
        while off + 16 <= size:
            sec, frac, caplen, _orig = rec(mm, off)
            start = off + 16
            end = start + caplen
            if caplen > _MAX_FRAME:
                stats.note_damage(f"{path}: record at byte {off} claims {caplen} bytes")
                return
            if end > size:
                stats.note_damage(f"{path}: last record cut at byte {off} (file truncated)")
                return
            stats.frames += 1
            i = self._sub_interface(iface, sll2_ifindex(mm, start, end)) if sll2 else iface
            pkt = decode(mm, start, end, linktype, sec * 1_000_000_000 + frac * frac_mult, i, stats)
            off = end
            if pkt is not None:
                if isinstance(pkt, TcpSegment):
                    yield from self._tcp.feed(pkt)
                else:
                    yield pkt
            if off >= release_at:
                self._release(mm, off, size)
                release_at = off + _RELEASE_EVERY
        if off != size:
            stats.note_damage(f"{path}: {size - off} trailing bytes after the last record")

    def _pcapng(self, mm: mmap.mmap, size: int, path: Path) -> Iterator[Packet]:
        """Walk the blocks. A well-formed Enhanced Packet Block of a known
        interface takes the hot path: one unpack, starting 4 bytes before the
        block, gives the previous block's trailing length (checked here rather
        than when that block was read: one struct call fewer per packet), this
        block's type and length and its packet fields. Every other block, and
        any packet block failing a check, goes through the careful path below
        it, which says what is wrong."""
        stats = self.stats
        n_frames = n_dns = 0  # hot counters as locals, added to the stats in the end
        off = 0
        prev = 0  # length of the block before ``off`` (0: none yet)
        section = 0
        release_at = _RELEASE_EVERY
        lim = size - 28  # the hot path reads 32 bytes from off - 4
        # per section: endianness and, per IDB, (global iface, linktype, mult, div,
        # offset_ns, exact: timestamps already in ns)
        endian = "<"
        ifaces: list[tuple[int, int, int, int, int, bool]] = []
        n_ifaces = 0
        head = struct.Struct("<IIIIIIII").unpack_from
        hdr = struct.Struct("<II").unpack_from
        u32 = struct.Struct("<I").unpack_from
        fast = FAST_ETHER_DNS
        new = tuple.__new__
        # the hot path stops short of the end and of the next release of walked pages
        hot_end = min(lim, release_at)
        try:
            while True:
                if 0 < off <= hot_end:
                    trail, btype, blen, iid, ts_hi, ts_lo, caplen, _orig = head(mm, off - 4)
                    if (
                        btype == 6
                        and trail == prev
                        and caplen + 32 <= blen <= size - off
                        and not blen & 3
                        and iid < n_ifaces
                    ):
                        prev = blen
                        n_frames += 1
                        gi, lt, mult, div, tsoff, exact = ifaces[iid]
                        ts_ns = (ts_hi << 32) | ts_lo
                        if not exact:
                            ts_ns = ts_ns * mult // div + tsoff
                        start = off + 28
                        off += blen
                        # the common case inlined (Ethernet/IPv4/UDP/DNS, see decode.py);
                        # everything else, and anything odd, goes through decode()
                        if lt == 1 and caplen >= 65:
                            (
                                dmac,
                                smac,
                                et,
                                vihl,
                                frag,
                                ttl,
                                proto,
                                src,
                                dst,
                                sp,
                                dp,
                                did,
                                fl,
                                qd,
                            ) = fast(mm, start)
                            if (
                                et == 0x0800
                                and vihl == 0x45
                                and proto == 17
                                and not frag & 0x1FFF
                                and qd
                                and (sp == 53 or dp == 53)
                            ):
                                q = start + 54
                                # names up to 63 bytes: one slice (mmap.find is slow);
                                # longer ones take decode()
                                t = mm[q : q + 66]
                                z = t.find(b"\x00")
                                if 0 <= z <= caplen - 57:
                                    n_dns += 1
                                    yield new(
                                        DnsPacket,
                                        (
                                            ts_ns,
                                            gi,
                                            smac,
                                            dmac,
                                            src,
                                            dst,
                                            sp,
                                            dp,
                                            did,
                                            fl,
                                            t[:z].lower(),
                                            (t[z + 1] << 8) | t[z + 2],
                                            17,
                                            ttl,
                                        ),
                                    )
                                    continue
                        if lt == LINKTYPE_LINUX_SLL2:
                            gi = self._sub_interface(gi, sll2_ifindex(mm, start, start + caplen))
                        pkt = decode(mm, start, start + caplen, lt, ts_ns, gi, stats)
                        if pkt is not None:
                            if isinstance(pkt, TcpSegment):
                                yield from self._tcp.feed(pkt)
                            else:
                                yield pkt
                        continue
                # the careful path: any block, every check
                if off + 12 > size:
                    break
                if off >= release_at:
                    self._release(mm, off, size)
                    release_at = off + _RELEASE_EVERY
                    hot_end = min(lim, release_at)
                btype, blen = hdr(mm, off)
                if prev and u32(mm, off - 4)[0] != prev:
                    stats.note_damage(
                        f"{path}: block at byte {off - prev}: trailing length does not match"
                    )
                    return
                if btype == PCAPNG_SHB:
                    bom = mm[off + 8 : off + 12]
                    if bom == _BOM_LE:
                        endian = "<"
                    elif bom == _BOM_BE:
                        endian = ">"
                    elif section == 0:
                        raise InvalidArgument(
                            f"{path}: the pcapng section header has no byte-order mark; "
                            "the file is corrupt or not a capture"
                        )
                    else:
                        stats.note_damage(
                            f"{path}: section header at byte {off} has no byte-order mark"
                        )
                        return
                    head = struct.Struct(endian + "IIIIIIII").unpack_from
                    hdr = struct.Struct(endian + "II").unpack_from
                    u32 = struct.Struct(endian + "I").unpack_from
                    btype, blen = hdr(mm, off)
                    ifaces = []
                    n_ifaces = 0
                    section += 1
                if blen < 12 or blen & 3 or off + blen > size:
                    stats.note_damage(
                        f"{path}: block at byte {off} has an impossible length {blen}"
                        + (" (file truncated)" if off + blen > size and blen >= 12 else "")
                    )
                    return
                prev = blen
                body = off + 8
                body_end = off + blen - 4
                off += blen
                if btype == 6:  # an Enhanced Packet Block the hot path refused
                    if blen < 32:
                        stats.note_damage(f"{path}: packet block at byte {body - 8} is too short")
                        return
                    n_frames += 1
                    iid, ts_hi, ts_lo, caplen = struct.unpack_from(endian + "IIII", mm, body)
                    pkt = self._packet(mm, body + 20, caplen, body_end, ifaces, iid, ts_hi, ts_lo)
                elif btype == 1:  # Interface Description Block
                    ifaces.append(
                        self._idb(
                            mm,
                            body,
                            body_end,
                            endian,
                            path=path,
                            section=section,
                            local=len(ifaces),
                        )
                    )
                    n_ifaces = len(ifaces)
                    continue
                elif btype == 3:  # Simple Packet Block: interface 0, no timestamp
                    stats.frames += 1
                    if not ifaces or body + 4 > body_end:
                        stats.malformed += 1
                        continue
                    orig = u32(mm, body)[0]
                    caplen = min(orig, body_end - body - 4)
                    pkt = self._packet(mm, body + 4, caplen, body_end, ifaces, 0, None, 0)
                elif btype == 2:  # obsolete Packet Block
                    stats.frames += 1
                    if body + 20 > body_end:
                        stats.malformed += 1
                        continue
                    iid = struct.unpack_from(endian + "H", mm, body)[0]
                    ts_hi, ts_lo, caplen = struct.unpack_from(endian + "III", mm, body + 4)
                    pkt = self._packet(mm, body + 20, caplen, body_end, ifaces, iid, ts_hi, ts_lo)
                else:
                    continue
                if pkt is not None:
                    if isinstance(pkt, TcpSegment):
                        yield from self._tcp.feed(pkt)
                    else:
                        yield pkt
        finally:
            stats.frames += n_frames
            stats.dns += n_dns
        if section == 0:
            raise InvalidArgument(f"{path}: pcapng file without a section header")
        if prev and u32(mm, off - 4)[0] != prev:
            stats.note_damage(f"{path}: block at byte {off - prev}: trailing length does not match")
        elif off != size:
            stats.note_damage(f"{path}: {size - off} trailing bytes after the last block")

    def _packet(  # noqa: PLR0917 - one call per odd packet block
        self,
        mm: mmap.mmap,
        start: int,
        caplen: int,
        body_end: int,
        ifaces: list[tuple[int, int, int, int, int, bool]],
        iid: int,
        ts_hi: int | None,
        ts_lo: int,
    ) -> Packet | TcpSegment | None:
        """Decode a packet block's frame the careful way (``ts_hi`` None: the
        block has no timestamp); a frame that does not fit counts as malformed."""
        end = start + caplen
        if end > body_end or iid >= len(ifaces):
            self.stats.malformed += 1
            return None
        gi, lt, mult, div, tsoff, _exact = ifaces[iid]
        ts_ns = tsoff if ts_hi is None else ((ts_hi << 32) | ts_lo) * mult // div + tsoff
        if lt == LINKTYPE_LINUX_SLL2:
            gi = self._sub_interface(gi, sll2_ifindex(mm, start, end))
        return decode(mm, start, end, lt, ts_ns, gi, self.stats)

    def _idb(
        self, mm: Any, body: int, end: int, endian: str, *, path: Path, section: int, local: int
    ) -> tuple[int, int, int, int, int, bool]:
        if body + 8 > end:
            linktype = -1
            options: dict[int, bytes] = {}
        else:
            linktype = struct.unpack_from(endian + "H", mm, body)[0]
            options = _options(mm, body + 8, end, endian)
        name = _text(options.get(IF_NAME)) or (
            f"{path.stem}:{local}" if section == 1 else f"{path.stem}:{section}.{local}"
        )
        netns = _text(options.get(IF_DESCRIPTION))
        role = ""
        comment = _text(options.get(OPT_COMMENT))
        for word in comment.split():
            key, _, value = word.partition("=")
            if key == "role":
                role = value
            elif key == "netns":
                netns = value
        mult, div = 1000, 1  # default resolution: microseconds
        raw = options.get(IF_TSRESOL)
        if raw:
            r = raw[0]
            exp = r & 0x7F
            if r & 0x80:
                mult, div = 1_000_000_000, 1 << min(exp, 64)
            elif exp <= 9:
                mult, div = 10 ** (9 - exp), 1
            else:
                mult, div = 1, 10 ** min(exp - 9, 30)
        tsoff = 0
        raw = options.get(IF_TSOFFSET)
        if raw and len(raw) == 8:
            tsoff = struct.unpack(endian + "q", raw)[0] * 1_000_000_000
        gi = self._add_interface(name, netns, role, linktype, str(path))
        return gi, linktype, mult, div, tsoff, mult == div == 1 and tsoff == 0


def _options(mm: Any, off: int, end: int, endian: str) -> dict[int, bytes]:
    out: dict[int, bytes] = {}
    unpack = struct.Struct(endian + "HH").unpack_from
    for _ in range(256):  # bounded: hostile files may chain options forever
        if off + 4 > end:
            break
        code, length = unpack(mm, off)
        if code == 0:
            break
        value_end = off + 4 + length
        if value_end > end:
            break
        out.setdefault(code, bytes(mm[off + 4 : value_end]))
        off = value_end + (-length & 3)
    return out


def _text(raw: bytes | None) -> str:
    if not raw:
        return ""
    return raw.split(b"\x00", 1)[0].decode("utf-8", "replace")


def _ts(pkt: Packet) -> int:
    return pkt.ts_ns


def _check_file(path: Path) -> None:
    try:
        st = path.stat()
    except FileNotFoundError:
        raise InvalidArgument(f"{path} does not exist; give a capture file") from None
    except OSError as exc:
        raise InvalidArgument(f"{path} cannot be read: {exc.strerror}") from None
    if not path.is_file():
        raise InvalidArgument(f"{path} is not a regular file; save the capture to a file first")
    if st.st_size == 0:
        raise InvalidArgument(f"{path} is empty; the capture wrote nothing")
    if not os.access(path, os.R_OK):
        raise InvalidArgument(f"{path} is not readable; check its permissions")


def read_captures(paths: Sequence[str | Path]) -> tuple[list[Packet], CaptureReader]:
    """Read everything at once (small files, tests); the CLI streams instead."""
    reader = CaptureReader(paths)
    return list(reader.packets()), reader
