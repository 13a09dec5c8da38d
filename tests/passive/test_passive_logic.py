"""Pure tests of passive DNS: the BPF filter (run by a small classic-BPF
interpreter), the frame parser, the matcher, naming, and the watch options."""

from __future__ import annotations

import socket
import struct

import dns.message
import pytest

from netsleuth.errors import InvalidArgument
from netsleuth.model import Outcome
from netsleuth.passive import is_passive
from netsleuth.passive.matcher import Fate, Matcher
from netsleuth.passive.names import ClientNamer, addresses_of_containers
from netsleuth.passive.source import Side, choose_sides, outcome_of, probe_text
from netsleuth.passive.wire import SNAPLEN, TCP, UDP, dns_filter, key_fields, parse, parse_block
from netsleuth.watch import WatchConfig

C4, S4, NAT4 = "198.18.0.10", "198.18.255.2", "198.18.255.1"
C6, S6 = "2001:db8::10", "2001:db8::53"


def _ip(addr: str) -> bytes:
    return socket.inet_pton(socket.AF_INET6 if ":" in addr else socket.AF_INET, addr)


def frame(src: str, dst: str, sport: int, dport: int, payload: bytes, *, tcp: bool = False,
          frag: int = 0) -> bytes:  # fmt: skip
    if tcp:
        l4 = struct.pack("!HHIIBBHHH", sport, dport, 1, 1, 5 << 4, 0x18, 512, 0, 0)
        l4 += struct.pack("!H", len(payload)) + payload
    else:
        l4 = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    proto = TCP if tcp else UDP
    if ":" in src:
        ip = struct.pack("!IHBB16s16s", 6 << 28, len(l4), proto, 64, _ip(src), _ip(dst))
        ethertype = 0x86DD
    else:
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), 0, frag, 64, proto, 0,
                         _ip(src), _ip(dst))  # fmt: skip
        ethertype = 0x0800
    return b"\x02" * 6 + b"\x04" * 6 + struct.pack("!H", ethertype) + ip + l4


def query(name: str = "www.lab.test.", qid: int = 7, rdtype: str = "A") -> bytes:
    q = dns.message.make_query(name, rdtype)
    q.id = qid
    return q.to_wire()


def answer(name: str = "www.lab.test.", qid: int = 7, rcode: int = 0) -> bytes:
    q = dns.message.make_query(name, "A")
    q.id = qid
    r = dns.message.make_response(q)
    r.set_rcode(rcode)
    return r.to_wire()


def run_bpf(program: list[tuple[int, int, int, int]], pkt: bytes) -> int:
    """Just the classic BPF instructions the filter uses."""
    a = x = pc = 0
    while True:
        code, jt, jf, k = program[pc]
        pc += 1
        if code == 0x28:
            a = struct.unpack_from("!H", pkt, k)[0]
        elif code == 0x30:
            a = pkt[k]
        elif code == 0x48:
            a = struct.unpack_from("!H", pkt, x + k)[0]
        elif code == 0xB1:
            x = (pkt[k] & 0x0F) * 4
        elif code == 0x15:
            pc += jt if a == k else jf
        elif code == 0x45:
            pc += jt if a & k else jf
        elif code == 0x06:
            return k
        else:
            raise AssertionError(f"unexpected opcode {code:#x}")


@pytest.mark.parametrize(
    ("pkt", "kept"),
    [
        (frame(C4, S4, 40000, 53, query()), True),
        (frame(S4, C4, 53, 40000, answer()), True),
        (frame(C4, S4, 40000, 53, query(), tcp=True), True),
        (frame(C6, S6, 40000, 53, query()), True),
        (frame(S6, C6, 53, 40000, answer(), tcp=True), True),
        (frame(C4, S4, 40000, 54, query()), False),
        (frame(C6, S6, 40000, 5353, query()), False),
        (frame(C4, S4, 40000, 53, query(), frag=100), False),  # a later fragment
        (b"\xff" * 12 + b"\x08\x06" + b"\x00" * 28, False),  # ARP
    ],
)
def test_filter_keeps_dns_only(pkt: bytes, kept: bool) -> None:
    assert run_bpf(dns_filter(), pkt) == (SNAPLEN if kept else 0)


@pytest.mark.parametrize(("src", "dst"), [(C4, S4), (C6, S6)])
@pytest.mark.parametrize("tcp", [False, True])
def test_parse_reads_query_and_answer(src: str, dst: str, tcp: bool) -> None:
    q = parse(frame(src, dst, 40000, 53, query(qid=99, rdtype="AAAA"), tcp=tcp), 0, 10**6, 5)
    assert q is not None
    ts, is_answer, key, qtype, _rcode = q
    assert (ts, is_answer, qtype) == (5, False, 28)
    name = b"\x03www\x03lab\x04test\x00"
    assert key_fields(key) == (TCP if tcp else UDP, _ip(src), 40000, _ip(dst), 53, 99, name)
    a = parse(frame(dst, src, 53, 40000, answer(qid=99, rcode=3), tcp=tcp), 0, 10**6)
    assert a is not None and a[1] is True and a[4] == 3
    assert a[2] == key  # the answer's key is in the client's orientation too
    other = parse(frame(dst, src, 53, 40001, answer(qid=99), tcp=tcp), 0, 10**6)
    assert other is not None and other[2] != key  # another client port: another query


def test_parse_block_walks_tpacket_v3_frames() -> None:
    """A block laid out as the kernel writes it: per frame a tpacket3_hdr
    (next offset, seconds, nanoseconds, bytes kept, ..., Ethernet offset),
    the frame after it; a non-DNS frame in between is skipped."""
    frames = [
        frame(C4, S4, 1000, 53, query(qid=1)),
        b"\xff" * 12 + b"\x08\x06" + b"\x00" * 28,  # ARP
        frame(S4, C4, 53, 1000, answer(qid=1)),
        frame(C6, S6, 1001, 53, query(qid=2), tcp=True),
    ]
    block, first, mac = bytearray(48), 48, 66
    for i, f in enumerate(frames):
        size = (mac + len(f) + 15) & ~15
        hdr = struct.pack("=IIIIIIHH", 0 if i == len(frames) - 1 else size, 7, 1000 + i,
                          len(f), len(f), 0, mac, mac + 14)  # fmt: skip
        block += (hdr + bytes(mac - len(hdr)) + f).ljust(size, b"\0")
    stamps, fields, keys = parse_block(bytes(block), first, len(frames))
    assert stamps == [7_000_001_000, 7_000_001_002, 7_000_001_003]
    assert [f & 1 for f in fields] == [0, 1, 0]  # query, answer, query
    assert [f >> 8 for f in fields] == [1, 1, 1]  # qtype A
    assert [key_fields(k)[5] for k in keys] == [1, 1, 2]
    assert keys[0] == keys[1] and key_fields(keys[2])[0] == TCP
    m = Matcher(S)
    m.client_frames((stamps, fields, keys))
    assert [c.latency_ns for c in m.take()] == [2] and len(m) == 1


def test_parse_refuses_what_it_cannot_read() -> None:
    pkt = frame(C4, S4, 40000, 53, query())
    assert parse(pkt, 0, len(pkt) - 20) is None  # the question is cut
    bare = frame(C4, S4, 40000, 53, b"", tcp=True)[:-2]  # an ACK: no payload
    assert parse(bare, 0, len(bare)) is None
    assert parse(frame(C4, S4, 40000, 53, b"\x00" * 12), 0, 10**6) is None  # no question


def d(ts: int, src: str, dst: str, sport: int, dport: int, payload: bytes):  # type: ignore[no-untyped-def]  # noqa: PLR0917
    out = parse(frame(src, dst, sport, dport, payload), 0, 10**6, ts)
    assert out is not None
    return out


S = 1_000_000_000


def test_matcher_answers_timeouts_and_fates() -> None:
    m = Matcher(S)
    m.client_side(d(0, C4, S4, 1000, 53, query(qid=1)))
    m.client_side(d(10, C4, S4, 1001, 53, query(qid=2)))
    m.client_side(d(20, C4, S4, 1002, 53, query(qid=3)))
    m.client_side(d(30, C4, S4, 1003, 53, query(qid=4)))
    m.uplink(d(15, NAT4, S4, 5000, 53, query(qid=2)))  # NATed copy of query 2
    m.uplink(d(25, NAT4, S4, 5001, 53, query(qid=3)))
    m.uplink(d(50, S4, NAT4, 53, 5001, answer(qid=3)))  # answered upstream only
    m.client_side(d(5_000_000, S4, C4, 53, 1000, answer(qid=1, rcode=3)))
    m.client_side(d(2 * S, S4, C4, 53, 1003, answer(qid=4)))  # after the timeout
    m.expire(3 * S)
    got = {c.client_port: c for c in m.take()}
    assert got[1000].rcode == 3 and got[1000].latency_ns == 5_000_000
    assert outcome_of(got[1000].rcode) is Outcome.NXDOMAIN
    assert got[1001].fate is Fate.NO_ANSWER_UPSTREAM
    assert got[1002].fate is Fate.NOT_DELIVERED
    assert got[1003].fate is Fate.LATE and got[1003].latency_ns is None
    assert all(outcome_of(got[p].rcode) is Outcome.TIMEOUT for p in (1001, 1002, 1003))
    assert m.stats.queries == 4 and m.stats.unanswered == 3 and m.stats.uplink_matched == 2


def test_matcher_uplink_seen_first_and_retransmissions() -> None:
    m = Matcher(S)
    m.uplink(d(100, NAT4, S4, 5000, 53, query(qid=9)))  # read before its bridge frame
    m.client_side(d(50, C4, S4, 1000, 53, query(qid=9)))
    m.client_side(d(400_000_000, C4, S4, 1000, 53, query(qid=9)))  # a retry, same tuple
    m.expire(2 * S)
    (closed,) = m.take()
    assert closed.fate is Fate.NO_ANSWER_UPSTREAM and closed.copies == 2
    assert m.stats.queries == 1 and m.stats.retransmissions == 1
    # after it was closed, the same tuple is a new query
    m.client_side(d(3 * S, C4, S4, 1000, 53, query(qid=9)))
    m.client_side(d(3 * S + 1000, S4, C4, 53, 1000, answer(qid=9)))
    (again,) = m.take()
    assert again.fate is Fate.ANSWERED and again.latency_ns == 1000
    m.client_side(d(4 * S, S4, C4, 53, 1000, answer(qid=9)))
    assert m.stats.stray_answers == 1


def test_names_and_texts() -> None:
    attrs = [
        {"Name": "/ci-runner", "NetworkSettings": {"IPAddress": "172.17.0.2", "Networks": {
            "bridge": {"IPAddress": "172.17.0.2", "GlobalIPv6Address": "2001:db8::2"}}}},
        {"Name": "/lo", "NetworkSettings": {"IPAddress": "127.0.0.1"}},
    ]  # fmt: skip
    assert addresses_of_containers(attrs) == {
        "172.17.0.2": "container:ci-runner",
        "2001:db8::2": "container:ci-runner",
    }
    now = [0.0]
    calls = []

    def docker() -> dict[str, str]:
        calls.append(now[0])
        return {"172.17.0.2": "container:ci-runner"} if now[0] >= 5 else {}

    namer = ClientNamer([docker, lambda: {"172.17.0.2": "netns:x", C4: "netns:c0"}],
                        clock=lambda: now[0])  # fmt: skip
    assert namer.label(_ip("172.17.0.2")) == "netns:x"
    assert namer.label(_ip(C4)) == "netns:c0"
    assert namer.label(_ip("10.9.9.9")) == "10.9.9.9" and len(calls) == 1  # asked again later
    now[0] = 5.0
    assert namer.label(_ip("10.9.9.9")) == "10.9.9.9" and len(calls) == 2
    now[0] = 30.0  # the table is rebuilt: the container took its address
    assert namer.label(_ip("172.17.0.2")) == "container:ci-runner"
    assert probe_text(1, UDP) == "passive:dns/A" and probe_text(28, TCP) == "passive:dns/AAAA/tcp"
    assert probe_text(4242, UDP) == "passive:dns/TYPE4242" and is_passive(probe_text(1, UDP))


def test_sides_and_options() -> None:
    assert choose_sides([], ["br0", "br0"], ["br0", "docker0"], ["eth0"]) == (
        Side("br0", "client"),
        Side("eth0", "uplink"),
    )
    assert [s.ifname for s in choose_sides([], [], ["br0", "docker0"], [])] == ["br0", "docker0"]
    assert choose_sides(["eth0"], ["br0"], ["br0"], ["eth0"]) == (Side("eth0", "client"),)
    with pytest.raises(InvalidArgument, match="no bridge"):
        choose_sides([], [], [], ["eth0"])
    WatchConfig(targets=(), probes=(), passive=()).validate()
    with pytest.raises(InvalidArgument, match="nothing to probe"):
        WatchConfig(targets=("host",), probes=(), passive=()).validate()
    with pytest.raises(InvalidArgument, match="--probe"):
        WatchConfig(targets=("host",), probes=()).validate()
