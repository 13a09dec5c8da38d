"""DNS over TCP and over IPv6, pure: frames built here, decoded, reassembled
and matched. (The same on real traffic against tshark:
test_packets_tcpdns_netns.py.)"""

from __future__ import annotations

import socket
import struct
from pathlib import Path

from netsleuth.packets.capture import dns_arp_filter
from netsleuth.packets.decode import decode
from netsleuth.packets.explain import explain
from netsleuth.packets.journey import JourneyMatcher
from netsleuth.packets.model import (
    HANDSHAKE_ID,
    DnsPacket,
    Fate,
    Interface,
    ReadStats,
    TcpSegment,
)
from netsleuth.packets.tcp import ACK, FIN, RST, SYN, TcpStreams
from netsleuth.packets.writer import PcapngWriter
from netsleuth_testing.frames import qname_wire

C4, S4 = "198.18.0.10", "198.18.255.2"
C6, S6 = "2001:2::10", "2001:2:0:ff::2"
CMAC, SMAC = b"\x02\xaa\x00\x00\x00\x10", b"\x02\xcc\x00\x00\x00\x02"
T0 = 1_800_000_000_000_000_000
MS = 1_000_000


def dns_wire(
    dns_id: int, name: str = "a.lab.test", response: bool = False, tc: bool = False
) -> bytes:
    flags = 0x0100 | (0x8080 if response else 0) | (0x0200 if tc else 0)
    return (
        struct.pack("!HHHHHH", dns_id, flags, 1, 0, 0, 0) + qname_wire(name) + b"\x00\x01\x00\x01"
    )


def framed(*messages: bytes) -> bytes:
    return b"".join(struct.pack("!H", len(m)) + m for m in messages)


def ip_packet(
    src: str, dst: str, proto: int, l4: bytes, *, ttl: int = 64, ext: bytes = b""
) -> tuple[int, bytes]:
    """(ethertype, IP packet); ``ext`` is IPv6 extension headers, each
    starting with its next-header byte (fixed up here)."""
    if ":" in src:
        body = ext + l4
        nh = 0 if ext else proto  # ext starts with a hop-by-hop header
        if ext:
            body = bytes([proto]) + ext[1:] + l4
        hdr = struct.pack("!IHBB", 6 << 28, len(body), nh, ttl)
        return 0x86DD, hdr + socket.inet_pton(socket.AF_INET6, src) + socket.inet_pton(
            socket.AF_INET6, dst
        ) + body
    hdr = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        0,
        20 + len(l4),
        1,
        0x4000,
        ttl,
        proto,
        0,
        socket.inet_aton(src),
        socket.inet_aton(dst),
    )
    return 0x0800, hdr + l4


def eth(ethertype: int, packet: bytes, smac: bytes = CMAC, dmac: bytes = SMAC) -> bytes:
    frame = dmac + smac + struct.pack("!H", ethertype) + packet
    return frame + b"\x00" * max(0, 60 - len(frame))  # Ethernet pads short frames


def tcp_frame(  # noqa: PLR0917 - a frame, field by field
    src: str,
    dst: str,
    sport: int,
    dport: int,
    seq: int,
    ack: int,
    flags: int,
    data: bytes = b"",
    *,
    ttl: int = 64,
) -> bytes:
    l4 = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, 65535, 0, 0) + data
    smac, dmac = (CMAC, SMAC) if dport == 53 else (SMAC, CMAC)
    return eth(*ip_packet(src, dst, 6, l4, ttl=ttl), smac=smac, dmac=dmac)


def udp_frame(
    src: str, dst: str, sport: int, dport: int, data: bytes, *, ext: bytes = b"", ttl: int = 64
) -> bytes:
    l4 = struct.pack("!HHHH", sport, dport, 8 + len(data), 0) + data
    return eth(*ip_packet(src, dst, 17, l4, ext=ext, ttl=ttl))


def seg(seq: int, data: bytes, flags: int = ACK, ts: int = 0, iface: int = 0) -> TcpSegment:
    return TcpSegment(T0 + ts, iface, CMAC, SMAC, b"c", b"s", 40000, 53, seq, 1, flags, data, 64)


def test_reassembly_several_messages_per_segment_split_messages_and_retransmissions() -> None:
    stats = ReadStats()
    streams = TcpStreams(stats)
    isn = 0xFFFFFFF0  # the sequence numbers wrap inside the stream
    out = streams.feed(seg(isn, b"", SYN))
    assert [(p.dns_id, p.qname, p.flags) for p in out] == [
        (HANDSHAKE_ID, isn.to_bytes(4, "big"), 0)
    ]
    assert streams.feed(seg(isn, b"", SYN)) == []  # the SYN sent again: counted once
    wire = framed(dns_wire(1), dns_wire(2), dns_wire(3))
    split = framed(dns_wire(4))
    seq = isn + 1
    out = streams.feed(seg(seq, wire + split[:5], ts=1))
    assert [p.dns_id for p in out] == [1, 2, 3] and all(p.transport == 6 for p in out)
    assert streams.feed(seg(seq, wire + split[:5], ts=2)) == []  # a retransmission
    out = streams.feed(seg(seq + len(wire) + 5, split[5:], ts=3))
    assert [(p.dns_id, p.ts_ns) for p in out] == [(4, T0 + 3)]  # stamped when complete
    assert out[0].qname == b"\x01a\x03lab\x04test"
    assert stats.tcp_retransmitted == 2
    # past a hole: held, then taken once the hole is filled
    nxt = (seq + len(wire) + len(split)) & 0xFFFFFFFF
    five, six = framed(dns_wire(5)), framed(dns_wire(6))
    assert streams.feed(seg(nxt + len(five), six, ts=5)) == []
    out = streams.feed(seg(nxt, five, ts=6))
    assert [p.dns_id for p in out] == [5, 6]
    assert stats.tcp_gaps == 0


def test_a_hole_never_filled_ends_the_stream_bounded() -> None:
    stats = ReadStats()
    streams = TcpStreams(stats)
    streams.feed(seg(100, b"", SYN))
    msg = framed(dns_wire(1))
    for n in range(40):  # every segment past a hole that never fills
        assert streams.feed(seg(1000 + n * len(msg), msg)) == []
    assert stats.tcp_gaps == 1
    assert streams.feed(seg(101, msg)) == []  # boundaries are lost: nothing more from it


def test_memory_is_bounded_by_streams() -> None:
    streams = TcpStreams(ReadStats(), max_streams=8)
    for port in range(100):
        streams.feed(TcpSegment(T0, 0, CMAC, SMAC, b"c", b"s", port + 1000, 53, 7, 0, SYN, b"", 64))
    assert len(streams._streams) == 8


def test_decode_ipv6_udp_with_extension_headers_and_padding() -> None:
    hop_by_hop = b"\x00\x00" + b"\x01\x04\x00\x00\x00\x00"  # PadN, 8 bytes
    frame = udp_frame(C6, S6, 4000, 53, dns_wire(9), ext=hop_by_hop, ttl=61)
    stats = ReadStats()
    pkt = decode(frame, 0, len(frame), 1, T0, 0, stats)
    assert isinstance(pkt, DnsPacket)
    assert (pkt.src, pkt.dns_id, pkt.ttl, pkt.transport) == (
        socket.inet_pton(socket.AF_INET6, C6),
        9,
        61,
        17,
    )
    # a non-first fragment is counted, not decoded
    frag = b"\x00\x00\x00\x08\x00\x00\x00\x01"  # offset 1 (8 bytes)
    ethertype, packet = ip_packet(C6, S6, 17, b"\x00" * 30)
    packet = packet[:6] + b"\x2c" + packet[7:40] + bytes([17]) + frag[1:] + packet[40:]
    packet = packet[:4] + struct.pack("!H", len(packet) - 40) + packet[6:]
    frame = eth(ethertype, packet)
    assert decode(frame, 0, len(frame), 1, T0, 0, stats) is None
    assert stats.fragments == 1
    # a pure ACK in a padded 60-byte frame carries no data
    ack = tcp_frame(C4, S4, 40000, 53, 5, 6, ACK)
    got = decode(ack, 0, len(ack), 1, T0, 0, stats)
    assert isinstance(got, TcpSegment) and got.payload == b""


def write(path: Path, frames: list[tuple[int, bytes]], role: str = "client") -> None:
    with path.open("wb") as fh:
        w = PcapngWriter(fh)
        w.add_interface("vc0", "ns", role)
        for ts, frame in frames:
            w.write(0, T0 + ts, frame)


def tcp_exchange(  # noqa: PLR0917
    client: str, server: str, isn: int, sisn: int, dns_id: int, answered: bool
) -> list[bytes]:
    c, s = 40000 + dns_id, 53
    q = framed(dns_wire(dns_id))
    out = [
        tcp_frame(client, server, c, s, isn, 0, SYN),
        tcp_frame(server, client, s, c, sisn, isn + 1, SYN | ACK),
        tcp_frame(client, server, c, s, isn + 1, sisn + 1, ACK),
        tcp_frame(client, server, c, s, isn + 1, sisn + 1, ACK, q),
    ]
    if answered:
        a = framed(dns_wire(dns_id, response=True))
        out.append(tcp_frame(server, client, s, c, sisn + 1, isn + 1 + len(q), ACK, a))
    out.append(tcp_frame(client, server, c, s, isn + 1 + len(q), sisn + 1, FIN | ACK))
    return out


def test_explain_counts_tcp_and_ipv6_queries_and_unanswered_handshakes(tmp_path: Path) -> None:
    frames: list[bytes] = []
    frames += tcp_exchange(C4, S4, 1000, 9000, 1, answered=True)
    frames += tcp_exchange(C6, S6, 2000, 8000, 2, answered=False)
    frames.append(udp_frame(C6, S6, 4000, 53, dns_wire(3)))
    frames.append(udp_frame(S6, C6, 53, 4000, dns_wire(3, response=True, tc=True)))
    # a SYN never answered, sent three times; and one refused by RST
    frames += [tcp_frame(C4, S4, 41000, 53, 777, 0, SYN) for _ in range(3)]
    frames.append(tcp_frame(C6, S6, 41001, 53, 555, 0, SYN))
    frames.append(tcp_frame(S6, C6, 53, 41001, 0, 556, RST | ACK))
    path = tmp_path / "t.pcapng"
    write(path, [(n * MS, f) for n, f in enumerate(frames)])
    e = explain([path], keep="all")
    assert e.by_transport == {
        "tcp-handshake/ipv4": {**dict.fromkeys(map(str, Fate), 0), "unanswered": 1},
        "tcp-handshake/ipv6": {**dict.fromkeys(map(str, Fate), 0), "answered": 1},
        "tcp/ipv4": {**dict.fromkeys(map(str, Fate), 0), "answered": 1},
        "tcp/ipv6": {**dict.fromkeys(map(str, Fate), 0), "unanswered": 1},
        "udp/ipv6": {**dict.fromkeys(map(str, Fate), 0), "answered": 1},
    }
    by = {(j.transport, j.family, j.dns_id): j for j in e.journeys}
    assert by["tcp", "ipv6", 2].client == f"[{C6}]:40002"
    assert by["udp", "ipv6", 3].truncated
    [syn] = [j for j in e.journeys if j.handshake and j.verdict.failed]
    assert len(syn.hops) == 1 and syn.dns_id == -1  # the SYN sent again is the same packet
    [refused] = [j for j in e.journeys if j.handshake and not j.verdict.failed]
    assert refused.rcode == 5
    assert e.stats.tcp_retransmitted == 2
    doc = e.as_dict()
    assert doc["by_transport"] == e.by_transport
    assert {q["transport"] for q in doc["queries"]} == {"udp", "tcp"}  # type: ignore[index]


def q(ts: int, iface: int, src: str, ttl: int, dns_id: int = 7) -> DnsPacket:
    return DnsPacket(
        T0 + ts,
        iface,
        CMAC,
        SMAC,
        socket.inet_aton(src),
        socket.inet_aton(S4),
        4000,
        53,
        dns_id,
        0x0100,
        b"\x01a",
        1,
        17,
        ttl,
    )


def test_another_containers_query_on_its_own_port_is_not_a_translation() -> None:
    """Two containers' queries share id and name; each is flooded to the other's
    port. Only a routed copy (lower TTL) can be a translated one."""
    ifaces = [
        Interface(0, "pa", role="client"),
        Interface(1, "pb", role="client"),
        Interface(2, "up", role="uplink"),
    ]
    m = JourneyMatcher(ifaces)
    a, b = "198.18.0.10", "198.18.0.11"
    packets = [q(0, 0, a, 64), q(10, 1, a, 64), q(50, 1, b, 64), q(60, 0, b, 64)]
    # later: a's next query, flooded to b's port again (never left)
    packets += [q(MS, 0, a, 64, 8), q(MS + 10, 1, a, 64, 8)]
    done = [*m.feed_all(packets), *m.finish()]
    assert [j.verdict for j in done] == [Fate.NEVER_LEFT_BRIDGE] * 3
    assert not any(h.nat for j in done for h in j.hops)
    assert sorted((j.dns_id, j.client, j.origin, len(j.hops)) for j in done) == [
        (7, f"{a}:4000", "pa", 2),
        (7, f"{b}:4000", "pb", 2),
        (8, f"{a}:4000", "pa", 2),
    ]
    # another client's query that went out and was answered, while this one was
    # flooded: two journeys, not one lost on the way back
    m = JourneyMatcher(ifaces)
    nat = "198.18.255.1"
    ans = q(300, 2, S4, 64)._replace(
        src=socket.inet_aton(S4), dst=socket.inet_aton(nat), sport=53, dport=4001, flags=0x8180
    )
    packets = [
        q(0, 0, a, 64),
        q(100, 1, b, 64)._replace(sport=4001),
        q(200, 2, nat, 63)._replace(sport=4001),
        ans,
        ans._replace(ts_ns=T0 + 400, iface=1, dst=socket.inet_aton(b)),
    ]
    done = [*m.feed_all(packets), *m.finish()]
    assert sorted((j.client, j.verdict) for j in done) == [
        (f"{a}:4000", Fate.NEVER_LEFT_BRIDGE),
        (f"{b}:4001", Fate.ANSWERED),
    ]
    # the routed copy on the uplink is a translation
    m = JourneyMatcher(ifaces)
    done = [*m.feed_all([q(0, 0, a, 64), q(10, 2, "198.18.255.1", 63)]), *m.finish()]
    assert [j.verdict for j in done] == [Fate.NAT_UNANSWERED]


HOP_BY_HOP = b"\x00\x00\x05\x02\x00\x00\x01\x00"  # router alert (MLD)


def test_the_capture_filter_keeps_tcp_port_53_and_ipv6() -> None:
    prog = dns_arp_filter()
    frames = {
        "tcp4": (tcp_frame(C4, S4, 40000, 53, 1, 0, SYN), True),
        "udp6": (udp_frame(C6, S6, 4000, 53, dns_wire(1)), True),
        "tcp6": (tcp_frame(C6, S6, 40000, 53, 1, 0, SYN), True),
        "udp6 ext": (
            udp_frame(C6, S6, 4000, 53, dns_wire(1), ext=b"\x00\x00\x01\x04\x00\x00\x00\x00"),
            True,
        ),
        "mld6": (  # hop-by-hop (router alert) then ICMPv6: a listener report
            eth(*ip_packet(C6, "ff02::16", 58, b"\x8f" + b"\x00" * 7, ext=HOP_BY_HOP)),
            False,
        ),
        "udp4 other": (udp_frame(C4, S4, 4000, 80, b"x" * 20), False),
        "tcp6 other": (tcp_frame(C6, S6, 40000, 80, 1, 0, SYN), False),
    }
    for name, (frame, keep) in frames.items():
        assert (run_bpf(prog, frame) > 0) == keep, name


def run_bpf(prog: list[tuple[int, int, int, int]], pkt: bytes) -> int:
    """A classic BPF interpreter for the instructions the filter uses."""
    a = x = pc = 0
    for _ in range(len(prog) + 1):
        code, jt, jf, k = prog[pc]
        pc += 1
        if code == 0x28:
            a = struct.unpack_from("!H", pkt, k)[0]
        elif code == 0x30:
            a = pkt[k]
        elif code == 0x48:
            a = struct.unpack_from("!H", pkt, x + k)[0]
        elif code == 0xB1:
            x = (pkt[k] & 15) * 4
        elif code == 0x06:
            return k
        elif code in (0x15, 0x45):
            hit = a == k if code == 0x15 else bool(a & k)
            pc += jt if hit else jf
        else:
            raise AssertionError(f"opcode {code:#x}")
    raise AssertionError("no return")
