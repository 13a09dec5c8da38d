"""DNS over TCP: the DNS messages of TCP segments, one connection at a time.

DNS over TCP (RFC 7766) is what a resolver falls back to when a UDP answer
comes back truncated (the TC bit), and what ``options use-vc`` makes glibc
use for every query (a fix for the conntrack race of parallel UDP queries).
On the wire each message is preceded by its length in two bytes; a segment
may carry several messages, and a message may be split across segments.

:class:`TcpStreams` keeps one byte stream per interface and direction
(interface, source address and port, destination address and port): bytes
are taken in sequence order, a retransmitted segment's bytes already taken
are skipped (counted in ``tcp_retransmitted``), a segment that arrives ahead
of a hole waits (a few, bounded) until the hole is filled. A hole never
filled (a segment the capture missed) ends that stream's reading: past it
the message boundaries are unknown (``tcp_gaps``). Each complete message
becomes a :class:`DnsPacket` with ``transport`` 6, stamped with the segment
that completed it (as tshark shows a reassembled message on its last frame).

The handshake comes out too, as packets of the same shape, so the matcher
follows a connection across hops like a query: the client's SYN is a query
whose name is its initial sequence number (NAT leaves sequence numbers
alone), the server's SYN-ACK — or an RST refusing the connection — the
answer. A retransmitted SYN is the same packet again and is counted once.
A connection whose SYN never got a SYN-ACK carried no query at all; this is
how it still shows as a failed journey.
"""

from __future__ import annotations

from netsleuth.packets.decode import dns_message
from netsleuth.packets.model import HANDSHAKE_ID, DnsPacket, ReadStats, TcpSegment

__all__ = ["TcpStreams"]

FIN, SYN, RST, ACK = 0x01, 0x02, 0x04, 0x10
_MASK = 0xFFFFFFFF
_MAX_STREAMS = 32_768  # oldest forgotten first
_MAX_AHEAD = 32  # segments waiting for a hole, per stream
_MAX_AHEAD_BYTES = 1 << 18
_MAX_BUFFER = 65_535 + 2 + (1 << 17)  # one whole message and a large (GRO) segment

StreamKey = tuple[int, bytes, int, bytes, int]


class _Stream:
    """One direction of one connection on one interface."""

    __slots__ = ("ahead", "buf", "dead", "isn", "next", "synack")

    def __init__(self, isn: int | None, nxt: int) -> None:
        self.isn = isn  # initial sequence number; None when the SYN was not captured
        self.next = nxt  # the sequence number of the next byte expected
        self.buf = bytearray()  # taken bytes not yet making a whole message
        self.ahead: dict[int, tuple[bytes, TcpSegment]] = {}  # seq -> segment past a hole
        self.dead = False  # a hole was never filled: message boundaries are lost
        self.synack = False  # (client side) the server's SYN-ACK was seen here


def _delta(seq: int, expected: int) -> int:
    """``seq - expected`` in 32-bit sequence space, signed."""
    d = (seq - expected) & _MASK
    return d - (1 << 32) if d >= 1 << 31 else d


def _handshake(seg: TcpSegment, seq: int, flags: int) -> DnsPacket:
    return DnsPacket(
        seg.ts_ns,
        seg.iface,
        seg.src_mac,
        seg.dst_mac,
        seg.src,
        seg.dst,
        seg.sport,
        seg.dport,
        HANDSHAKE_ID,
        flags,
        (seq & _MASK).to_bytes(4, "big"),
        0,
        6,
        seg.ttl,
    )


class TcpStreams:
    """Feed TCP segments in capture order; get back the DNS messages (and
    handshake packets) they complete. Memory is bounded: at most
    ``max_streams`` streams (the oldest forgotten first), each holding at
    most one message and a few segments ahead of a hole."""

    def __init__(self, stats: ReadStats, max_streams: int = _MAX_STREAMS) -> None:
        self.stats = stats
        self.max_streams = max_streams
        self._streams: dict[StreamKey, _Stream] = {}

    def _new(self, key: StreamKey, isn: int | None, nxt: int) -> _Stream:
        streams = self._streams
        streams.pop(key, None)
        while len(streams) >= self.max_streams:
            del streams[next(iter(streams))]
        st = streams[key] = _Stream(isn, nxt)
        return st

    def feed(self, seg: TcpSegment) -> list[DnsPacket]:
        flags = seg.flags
        key = (seg.iface, seg.src, seg.sport, seg.dst, seg.dport)
        streams = self._streams
        st = streams.get(key)
        out: list[DnsPacket] = []
        if flags & SYN:
            if st is not None and st.isn == seg.seq:
                self.stats.tcp_retransmitted += 1
                return out
            st = self._new(key, seg.seq, (seg.seq + 1) & _MASK)
            if flags & ACK:  # the server's SYN-ACK: the answer to the client's SYN
                client = streams.get((seg.iface, seg.dst, seg.dport, seg.src, seg.sport))
                if client is not None:
                    client.synack = True
                if seg.sport == 53:
                    out.append(_handshake(seg, seg.ack - 1, 0x8000))
            elif seg.dport == 53:
                out.append(_handshake(seg, seg.seq, 0))
            if seg.payload:  # data on a SYN (TCP Fast Open)
                self._take(st, seg, (seg.seq + 1) & _MASK, out)
            return out
        if flags & RST:
            client = streams.get((seg.iface, seg.dst, seg.dport, seg.src, seg.sport))
            if (
                client is not None
                and client.isn is not None
                and not client.synack
                and flags & ACK
                and seg.ack == (client.isn + 1) & _MASK
                and seg.sport == 53
            ):
                # the connection was refused: the answer to the SYN is REFUSED
                client.synack = True
                out.append(_handshake(seg, seg.ack - 1, 0x8005))
            return out
        if st is None:
            if not seg.payload:
                return out
            st = self._new(key, None, seg.seq)  # the capture began after the SYN
        if seg.payload and not st.dead:
            self._take(st, seg, seg.seq, out)
        return out

    def _take(self, st: _Stream, seg: TcpSegment, seq: int, out: list[DnsPacket]) -> None:
        """Take the bytes of ``seg`` (starting at ``seq``) into the stream,
        then any segments waiting past the hole it filled."""
        payload = seg.payload
        d = _delta(seq, st.next)
        if d > 0:  # past a hole: wait for it to fill, bounded
            held = sum(len(p) for p, _ in st.ahead.values())
            if len(st.ahead) < _MAX_AHEAD and held + len(payload) <= _MAX_AHEAD_BYTES:
                st.ahead.setdefault(seq, (payload, seg))
            else:
                self._give_up(st)
            return
        if d < 0:
            if -d >= len(payload):
                self.stats.tcp_retransmitted += 1
                return
            payload = payload[-d:]  # a retransmission that also carries new bytes
        self._append(st, payload, seg, out)
        while st.ahead and not st.dead:  # segments waiting for this hole
            progressed = False
            for aseq in list(st.ahead):
                d = _delta(aseq, st.next)
                if d > 0:
                    continue
                apayload, aseg = st.ahead.pop(aseq)
                if -d < len(apayload):
                    self._append(st, apayload[-d:] if d else apayload, aseg, out)
                    progressed = True
                else:
                    self.stats.tcp_retransmitted += 1
            if not progressed:
                break

    def _give_up(self, st: _Stream) -> None:
        st.dead = True
        st.buf = bytearray()
        st.ahead = {}
        self.stats.tcp_gaps += 1

    def _append(self, st: _Stream, data: bytes, seg: TcpSegment, out: list[DnsPacket]) -> None:
        st.next = (st.next + len(data)) & _MASK
        buf = st.buf
        buf += data
        pos = 0
        n = len(buf)
        stats = self.stats
        while n - pos >= 2:
            length = (buf[pos] << 8) | buf[pos + 1]
            if n - pos - 2 < length:
                break
            pkt = dns_message(
                buf[pos + 2 : pos + 2 + length],
                seg.ts_ns,
                seg.iface,
                seg.src_mac,
                seg.dst_mac,
                seg.src,
                seg.dst,
                seg.sport,
                seg.dport,
                seg.ttl,
            )
            pos += 2 + length
            if pkt is None:
                stats.malformed += 1
            else:
                stats.dns += 1
                out.append(pkt)
        if pos:
            del buf[:pos]
        if len(buf) > _MAX_BUFFER:  # cannot be one message: not DNS, or lost framing
            self._give_up(st)
