"""Hostile input: whatever the bytes, reading ends with packets plus counted
skips, or with one InvalidArgument — never another exception, never a hang.

Property tests (hypothesis) build files from random pieces; the fuzz run
mutates the golden lab capture and its pcap split a bounded number of times.
"""

from __future__ import annotations

import random
import struct
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netsleuth.errors import InvalidArgument
from netsleuth.packets.explain import explain
from netsleuth.packets.reader import read_captures
from netsleuth.packets.writer import pcap_bytes
from netsleuth_testing.frames import arp_frame, dns_frame

FIXTURES = Path(__file__).parent.parent / "fixtures" / "packets"
FUZZ_CASES = 300
Q = dns_frame(
    "02:aa:00:00:00:10",
    "02:00:00:00:00:01",
    "198.18.0.10",
    "198.18.255.2",
    sport=40000,
    dport=53,
    dns_id=7,
    qname="www.lab.test",
)
A = arp_frame(1, "02:00:00:00:00:01", "198.18.0.1", "00:00:00:00:00:00", "198.18.0.10")
SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def read_all(path: Path) -> None:
    """The property: a full explain either works or raises InvalidArgument."""
    try:
        e = explain([path], keep="all")
    except InvalidArgument as exc:
        assert "\n" not in str(exc)
        return
    s = e.stats
    assert s.dns + s.arp + s.other + s.fragments + s.malformed + s.unknown_linktype == s.frames
    assert sum(e.counts.values()) == e.journeys_total


@SETTINGS
@given(data=st.binary(max_size=2048))
def test_random_bytes(tmp_path_factory: object, data: bytes) -> None:
    path = tmp_path_factory.mktemp("fz") / "x.bin"  # type: ignore[attr-defined]
    path.write_bytes(data or b"\0")
    read_all(path)


@SETTINGS
@given(
    linktype=st.sampled_from([0, 1, 101, 113, 147, 228, 276, 0xFFFF]),
    frames=st.lists(
        st.one_of(
            st.binary(max_size=120),
            st.sampled_from([Q, A]).flatmap(
                lambda f: st.integers(0, len(f)).map(lambda n, f=f: f[:n])
            ),
        ),
        max_size=12,
    ),
    big=st.booleans(),
    nanos=st.booleans(),
)
def test_pcap_with_arbitrary_frames(
    tmp_path_factory: object, linktype: int, frames: list[bytes], big: bool, nanos: bool
) -> None:
    path = tmp_path_factory.mktemp("fz") / "x.pcap"  # type: ignore[attr-defined]
    path.write_bytes(
        pcap_bytes([(i * 1000, f) for i, f in enumerate(frames)], linktype, nanos=nanos, big=big)
    )
    _packets, reader = read_captures([path])
    assert reader.stats.frames == len(frames)


@SETTINGS
@given(
    blocks=st.lists(
        st.tuples(
            st.sampled_from([1, 2, 3, 6, 0x0A0D0D0A, 0xBAD, 7]),
            st.binary(max_size=64),
            st.integers(-8, 8),
        ),
        max_size=10,
    )
)
def test_pcapng_with_arbitrary_blocks(
    tmp_path_factory: object, blocks: list[tuple[int, bytes, int]]
) -> None:
    out = struct.pack("<IIIHHq", 0x0A0D0D0A, 28, 0x1A2B3C4D, 1, 0, -1) + struct.pack("<I", 28)
    for btype, raw, skew in blocks:
        body = raw + b"\0" * (-len(raw) & 3)
        n = 12 + len(body)
        out += struct.pack("<II", btype, max(n + skew, 0)) + body + struct.pack("<I", n)
    path = tmp_path_factory.mktemp("fz") / "x.pcapng"  # type: ignore[attr-defined]
    path.write_bytes(out)
    read_all(path)


def mutate(data: bytes, rng: random.Random) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        action = rng.random()
        pos = rng.randrange(len(buf)) if buf else 0
        if action < 0.5 and buf:
            buf[pos] = rng.randrange(256)  # flip a byte
        elif action < 0.7 and len(buf) >= pos + 4:
            buf[pos : pos + 4] = struct.pack("<I", rng.choice([0, 3, 12, 0xFFFFFFFF, 1 << 20]))
        elif action < 0.85:
            del buf[pos:]  # truncate
        else:
            buf[pos:pos] = rng.randbytes(rng.randint(1, 40))  # insert junk
    return bytes(buf)


def test_bounded_fuzz_of_golden_captures(tmp_path: Path) -> None:
    rng = random.Random(0x5EED)
    seeds = [
        (FIXTURES / "lab_churn.pcapng").read_bytes()[:12000],
        (FIXTURES / "lab_churn_vc0.pcap").read_bytes()[:8000],
    ]
    path = tmp_path / "m.cap"
    for case in range(FUZZ_CASES):
        data = mutate(seeds[case % 2], rng) or b"\0"
        path.write_bytes(data)
        read_all(path)
