"""An AF_PACKET capture socket with a TPACKET_V3 receive ring, for DNS only.

The kernel writes each accepted frame (the BPF filter of
:func:`netsleuth.passive.wire.dns_filter` runs first, and cuts it to
``SNAPLEN`` bytes) into a block of a ring shared with this process through
``mmap``; a block is handed over when it is full or ``retire_ms`` after its
first frame. :meth:`PacketRing.blocks` walks the blocks handed over and gives
each back once it was read, so reading costs no system call per frame — one
``poll`` per batch of blocks.

Frames the ring had no room for are counted by the kernel: :meth:`drops`
(``PACKET_STATISTICS``) says how many, the figure that tells whether the
observer kept up.

``promisc`` adds a promiscuous membership to the socket (undone when it
closes): on a bridge, frames a client sent to a MAC the bridge no longer has
(a stale gateway entry) are then handed up to the host too, marked "for
another host" — which IP drops, so routing is unchanged — and the query that
was lost is seen. Without it those queries never reach a capture on the bridge.
"""

from __future__ import annotations

import ctypes
import mmap
import socket
import struct
from collections.abc import Iterator
from pathlib import Path

from netsleuth import netns
from netsleuth.errors import InvalidArgument, TargetNotFound
from netsleuth.passive.wire import dns_filter

__all__ = ["PacketRing", "RingStats"]

ETH_P_ALL = 0x0003
SOL_PACKET = 263
SO_ATTACH_FILTER = 26
PACKET_ADD_MEMBERSHIP = 1
PACKET_MR_PROMISC = 1
PACKET_RX_RING = 5
PACKET_STATISTICS = 6
PACKET_VERSION = 10
TPACKET_V3 = 2
TP_STATUS_KERNEL = 0
TP_STATUS_USER = 1
ARPHRD_ETHER = 1

_BLOCK_HDR = struct.Struct("=IIII")  # block_status, num_pkts, offset_to_first_pkt, blk_len (at 8)
_ZERO = struct.pack("=I", TP_STATUS_KERNEL)


class RingStats:
    """Frames received and dropped by the kernel since the socket opened."""

    __slots__ = ("drops", "frames")

    def __init__(self) -> None:
        self.frames = 0
        self.drops = 0


def _attach_filter(sock: socket.socket, program: list[tuple[int, int, int, int]]) -> None:
    raw = b"".join(struct.pack("HBBI", *insn) for insn in program)
    buf = ctypes.create_string_buffer(raw, len(raw))
    fprog = struct.pack("HL", len(program), ctypes.addressof(buf))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)


class PacketRing:
    """One interface's DNS frames through a TPACKET_V3 ring (see the module
    docstring). Open it with :meth:`open`; close it when done."""

    def __init__(
        self, sock: socket.socket, ring: mmap.mmap, block_size: int, block_nr: int, ifname: str
    ) -> None:
        self.sock = sock
        self.ring = ring
        self.block_size = block_size
        self.block_nr = block_nr
        self.ifname = ifname
        self.stats = RingStats()
        self._next = 0

    @classmethod
    def open(
        cls,
        ifname: str,
        netns_path: str | Path | None = None,
        *,
        block_size: int = 1 << 20,
        block_nr: int = 32,
        retire_ms: int = 20,
        promisc: bool = False,
        netns_label: str = "host",
    ) -> PacketRing:
        """A ring on ``ifname`` in the namespace at ``netns_path`` (None: ours)."""

        def make() -> PacketRing:
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)  # receives nothing yet
            ring: mmap.mmap | None = None
            try:
                _attach_filter(sock, dns_filter())  # before bind: nothing unfiltered is queued
                sock.setsockopt(SOL_PACKET, PACKET_VERSION, TPACKET_V3)
                frame_size = 2048
                req = struct.pack(
                    "=IIIIIII",
                    block_size,
                    block_nr,
                    frame_size,
                    block_size * block_nr // frame_size,
                    retire_ms,
                    0,
                    0,
                )
                sock.setsockopt(SOL_PACKET, PACKET_RX_RING, req)
                ring = mmap.mmap(sock.fileno(), block_size * block_nr, mmap.MAP_SHARED)
                try:
                    sock.bind((ifname, ETH_P_ALL))
                except OSError:
                    raise TargetNotFound(
                        f"interface {ifname} does not exist in namespace {netns_label}; "
                        "list them with `ip link`"
                    ) from None
                if sock.getsockname()[3] != ARPHRD_ETHER:
                    raise InvalidArgument(
                        f"{ifname} is not an Ethernet interface; --passive watches bridges, "
                        "veths and physical interfaces"
                    )
                if promisc:
                    mreq = struct.pack(
                        "iHH8s", socket.if_nametoindex(ifname), PACKET_MR_PROMISC, 0, b""
                    )
                    sock.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP, mreq)
                sock.setblocking(False)
                return cls(sock, ring, block_size, block_nr, ifname)
            except BaseException:
                if ring is not None:
                    ring.close()
                sock.close()
                raise

        return make() if netns_path is None else netns.run_in(netns_path, make)

    def fileno(self) -> int:
        return self.sock.fileno()

    def blocks(self) -> Iterator[tuple[bytes, int, int]]:
        """(copy of the block's used bytes, offset of its first frame in it,
        number of frames) of each block the kernel handed over, oldest first.
        Each block goes back to the kernel as soon as it is copied (one
        ``memcpy`` of what it holds), so the ring has room again while its
        frames are parsed, and the parser reads a ``bytes`` object, which the
        compiled parser indexes in C."""
        ring, size = self.ring, self.block_size
        while True:
            base = self._next * size
            status, count, first, used = _BLOCK_HDR.unpack_from(ring, base + 8)
            if not status & TP_STATUS_USER:
                return
            data = ring[base : base + min(max(used, first), size)]
            ring[base + 8 : base + 12] = _ZERO
            self._next = (self._next + 1) % self.block_nr
            self.stats.frames += count
            yield data, first, count

    def drops(self) -> int:
        """Frames the kernel dropped since the socket opened (no room in the ring)."""
        try:
            raw = self.sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 12)
        except OSError:
            return self.stats.drops
        _packets, dropped, _freeze = struct.unpack("=III", raw)
        self.stats.drops += dropped  # reading resets the kernel's counters
        return self.stats.drops

    def close(self) -> None:
        self.drops()
        self.ring.close()
        self.sock.close()
