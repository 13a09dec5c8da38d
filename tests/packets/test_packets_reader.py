"""Readers and decoder: every format and link type, golden files from real
tools, and damaged files that must give a clear error or a counted skip."""

from __future__ import annotations

import io
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from netsleuth.errors import InvalidArgument
from netsleuth.packets.decode import decode
from netsleuth.packets.explain import explain
from netsleuth.packets.model import ArpPacket, DnsPacket, Fate, ReadStats, qname_str
from netsleuth.packets.reader import CaptureReader, read_captures
from netsleuth.packets.writer import PcapngWriter, pcap_bytes
from netsleuth_testing.frames import arp_frame, dns_frame

FIXTURES = Path(__file__).parent.parent / "fixtures" / "packets"
T0 = 1_800_000_000_123_456_789
Q = dns_frame(
    "02:aa:00:00:00:10",
    "02:00:00:00:00:01",
    "198.18.0.10",
    "198.18.255.2",
    sport=40000,
    dport=53,
    dns_id=0x1234,
    qname="WWW.Lab.Test",
)
R = dns_frame(
    "02:00:00:00:00:01",
    "02:aa:00:00:00:10",
    "198.18.255.2",
    "198.18.0.10",
    sport=53,
    dport=40000,
    dns_id=0x1234,
    qname="www.lab.test",
    response=True,
    rcode=3,
)
A = arp_frame(2, "02:00:00:00:00:01", "198.18.0.1", "02:aa:00:00:00:10", "198.18.0.10")


def dec(frame: bytes, linktype: int = 1) -> tuple[object, ReadStats]:
    st = ReadStats()
    return decode(frame, 0, len(frame), linktype, 5, 0, st), st


# -- decoding ------------------------------------------------------------------
def test_decode_dns_query_and_response() -> None:
    p, _ = dec(Q)
    assert isinstance(p, DnsPacket)
    assert p.dst_mac == bytes.fromhex("020000000001")
    assert p.src == bytes([198, 18, 0, 10])
    assert (p.sport, p.dport, p.dns_id, p.is_response) == (40000, 53, 0x1234, False)
    assert qname_str(p.qname) == "www.lab.test."  # lowercased for matching
    assert p.qtype == 1
    r, _ = dec(R)
    assert isinstance(r, DnsPacket)
    assert r.is_response
    assert r.rcode == 3


def test_decode_slow_path_agrees_with_fast_path() -> None:
    # an IPv4 header with options forces the general path (the total length grows by 4)
    total = struct.pack("!H", struct.unpack_from("!H", Q, 16)[0] + 4)
    ip_opts = Q[:14] + bytes([0x46]) + Q[15:16] + total + Q[18:34] + b"\x01\x01\x01\x00" + Q[34:]
    fast, _ = dec(Q)
    slow, _ = dec(ip_opts)
    assert fast == slow


def test_decode_long_names_take_the_general_path(tmp_path: Path) -> None:
    name = ".".join(["a" * 60, "b" * 60, "c" * 60, "lab.test"])
    frame = dns_frame(
        "02:aa:00:00:00:10",
        "02:00:00:00:00:01",
        "198.18.0.10",
        "198.18.255.2",
        sport=4000,
        dport=53,
        dns_id=9,
        qname=name,
        qtype=28,
    )
    p, st = dec(frame)
    assert isinstance(p, DnsPacket)
    assert st.dns == 1
    assert qname_str(p.qname) == name + "."
    assert p.qtype == 28
    path = tmp_path / "long.pcapng"
    with path.open("wb") as fh:
        w = PcapngWriter(fh)
        w.write(w.add_interface("x"), T0, frame)
    packets, reader = read_captures([path])
    assert packets == [p._replace(ts_ns=T0)]
    assert reader.stats.malformed == 0


def test_decode_arp() -> None:
    p, st = dec(A)
    assert isinstance(p, ArpPacket)
    assert (p.op, p.sender_mac.hex(), p.sender_ip) == (2, "020000000001", bytes([198, 18, 0, 1]))
    assert st.arp == 1


def test_decode_vlan_and_cooked_and_raw() -> None:
    vlan = Q[:12] + b"\x81\x00\x00\x05" + Q[12:]
    base, _ = dec(Q)
    assert dec(vlan)[0] == base
    # Linux cooked v1: packet type, ARPHRD, address length, address (8), protocol
    sll = struct.pack("!HHH8sH", 0, 1, 6, Q[6:12] + b"\0\0", 0x0800) + Q[14:]
    p, _ = dec(sll, 113)
    assert isinstance(p, DnsPacket)
    assert (p.src_mac, p.dst_mac, p.dns_id) == (Q[6:12], b"", 0x1234)
    # Linux cooked v2: protocol, reserved, ifindex, ARPHRD, packet type, address length, address
    sll2 = struct.pack("!HHIHBB8s", 0x0800, 0, 7, 1, 0, 6, Q[6:12] + b"\0\0") + Q[14:]
    p2, _ = dec(sll2, 276)
    assert isinstance(p2, DnsPacket)
    assert p2.dns_id == 0x1234
    raw, _ = dec(Q[14:], 101)
    assert isinstance(raw, DnsPacket)
    null, _ = dec(b"\x02\x00\x00\x00" + Q[14:], 0)
    assert isinstance(null, DnsPacket)


def test_decode_counts_what_it_skips() -> None:
    udp_other = bytearray(Q)
    udp_other[34:38] = struct.pack("!HH", 1234, 5678)
    assert dec(bytes(udp_other)) == (None, ReadStats(other=1))
    frag = bytearray(Q)
    frag[20:22] = struct.pack("!H", 0x0010)  # fragment offset 16
    assert dec(bytes(frag))[1].fragments == 1
    assert dec(Q, 147)[1].unknown_linktype == 1


def test_every_truncation_of_a_frame_is_a_counted_skip() -> None:
    for frame, linktype in ((Q, 1), (A, 1), (Q[14:], 101)):
        for n in range(len(frame) - 4):  # the last bytes are qclass / ARP padding
            pkt, st = dec(frame[:n], linktype)
            if pkt is not None:
                continue  # the qname and qtype survived: fine
            assert st.malformed + st.other == 1, (n, st)


# -- files ---------------------------------------------------------------------
def write_pcapng(tmp_path: Path) -> Path:
    buf = io.BytesIO()
    w = PcapngWriter(buf)
    a = w.add_interface("vc0", "ns-host", "client")
    b = w.add_interface("uplink0", "ns-host", "uplink")
    w.write(a, T0, Q, outbound=False)
    w.write(b, T0 + 1000, A)
    w.write(a, T0 + 2000, R, outbound=True)
    path = tmp_path / "x.pcapng"
    path.write_bytes(buf.getvalue())
    return path


def test_pcapng_roundtrip_keeps_interfaces_and_nanoseconds(tmp_path: Path) -> None:
    packets, reader = read_captures([write_pcapng(tmp_path)])
    assert [(i.name, i.netns, i.role) for i in reader.interfaces] == [
        ("vc0", "ns-host", "client"),
        ("uplink0", "ns-host", "uplink"),
    ]
    assert [p.ts_ns for p in packets] == [T0, T0 + 1000, T0 + 2000]
    assert [p.iface for p in packets] == [0, 1, 0]
    assert reader.stats.frames == 3
    assert reader.stats.damaged is None


@pytest.mark.parametrize("nanos", [True, False])
@pytest.mark.parametrize("big", [True, False])
def test_pcap_both_byte_orders_and_resolutions(tmp_path: Path, nanos: bool, big: bool) -> None:
    path = tmp_path / "x.pcap"
    path.write_bytes(pcap_bytes([(T0, Q), (T0 + 5000, R)], nanos=nanos, big=big))
    packets, reader = read_captures([path])
    want = T0 if nanos else T0 // 1000 * 1000
    assert [p.ts_ns for p in packets] == [
        want,
        (T0 + 5000) // (1 if nanos else 1000) * (1 if nanos else 1000),
    ]
    assert reader.interfaces[0].name == "x"


def be_pcapng(frames: list[tuple[int, bytes]], tsresol: int) -> bytes:
    def block(btype: int, body: bytes) -> bytes:
        n = 12 + len(body)
        return struct.pack(">II", btype, n) + body + struct.pack(">I", n)

    out = block(0x0A0D0D0A, struct.pack(">IHHq", 0x1A2B3C4D, 1, 0, -1))
    opts = struct.pack(">HH", 9, 1) + bytes([tsresol]) + b"\0\0\0" + struct.pack(">HH", 0, 0)
    out += block(1, struct.pack(">HHI", 1, 0, 0) + opts)
    for ts, frame in frames:
        pad = b"\0" * (-len(frame) & 3)
        out += block(
            6,
            struct.pack(">IIIII", 0, ts >> 32, ts & 0xFFFFFFFF, len(frame), len(frame))
            + frame
            + pad,
        )
    return out


def test_big_endian_pcapng_and_binary_resolution(tmp_path: Path) -> None:
    path = tmp_path / "be.pcapng"
    # 2^-10 s resolution: 1024 ticks are one second
    path.write_bytes(be_pcapng([(1024 * 3, Q), (1024 * 3 + 512, R)], 0x80 | 10))
    packets, _ = read_captures([path])
    assert [p.ts_ns for p in packets] == [3_000_000_000, 3_500_000_000]


def test_several_files_are_merged_by_time(tmp_path: Path) -> None:
    (tmp_path / "a.pcap").write_bytes(pcap_bytes([(T0, Q), (T0 + 3000, R)]))
    (tmp_path / "b.pcap").write_bytes(pcap_bytes([(T0 + 1000, A)]))
    packets, reader = read_captures([tmp_path / "a.pcap", tmp_path / "b.pcap"])
    assert [p.ts_ns for p in packets] == [T0, T0 + 1000, T0 + 3000]
    assert [i.name for i in reader.interfaces] == ["a", "b"]


def test_truncated_file_keeps_what_came_before(tmp_path: Path) -> None:
    data = write_pcapng(tmp_path).read_bytes()
    cut = tmp_path / "cut.pcapng"
    cut.write_bytes(data[:-10])
    packets, reader = read_captures([cut])
    assert len(packets) == 2
    assert reader.stats.damaged and "byte" in reader.stats.damaged[0]
    pcap = tmp_path / "cut.pcap"
    pcap.write_bytes(pcap_bytes([(T0, Q), (T0 + 1, R)])[:-7])
    packets, reader = read_captures([pcap])
    assert len(packets) == 1
    assert reader.stats.damaged and "truncated" in reader.stats.damaged[0]


def test_bad_block_length_is_reported_not_followed(tmp_path: Path) -> None:
    data = bytearray(write_pcapng(tmp_path).read_bytes())
    first_epb = data.index(struct.pack("<I", 6))
    data[first_epb + 4 : first_epb + 8] = struct.pack("<I", 0xFFFFFFF0)
    bad = tmp_path / "bad.pcapng"
    bad.write_bytes(bytes(data))
    packets, reader = read_captures([bad])
    assert packets == []
    assert reader.stats.damaged and "impossible length" in reader.stats.damaged[0]


def block_offsets(data: bytes) -> list[tuple[int, int, int]]:
    """(offset, type, length) of each block of a little-endian pcapng file."""
    out = []
    off = 0
    while off < len(data):
        btype, blen = struct.unpack_from("<II", data, off)
        out.append((off, btype, blen))
        off += blen
    return out


@pytest.mark.parametrize(("packet_block", "kept"), [(1, 2), (2, 3)])
def test_trailing_length_mismatch_ends_the_read(
    tmp_path: Path, packet_block: int, kept: int
) -> None:
    data = bytearray(write_pcapng(tmp_path).read_bytes())
    off, _btype, blen = [b for b in block_offsets(bytes(data)) if b[1] == 6][packet_block]
    data[off + blen - 4 : off + blen] = struct.pack("<I", blen + 4)
    bad = tmp_path / "trailer.pcapng"
    bad.write_bytes(bytes(data))
    packets, reader = read_captures([bad])
    # the block is read before its trailing length is checked: it counts, nothing after it
    assert len(packets) == kept
    assert reader.stats.damaged == [f"{bad}: block at byte {off}: trailing length does not match"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"GIF89a not a capture", "neither pcap nor pcapng"),
        (b"", "empty"),
        (b"\xd4\xc3\xb2\xa1\x02\x00", "cut short"),
        (b"\x0a\x0d\x0d\x0a\x0c\x00\x00\x00\x00\x00\x00\x00\x0c\x00\x00\x00", "byte-order"),
    ],
)
def test_not_a_capture_is_a_clear_error(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(content)
    try:
        _packets, reader = read_captures([path])
    except InvalidArgument as exc:
        assert message in str(exc)
        assert "\n" not in str(exc)
    else:
        assert reader.stats.damaged and message in reader.stats.damaged[0]


def test_missing_and_directory_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="does not exist"):
        CaptureReader([tmp_path / "nope.pcap"])
    with pytest.raises(InvalidArgument, match="not a regular file"):
        CaptureReader([tmp_path])


# -- real tools ----------------------------------------------------------------
@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")
def test_tshark_reads_our_pcapng(tmp_path: Path) -> None:
    path = write_pcapng(tmp_path)
    out = subprocess.run(
        [
            "tshark",
            "-n",
            "-r",
            str(path),
            "-T",
            "fields",
            "-e",
            "frame.interface_name",
            "-e",
            "frame.interface_description",
            "-e",
            "dns.id",
            "-e",
            "arp.opcode",
            "-e",
            "frame.time_epoch",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.split("\n")
    rows = [line.split("\t") for line in out if line]
    assert [r[:4] for r in rows] == [
        ["vc0", "ns-host", "0x1234", ""],
        ["uplink0", "ns-host", "", "2"],
        ["vc0", "ns-host", "0x1234", ""],
    ]
    assert rows[0][4] == "1800000000.123456789"


def test_golden_lab_capture_from_netsleuth_capture() -> None:
    # captured by `capture --lab` during churn with a low-MAC port (one outage)
    e = explain([FIXTURES / "lab_churn.pcapng"], keep="failed")
    assert e.stats.frames == 597
    assert (e.stats.dns, e.stats.arp) == (580, 17)
    assert [(i.name, i.role) for i in e.interfaces] == [
        ("vc0", "client"),
        ("labbr0", "bridge"),
        ("uplink0", "uplink"),
    ]
    assert e.counts["answered"] == 40
    assert e.counts["never-left-bridge"] == 127
    assert e.stale_gateway == 127
    never = [j for j in e.journeys if j.verdict is Fate.NEVER_LEFT_BRIDGE]
    assert {j.mac.dst_mac for j in never if j.mac} == {"02:00:00:00:00:01"}
    assert all(len(j.hops) == 1 and j.hops[0].iface == "vc0" for j in never)
    assert e.finding is not None and e.finding.rule == "stale-gateway"


def test_golden_split_microsecond_pcaps_give_the_same_answer() -> None:
    # the same capture split per interface by tshark into classic pcap (no names, no roles)
    files = [FIXTURES / f"lab_churn_{n}.pcap" for n in ("vc0", "labbr0", "uplink0")]
    e = explain(files, keep="failed")
    assert e.stats.frames == 597
    assert e.counts["answered"] == 40
    assert e.counts["never-left-bridge"] == 127
    assert e.stale_gateway == 127
