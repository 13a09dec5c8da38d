"""Pure tests: the tracepoint's format file (this kernel's, captured, and
older ones written by hand), the two mechanisms' output lines, the bpftrace
program's reason filter."""

from __future__ import annotations

from pathlib import Path

import pytest

from netsleuth.drops.bpf import MapDeltas, bpftrace_script
from netsleuth.drops.reasons import TracepointFormat, parse_format
from netsleuth.drops.record import (
    Drop,
    MapCount,
    Tick,
    parse_bpftrace_line,
    parse_ftrace_line,
    proto_name,
)

FIXTURES = Path(__file__).parent / "fixtures"
NEW = parse_format((FIXTURES / "kfree_skb-6.18.format").read_text())  # captured on 6.18
OLD = parse_format((FIXTURES / "kfree_skb-5.17.format").read_text())  # the first with reasons
NONE = parse_format((FIXTURES / "kfree_skb-5.10.format").read_text())  # before reasons


def test_this_kernels_format_names_reasons_by_its_own_numbers() -> None:
    assert NEW.id == 2310
    assert NEW.fields == ("skbaddr", "location", "rx_sk", "protocol", "reason")
    assert NEW.has_reason
    assert (NEW.name(3), NEW.name(12), NEW.name(13), NEW.name(16)) == (
        "NO_SOCKET",
        "NETFILTER_DROP",
        "OTHERHOST",
        "IP_RPFILTER",
    )
    assert NEW.name(113) == "NO_TX_TARGET"
    assert NEW.codes(["OTHERHOST", "NO_TX_TARGET", "NOT_A_REASON"]) == {13, 113}
    assert NEW.noise_codes() == {2}  # NOT_SPECIFIED; CONSUMED is traced elsewhere here
    assert len(NEW.reasons) == 128


def test_an_older_kernel_numbers_the_same_names_otherwise() -> None:
    assert OLD.fields == ("skbaddr", "location", "protocol", "reason")
    assert OLD.has_reason
    assert OLD.name(1) == "NO_SOCKET"  # 3 on 6.18
    assert NEW.name(1) != "NO_SOCKET"
    assert OLD.noise_codes() == {0}
    assert OLD.codes(["NO_SOCKET"]) == {1} and NEW.codes(["NO_SOCKET"]) == {3}
    assert OLD.name(99) == "REASON_99"  # a number the table lacks stays a number


def test_a_kernel_without_reasons_says_so() -> None:
    assert NONE.fields == ("skbaddr", "location", "protocol")
    assert not NONE.has_reason and NONE.reasons == {}
    assert not parse_format("").has_reason
    assert parse_format("garbage\nID: x\n") == TracepointFormat()


def test_bpftrace_drop_line() -> None:
    # 198.18.0.10:30661 -> 198.18.255.2:53, read as little-endian u32/u16 from the packet
    line = (
        "E 9377889040474 13 ip_rcv_core 4026532178 labbr0 2048 17 167776966 50270918 50551 13568\n"
    )
    drop = parse_bpftrace_line(line, NEW)
    assert drop == Drop(
        9377889040474,
        "OTHERHOST",
        "ip_rcv_core",
        4026532178,
        "labbr0",
        "udp",
        "198.18.0.10",
        "198.18.255.2",
        30661,
        53,
    )
    assert parse_bpftrace_line(line, OLD).reason == "REASON_13"  # type: ignore[union-attr]


def test_bpftrace_lines_without_device_or_ports_and_not_ipv4() -> None:
    no_dev = parse_bpftrace_line("E 5 12 nft_do_chain 77 - 2048 1 16777343 16777343 0 0", NEW)
    assert isinstance(no_dev, Drop)
    assert (no_dev.ifname, no_dev.proto, no_dev.sport, no_dev.saddr) == ("", "icmp", 0, "127.0.0.1")
    v6 = parse_bpftrace_line("E 5 88 ip6_pkt_discard 77 vnb 34525 0 0 0 0 0", NEW)
    assert isinstance(v6, Drop)
    assert (v6.reason, v6.proto, v6.saddr) == ("IP_INNOROUTES", "ipv6", "")


def test_bpftrace_map_ticks_and_noise() -> None:
    assert parse_bpftrace_line("@agg[13, ip_rcv_core, 4026532178, labbr0]: 27", NEW) == MapCount(
        ("OTHERHOST", "ip_rcv_core", 4026532178, "labbr0"), 27
    )
    # a device name may hold ", " (only the first three separators split)
    assert parse_bpftrace_line("@agg[3, __udp4_lib_rcv, 9, a, b]: 2", NEW) == MapCount(
        ("NO_SOCKET", "__udp4_lib_rcv", 9, "a, b"), 2
    )
    assert parse_bpftrace_line("@agg[12, nft_do_chain, 9, -]: 1", NEW) == MapCount(
        ("NETFILTER_DROP", "nft_do_chain", 9, ""), 1
    )
    assert parse_bpftrace_line("T 9378681032143", NEW) == Tick(9378681032143)
    assert parse_bpftrace_line("X 9378681032143", NEW) == Tick(9378681032143, final=True)
    for noise in ("Attaching 3 probes...", "", "E 1 2", "@agg[x, y, z, w]: 3", "T x", "@gwin: 3"):
        assert parse_bpftrace_line(noise, NEW) is None


def test_map_deltas_rise_only() -> None:
    d = MapDeltas()
    assert (d.update("k", 10), d.update("k", 10), d.update("k", 25), d.update("j", 1)) == (
        10,
        0,
        15,
        1,
    )


FTRACE_618 = (
    "          python-11362   [000] ..s1.  9387.085696: kfree_skb: skbaddr=00000000186c785e "
    "rx_sk=0000000000000000 protocol=2048 location=nft_do_chain+0x637/0x690 reason: NETFILTER_DROP"
)
FTRACE_517 = (
    "  <idle>-0       [001] ..s.  412.000001: kfree_skb: skbaddr=000000003a0c7c3e "
    "protocol=34525 location=00000000b1f2e3d4 reason: NO_SOCKET"
)


def test_ftrace_lines() -> None:
    assert parse_ftrace_line(FTRACE_618) == Drop(
        9387085696000, "NETFILTER_DROP", "nft_do_chain", proto="ip"
    )
    old = parse_ftrace_line(FTRACE_517)
    assert old == Drop(412000001000, "NO_SOCKET", "00000000b1f2e3d4", proto="ipv6")
    # before 5.17: no reason at all
    assert parse_ftrace_line(FTRACE_517.replace(" reason: NO_SOCKET", "")).reason == "UNKNOWN"  # type: ignore[union-attr]
    for noise in ("", "# tracer: nop", "  cat-1 [000] 1.0: consume_skb: skbaddr=0"):
        assert parse_ftrace_line(noise) is None


def test_proto_names() -> None:
    assert [proto_name(0x0800, n) for n in (17, 6, 1, 0, 99)] == [
        "udp",
        "tcp",
        "icmp",
        "ip",
        "ip/99",
    ]
    assert (proto_name(0x86DD, 0), proto_name(0x0806, 0), proto_name(0x88CC, 0)) == (
        "ipv6",
        "arp",
        "0x88cc",
    )


@pytest.mark.parametrize("fmt", [NEW, OLD], ids=["6.18", "5.17"])
def test_the_program_filters_the_noise_by_this_kernels_numbers(fmt: TracepointFormat) -> None:
    script = bpftrace_script(fmt.noise_codes(), rate=7, total_rate=70)
    (code,) = fmt.noise_codes()
    assert f"/args->reason != {code}/" in script
    assert "< 7 && @gused < 70" in script
    assert "PREDICATE" not in bpftrace_script(())
    assert "/args->reason" not in bpftrace_script(())
