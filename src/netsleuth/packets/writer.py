"""A small pcapng writer: one section, one Interface Description Block per
interface (``if_name``, ``if_description`` = namespace, nanosecond
timestamps, a ``role=... netns=...`` comment ``explain`` reads back), and
Enhanced Packet Blocks with the direction flag. Wireshark and tshark read it.
"""

from __future__ import annotations

import struct
from typing import BinaryIO

__all__ = ["PcapngWriter", "pcap_bytes"]

_SHB = 0x0A0D0D0A
_IDB = 1
_EPB = 6


def _opt(code: int, value: bytes) -> bytes:
    return struct.pack("<HH", code, len(value)) + value + b"\x00" * (-len(value) & 3)


def _block(btype: int, body: bytes) -> bytes:
    length = 12 + len(body)
    return struct.pack("<II", btype, length) + body + struct.pack("<I", length)


class PcapngWriter:
    """Write packets to ``out`` (opened in binary mode); the caller closes it."""

    def __init__(self, out: BinaryIO, application: str = "netsleuth") -> None:
        self._out = out
        self._ifaces = 0
        opts = _opt(4, application.encode()) + _opt(0, b"")  # shb_userappl
        self._out.write(_block(_SHB, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1) + opts))

    def add_interface(
        self,
        name: str,
        netns: str = "",
        role: str = "",
        linktype: int = 1,
        snaplen: int = 262144,
    ) -> int:
        """Describe an interface; returns its id for :meth:`write`."""
        opts = _opt(2, name.encode())
        if netns:
            opts += _opt(3, netns.encode())
        comment = " ".join(f"{k}={v}" for k, v in (("role", role), ("netns", netns)) if v)
        if comment:
            opts += _opt(1, comment.encode())
        opts += _opt(9, b"\x09") + _opt(0, b"")  # if_tsresol: nanoseconds
        self._out.write(_block(_IDB, struct.pack("<HHI", linktype, 0, snaplen) + opts))
        self._ifaces += 1
        return self._ifaces - 1

    def write(
        self, iface: int, ts_ns: int, frame: bytes, orig_len: int = 0, outbound: bool | None = None
    ) -> None:
        """One Enhanced Packet Block; ``outbound`` sets the direction flag."""
        if not 0 <= iface < self._ifaces:
            raise ValueError(f"interface {iface} was never added")
        pad = b"\x00" * (-len(frame) & 3)
        opts = b""
        if outbound is not None:
            opts = _opt(2, struct.pack("<I", 2 if outbound else 1)) + _opt(0, b"")  # epb_flags
        body = (
            struct.pack(
                "<IIIII",
                iface,
                (ts_ns >> 32) & 0xFFFFFFFF,
                ts_ns & 0xFFFFFFFF,
                len(frame),
                orig_len or len(frame),
            )
            + frame
            + pad
            + opts
        )
        self._out.write(_block(_EPB, body))


def pcap_bytes(
    frames: list[tuple[int, bytes]], linktype: int = 1, nanos: bool = True, big: bool = False
) -> bytes:
    """A classic pcap file of ``(ts_ns, frame)`` records (tests and benchmarks)."""
    e = ">" if big else "<"
    magic = 0xA1B23C4D if nanos else 0xA1B2C3D4
    out = [struct.pack(e + "IHHiIII", magic, 2, 4, 0, 0, 262144, linktype)]
    for ts_ns, frame in frames:
        sec, rest = divmod(ts_ns, 1_000_000_000)
        frac = rest if nanos else rest // 1000
        out.append(struct.pack(e + "IIII", sec, frac, len(frame), len(frame)) + frame)
    return b"".join(out)
